"""ShopFlow user journeys: how real shoppers use the API, with think times.

Browsing dominates, search is common, checkout is rare (weights in the tests).
Customers log in once per virtual user (``on_start``); virtual user ``n``
shops as seeded customer ``n`` so carts never collide.
"""

from __future__ import annotations

import os

from pytest_shopflow_perf import User

SEARCH_TERMS = ("shoe", "jacket", "backpack", "headphones", "laptop", "tent", "desk", "watch", "coffee", "yoga")
CATEGORIES = ("shoes", "shirts", "jackets", "bags", "audio", "computers", "kitchen", "outdoor", "sports", "books")
SEEDED_CUSTOMERS = int(os.environ.get("SHOPFLOW_USERS", "1000"))
# Think times of a person; SHOPFLOW_PERF_THINK scales them for the whole suite, and a
# scenario can scale them per user (``user.state["think"]``: stress users hurry).
THINK = float(os.environ.get("SHOPFLOW_PERF_THINK", "1"))


async def think(user: User, low: float, high: float) -> None:
    factor = THINK * user.state.get("think", 1.0)
    if factor > 0:
        await user.think(low * factor, high * factor)


async def login(user: User) -> None:
    """``on_start``: one login per virtual user; the token lives as long as the user."""
    customer = user.id % SEEDED_CUSTOMERS
    response = await user.client.post(
        "/api/login",
        json={"email": f"customer{customer}@shopflow.test", "password": f"secret{customer}"},
    )
    user.check(response.status_code == 200, "login succeeds")
    if response.status_code == 200:
        user.client.headers["Authorization"] = f"Bearer {response.json()['token']}"


async def browse(user: User) -> None:
    """List a category page, open one product."""
    response = await user.client.get(
        "/api/products",
        params={"category": user.random.choice(CATEGORIES), "page": user.random.randint(1, 10), "per_page": 20},
    )
    items = response.json().get("items", [])
    user.check(bool(items), "category page lists products")
    await think(user, 0.5, 1.5)
    if items:
        product = user.random.choice(items)
        await user.client.get(f"/api/products/{product['id']}")
    await think(user, 0.5, 1.5)


async def search(user: User) -> None:
    """Search, open the best hit."""
    response = await user.client.get("/api/search", params={"q": user.random.choice(SEARCH_TERMS)})
    items = response.json().get("items", [])
    user.check(bool(items), "search finds products")
    await think(user, 0.5, 1.5)
    if items:
        await user.client.get(f"/api/products/{items[0]['id']}")
    await think(user, 0.5, 1.0)


async def checkout(user: User) -> None:
    """Add one or two products to the cart, look at it, buy."""
    page = await user.client.get("/api/products", params={"page": user.random.randint(1, 50), "per_page": 20})
    items = page.json().get("items", [])
    for product in user.random.sample(items, k=min(len(items), user.random.randint(1, 2))):
        await user.client.post("/api/cart/items", json={"product_id": product["id"], "quantity": 1})
        await think(user, 0.2, 0.6)
    cart = await user.client.get("/api/cart")
    user.check(bool(cart.json().get("items")), "cart has items")
    order = await user.client.post("/api/checkout")
    user.check(order.status_code == 201, "checkout creates an order")
    await think(user, 0.5, 1.0)


async def hurried_login(user: User) -> None:
    """``on_start`` of stress users: think times of 50-150 ms instead of about a second."""
    user.state["think"] = 0.1
    await login(user)


SHOPPING_MIX = {browse: 6, search: 3, checkout: 1}

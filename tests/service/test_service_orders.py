"""Cart, checkout and order history, including concurrent checkouts."""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest

from pytest_shopflow_perf.service import db as shop_db

pytestmark = pytest.mark.anyio


async def _set_stock(shop, product_id: int, stock: int) -> None:
    r = await shop.client.put(f"/admin/products/{product_id}/stock", json={"stock": stock})
    assert r.status_code == 200, r.text
    assert r.json()["stock"] == stock


async def test_cart_operations(shop):
    headers = await shop.login(3)
    cart = (await shop.client.get("/api/cart", headers=headers)).json()
    assert cart == {"items": [], "item_count": 0, "total": 0.0}

    r = await shop.client.post("/api/cart/items", json={"product_id": 5, "quantity": 2}, headers=headers)
    assert r.status_code == 200, r.text
    r = await shop.client.post("/api/cart/items", json={"product_id": 5, "quantity": 3}, headers=headers)
    r = await shop.client.post("/api/cart/items", json={"product_id": 9, "quantity": 1}, headers=headers)
    cart = r.json()
    assert [(i["product_id"], i["quantity"]) for i in cart["items"]] == [(5, 5), (9, 1)]
    price5 = cart["items"][0]["price"]
    assert cart["items"][0]["line_total"] == round(price5 * 5, 2)
    assert cart["item_count"] == 6
    assert cart["total"] == round(price5 * 5 + cart["items"][1]["price"], 2)

    r = await shop.client.put("/api/cart/items/5", json={"quantity": 1}, headers=headers)
    assert [(i["product_id"], i["quantity"]) for i in r.json()["items"]] == [(5, 1), (9, 1)]
    r = await shop.client.put("/api/cart/items/9", json={"quantity": 0}, headers=headers)
    assert [i["product_id"] for i in r.json()["items"]] == [5]
    r = await shop.client.delete("/api/cart/items/5", headers=headers)
    assert r.status_code == 200
    assert r.json()["items"] == []

    again = await shop.client.delete("/api/cart/items/5", headers=headers)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_in_cart"
    missing = await shop.client.post("/api/cart/items", json={"product_id": 999, "quantity": 1}, headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "product_not_found"
    await shop.client.post("/api/cart/items", json={"product_id": 7, "quantity": 100}, headers=headers)
    over = await shop.client.post("/api/cart/items", json={"product_id": 7, "quantity": 1}, headers=headers)
    assert over.status_code == 422
    assert over.json()["error"]["code"] == "quantity_limit"

    other = await shop.login(4)
    assert (await shop.client.get("/api/cart", headers=other)).json()["items"] == []


async def test_checkout_creates_an_order_and_decrements_stock(shop):
    headers = await shop.login(0)
    before = (await shop.client.get("/api/products/11")).json()  # now cached
    await shop.client.post("/api/cart/items", json={"product_id": 11, "quantity": 3}, headers=headers)
    await shop.client.post("/api/cart/items", json={"product_id": 12, "quantity": 1}, headers=headers)
    cart_total = (await shop.client.get("/api/cart", headers=headers)).json()["total"]

    r = await shop.client.post("/api/checkout", headers=headers)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "placed"
    assert order["total"] == cart_total
    assert order["item_count"] == 4
    assert [(i["product_id"], i["quantity"]) for i in order["items"]] == [(11, 3), (12, 1)]
    after = (await shop.client.get("/api/products/11")).json()
    assert after["stock"] == before["stock"] - 3, "checkout must evict the cached product"
    assert (await shop.client.get("/api/cart", headers=headers)).json()["items"] == []

    history = (await shop.client.get("/api/orders", headers=headers)).json()
    assert history["total"] == 1
    assert history["items"][0]["id"] == order["id"]
    assert (await shop.client.get(f"/api/orders/{order['id']}", headers=headers)).json() == order
    stranger = await shop.login(1)
    assert (await shop.client.get(f"/api/orders/{order['id']}", headers=stranger)).status_code == 404
    assert (await shop.client.get("/api/orders", headers=stranger)).json()["total"] == 0

    empty = await shop.client.post("/api/checkout", headers=headers)
    assert empty.status_code == 409
    assert empty.json()["error"]["code"] == "empty_cart"


async def test_insufficient_stock_is_409_and_keeps_the_cart(shop):
    headers = await shop.login(2)
    await _set_stock(shop, 20, 2)
    await shop.client.post("/api/cart/items", json={"product_id": 21, "quantity": 1}, headers=headers)
    await shop.client.post("/api/cart/items", json={"product_id": 20, "quantity": 3}, headers=headers)
    r = await shop.client.post("/api/checkout", headers=headers)
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "insufficient_stock"
    assert error["details"] == [{"product_id": 20, "requested": 3, "available": 2}]
    assert len((await shop.client.get("/api/cart", headers=headers)).json()["items"]) == 2
    assert (await shop.client.get("/api/products/20")).json()["stock"] == 2
    assert (await shop.client.get("/api/orders", headers=headers)).json()["total"] == 0


async def test_no_overselling_under_concurrent_checkouts(shop):
    await _set_stock(shop, 33, 5)
    users = [await shop.login(i) for i in range(20)]
    for headers in users:
        r = await shop.client.post("/api/cart/items", json={"product_id": 33, "quantity": 1}, headers=headers)
        assert r.status_code == 200

    statuses: list[int] = []

    async def buy(headers: dict[str, str]) -> None:
        statuses.append((await shop.client.post("/api/checkout", headers=headers)).status_code)

    async with anyio.create_task_group() as tg:
        for headers in users:
            tg.start_soon(buy, headers)
    assert sorted(statuses) == [201] * 5 + [409] * 15
    assert (await shop.client.get("/api/products/33")).json()["stock"] == 0
    orders = [(await shop.client.get("/api/orders", headers=h)).json()["total"] for h in users]
    assert sum(orders) == 5


async def test_no_overselling_across_database_handles(tmp_path):
    """Two handles = two processes' locks: only BEGIN IMMEDIATE keeps them apart."""
    path = str(tmp_path / "shared.sqlite3")
    handles = [shop_db.Database(path, pool_size=4) for _ in range(2)]
    for handle in handles:
        await anyio.to_thread.run_sync(lambda h=handle: h.open(seed=3, products=50, users=30))
    try:
        await handles[0].write(lambda c: shop_db.set_stock(c, 7, 4))
        for user_id in range(1, 31):
            await handles[0].write(lambda c, u=user_id: shop_db.add_to_cart(c, u, 7, 1))
        outcomes: list[str] = []

        async def buy(user_id: int) -> None:
            try:
                await handles[user_id % 2].write(lambda c: shop_db.checkout(c, user_id))
                outcomes.append("ok")
            except shop_db.DomainError as exc:
                outcomes.append(exc.code)

        async with anyio.create_task_group() as tg:
            for user_id in range(1, 31):
                tg.start_soon(buy, user_id)
        assert sorted(outcomes) == ["insufficient_stock"] * 26 + ["ok"] * 4
        assert (await handles[1].read(lambda c: shop_db.get_product(c, 7)))["stock"] == 0
    finally:
        for handle in handles:
            handle.close()

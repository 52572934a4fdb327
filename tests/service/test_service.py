"""Catalogue, input validation and authentication of the ShopFlow service."""

from __future__ import annotations

import os
import time

import anyio.to_thread
import pytest

from pytest_shopflow_perf.service import ServiceConfig
from pytest_shopflow_perf.service import db as shop_db

pytestmark = pytest.mark.anyio


async def test_default_startup_is_fast_and_cleans_up(start_service):
    started = time.perf_counter()
    async with start_service(ServiceConfig()) as shop:
        elapsed = time.perf_counter() - started
        temp_path = shop.service.db.path
        health = await shop.client.get("/health")
        categories = (await shop.client.get("/api/categories")).json()
        products = (await shop.client.get("/api/products", params={"per_page": 1})).json()
    assert elapsed < 2.0, f"create + seed took {elapsed:.2f}s"
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "cache": "memory", "db": "ok"}
    assert categories["total"] == 20
    assert sum(c["product_count"] for c in categories["items"]) == 5000 == products["total"]
    assert not os.path.exists(temp_path), "the temporary database must be deleted at shutdown"


async def test_seed_makes_the_catalogue_deterministic(start_service):
    async def first_page(seed: int) -> list[dict]:
        async with start_service(seed=seed) as shop:
            return (await shop.client.get("/api/products", params={"per_page": 50})).json()["items"]

    assert await first_page(7) == await first_page(7)
    assert await first_page(7) != await first_page(8)


async def test_paging_covers_every_product_once(shop):
    seen: list[int] = []
    page = 1
    while True:
        body = (await shop.client.get("/api/products", params={"page": page, "per_page": 7})).json()
        assert body["total"] == 300
        assert body["page"] == page
        assert body["per_page"] == 7
        if not body["items"]:
            break
        assert len(body["items"]) == (7 if page < 43 else 300 - 42 * 7)
        seen += [item["id"] for item in body["items"]]
        page += 1
    assert page == 44
    assert sorted(seen) == seen == list(range(1, 301))
    default = (await shop.client.get("/api/products")).json()
    assert default["per_page"] == 20
    assert len(default["items"]) == 20


async def test_filters_and_sorting(shop):
    categories = (await shop.client.get("/api/categories")).json()["items"]
    shoes = next(c for c in categories if c["slug"] == "shoes")
    by_slug = (await shop.client.get("/api/products", params={"category": "shoes", "per_page": 100})).json()
    by_id = (await shop.client.get("/api/products", params={"category": shoes["id"], "per_page": 100})).json()
    assert by_slug == by_id
    assert by_slug["total"] == shoes["product_count"] > 0
    assert {item["category"] for item in by_slug["items"]} == {"shoes"}

    params = {"min_price": "20", "max_price": "60.5", "sort": "price", "per_page": 100}
    cheap = (await shop.client.get("/api/products", params=params)).json()
    prices = [item["price"] for item in cheap["items"]]
    assert 0 < cheap["total"] < 300
    assert all(20 <= p <= 60.5 for p in prices)
    assert prices == sorted(prices)

    desc = (await shop.client.get("/api/products", params={"sort": "-price", "per_page": 5})).json()["items"]
    assert [p["price"] for p in desc] == sorted((p["price"] for p in desc), reverse=True)
    names = (await shop.client.get("/api/products", params={"sort": "name", "per_page": 30})).json()["items"]
    assert [p["name"] for p in names] == sorted(p["name"] for p in names)
    empty = (await shop.client.get("/api/products", params={"min_price": 100, "max_price": 1})).json()
    assert empty["items"] == []
    assert empty["total"] == 0


async def test_product_detail_and_missing_product(shop):
    r = await shop.client.get("/api/products/17")
    assert r.status_code == 200
    product = r.json()
    assert product["id"] == 17
    assert product["description"]
    assert product["price"] > 0
    assert product["stock"] > 0
    missing = await shop.client.get("/api/products/99999")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "product_not_found"


async def test_search_finds_a_seeded_product(shop):
    product = (await shop.client.get("/api/products/42")).json()
    r = await shop.client.get("/api/search", params={"q": product["name"], "per_page": 100})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] >= 1
    assert body["items"][0]["id"] == 42
    assert body["query"] == " ".join(shop_db.search_terms(product["name"]))
    shoes = (await shop.client.get("/api/products", params={"q": "shoe", "per_page": 100})).json()
    assert shoes["total"] > 0
    assert all("shoe" in (p["name"] + p["category"]).lower() for p in shoes["items"])
    nothing = (await shop.client.get("/api/search", params={"q": "zzzqqq"})).json()
    assert nothing == {"items": [], "page": 1, "per_page": 20, "total": 0, "query": "zzzqqq"}


async def test_search_without_fts5_uses_like(tmp_path):
    database = shop_db.Database(str(tmp_path / "like.sqlite3"), pool_size=1, fts=False)
    await _open(database)
    try:
        product = await database.read(lambda c: shop_db.get_product(c, 42))
        query = shop_db.ProductQuery(terms=shop_db.search_terms(product["name"]), per_page=100)
        page = await database.read(lambda c: shop_db.list_products(c, query, fts=False))
        assert 42 in [item["id"] for item in page["items"]]
        odd = shop_db.ProductQuery(terms=("100%", "a_b"))
        assert (await database.read(lambda c: shop_db.list_products(c, odd, fts=False)))["total"] == 0
    finally:
        database.close()


async def _open(database: shop_db.Database) -> None:
    await anyio.to_thread.run_sync(lambda: database.open(seed=1, products=200, users=5))


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        ("GET", "/api/products/abc", None, 422, "invalid_parameter"),
        ("GET", "/api/products/-1", None, 422, "invalid_parameter"),
        ("GET", "/api/products/99999999999999999999999", None, 422, "invalid_parameter"),
        ("GET", "/api/products?per_page=101", None, 422, "invalid_parameter"),
        ("GET", "/api/products?per_page=0", None, 422, "invalid_parameter"),
        ("GET", "/api/products?page=-2", None, 422, "invalid_parameter"),
        ("GET", "/api/products?page=x", None, 422, "invalid_parameter"),
        ("GET", "/api/products?min_price=cheap", None, 422, "invalid_parameter"),
        ("GET", "/api/products?max_price=nan", None, 422, "invalid_parameter"),
        ("GET", "/api/products?min_price=-5", None, 422, "invalid_parameter"),
        ("GET", "/api/products?sort=popularity", None, 422, "invalid_parameter"),
        ("GET", "/api/products?category=nope", None, 422, "invalid_parameter"),
        ("GET", "/api/search", None, 422, "invalid_parameter"),
        ("GET", "/api/search?q=%20%21", None, 422, "invalid_parameter"),
        ("GET", "/no/such/route", None, 404, "not_found"),
        ("DELETE", "/api/products", None, 405, "method_not_allowed"),
        ("POST", "/api/login", b"{not json", 400, "invalid_json"),
        ("POST", "/api/login", b"\xff\xfe", 400, "invalid_json"),
        pytest.param("POST", "/api/login", b"[" * 60_000, 400, "invalid_json", id="deeply-nested-json"),
        ("POST", "/api/login", b'["a list"]', 422, "invalid_body"),
        ("POST", "/api/login", b'{"email": 5, "password": "x"}', 422, "invalid_body"),
        pytest.param("POST", "/api/login", b"x" * 70_000, 413, "body_too_large", id="body-too-large"),
    ],
)
async def test_bad_input_is_a_json_4xx(shop, method, url, body, status, code):
    r = await shop.client.request(method, url, content=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"product_id": 1, "quantity": -1},
        {"product_id": 1, "quantity": 0},
        {"product_id": 1, "quantity": 101},
        {"product_id": 1, "quantity": 1.5},
        {"product_id": 1, "quantity": True},
        {"product_id": "1", "quantity": 1},
        {"quantity": 1},
    ],
)
async def test_bad_cart_bodies_are_422(shop, body):
    headers = await shop.login(1)
    r = await shop.client.post("/api/cart/items", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_body"


async def test_login_and_token_checks(shop):
    bad = await shop.client.post("/api/login", json={"email": "customer1@shopflow.test", "password": "nope"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_credentials"
    unknown = await shop.client.post("/api/login", json={"email": "who@example.com", "password": "secret1"})
    assert unknown.status_code == 401
    ok = await shop.client.post("/api/login", json={"email": "Customer39@shopflow.test", "password": "secret39"})
    assert ok.status_code == 200
    assert ok.json()["user_id"] == 40
    token = ok.json()["token"]
    user, expires, signature = token.split(".")
    forged = f"{int(user) - 1}.{expires}.{signature}"
    for headers in [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
                    {"Authorization": "Bearer garbage"}, {"Authorization": f"Bearer {forged}"}]:  # fmt: skip
        for method, url in [("GET", "/api/cart"), ("POST", "/api/checkout"), ("GET", "/api/orders"),
                            ("GET", "/api/orders/1"), ("DELETE", "/api/cart/items/1")]:  # fmt: skip
            r = await shop.client.request(method, url, headers=headers)
            assert r.status_code == 401, (method, url, headers)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["code"] in {"unauthorized", "invalid_token"}
    assert (await shop.client.get("/api/cart", headers={"Authorization": f"Bearer {token}"})).status_code == 200

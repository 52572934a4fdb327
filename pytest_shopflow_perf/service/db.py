"""SQLite storage of the ShopFlow reference service: schema, seed data, queries.

One module (~650 lines): the schema, its seed and the queries that depend on both change together.

Why SQLite: a real database with real transactions and locking, no server to
install, and a file that several worker processes can share. WAL mode lets
readers run while a writer commits. Every call runs in a worker thread on a
small connection pool (:meth:`Database.read` / :meth:`Database.write`), so a
slow query never freezes the event loop.

Writes take ``BEGIN IMMEDIATE`` (the database write lock, across processes)
under a per-process lock (so threads of one process queue on a cheap mutex
instead of SQLite's sleeping busy handler). Checkout reads stock and
decrements it inside that one transaction, and ``CHECK (stock >= 0)`` backs
it up: no interleaving of checkouts can oversell.

Seed data is generated from a seed alone (no external files): 20 categories,
``products`` products and ``users`` customers. Customer ``i`` (0-based) has
the email ``customer{i}@shopflow.test``, the password ``secret{i}`` and the
user id ``i + 1``. Seeding is idempotent: a database file that already holds
data is reused as it is (stock and orders included).
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import random
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

import anyio
import anyio.to_thread

__all__ = [
    "MAX_LINE_QUANTITY",
    "SORTS",
    "Database",
    "DomainError",
    "ProductQuery",
    "add_to_cart",
    "check_login",
    "checkout",
    "email_for",
    "fts5_available",
    "get_cart",
    "get_order",
    "get_product",
    "list_categories",
    "list_orders",
    "list_products",
    "password_for",
    "remove_from_cart",
    "search_terms",
    "set_cart_quantity",
    "set_stock",
]

T = TypeVar("T")
Row = dict[str, Any]

MAX_LINE_QUANTITY = 100
SORTS = {
    "id": "p.id",
    "price": "p.price_cents, p.id",
    "-price": "p.price_cents DESC, p.id",
    "name": "p.name, p.id",
    "-name": "p.name DESC, p.id",
    "-rating": "p.rating DESC, p.id",
    "relevance": "p.id",  # replaced by the full-text rank when a query is given
}


class DomainError(Exception):
    """A business rule said no; the HTTP layer maps ``kind`` to a 4xx status."""

    def __init__(
        self,
        kind: Literal["not_found", "conflict", "invalid"],
        code: str,
        message: str,
        details: object = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.details = details


def email_for(index: int) -> str:
    return f"customer{index}@shopflow.test"


def password_for(index: int) -> str:
    return f"secret{index}"


def _hash_password(salt: str, password: str) -> str:
    # Deliberately cheap (not a password KDF): login is a load-test hot path, not real security.
    return hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()


# --------------------------------------------------------------------------- seed data

# slug, display name, product nouns, price range in dollars
_CATEGORIES: tuple[tuple[str, str, tuple[str, ...], tuple[int, int]], ...] = (
    ("shoes", "Shoes", ("Running Shoe", "Trail Shoe", "Sneaker", "Boot", "Sandal", "Loafer"), (25, 220)),
    ("shirts", "Shirts", ("T-Shirt", "Oxford Shirt", "Polo", "Henley", "Flannel Shirt"), (12, 90)),
    ("jackets", "Jackets", ("Rain Jacket", "Down Jacket", "Fleece", "Windbreaker", "Parka"), (40, 400)),
    ("pants", "Pants", ("Jeans", "Chinos", "Joggers", "Cargo Pants", "Shorts"), (20, 140)),
    ("bags", "Bags", ("Backpack", "Tote Bag", "Duffel", "Messenger Bag", "Sling Bag"), (15, 260)),
    (
        "watches",
        "Watches",
        ("Chronograph", "Dive Watch", "Smartwatch", "Field Watch", "Dress Watch"),
        (45, 900),
    ),
    ("audio", "Audio", ("Headphones", "Earbuds", "Speaker", "Soundbar", "Turntable"), (20, 600)),
    ("computers", "Computers", ("Laptop", "Keyboard", "Mouse", "Monitor", "Webcam"), (15, 2200)),
    ("phones", "Phones & Tablets", ("Phone Case", "Tablet", "Charger", "Power Bank", "Stylus"), (8, 1100)),
    ("kitchen", "Kitchen", ("Chef Knife", "Skillet", "Dutch Oven", "Kettle", "Coffee Grinder"), (10, 350)),
    ("furniture", "Furniture", ("Desk", "Bookshelf", "Armchair", "Side Table", "Bar Stool"), (40, 1500)),
    ("garden", "Garden", ("Planter", "Garden Hose", "Pruner", "Watering Can", "Seed Kit"), (6, 120)),
    ("toys", "Toys", ("Puzzle", "Building Set", "Plush Bear", "Board Game", "Kite"), (5, 150)),
    ("books", "Books", ("Novel", "Cookbook", "Field Guide", "Notebook", "Atlas"), (5, 60)),
    ("sports", "Sports", ("Yoga Mat", "Dumbbell", "Tennis Racket", "Football", "Jump Rope"), (8, 300)),
    ("outdoor", "Outdoor", ("Tent", "Sleeping Bag", "Headlamp", "Camp Stove", "Trekking Poles"), (15, 700)),
    ("beauty", "Beauty", ("Face Cream", "Shampoo", "Lip Balm", "Perfume", "Hair Dryer"), (4, 180)),
    ("pets", "Pet Supplies", ("Dog Bed", "Cat Tree", "Leash", "Pet Bowl", "Chew Toy"), (5, 250)),
    ("office", "Office", ("Desk Lamp", "Fountain Pen", "Planner", "Stapler", "Desk Organizer"), (4, 160)),
    (
        "tools",
        "Tools",
        ("Cordless Drill", "Screwdriver Set", "Tape Measure", "Hammer", "Wrench Set"),
        (8, 400),
    ),
)
_BRANDS = (
    "Northwind", "Alder", "Brightline", "Kestrel", "Lumen", "Fjordhaus", "Copperleaf", "Halcyon",
    "Redwood", "Tidewater", "Ironbark", "Meridian", "Juniper", "Solstice", "Granite", "Wayfarer",
)  # fmt: skip
_ADJECTIVES = (
    "Classic", "Ultralight", "Everyday", "Pro", "Compact", "Deluxe", "Rugged", "Vintage",
    "Modern", "Essential", "Premium", "Eco", "Urban", "Alpine", "Coastal", "Heritage",
)  # fmt: skip
_COLOURS = ("Black", "Navy", "Olive", "Sand", "Crimson", "Slate", "Ivory", "Teal", "Charcoal", "Amber")
_FEATURES = (
    "Built to last with reinforced seams and quality hardware.",
    "Backed by a two-year warranty.",
    "Ships in recyclable packaging.",
    "A customer favourite for everyday use.",
    "Designed with input from professionals.",
    "Lightweight and easy to clean.",
    "Made from responsibly sourced materials.",
    "Water resistant for unpredictable weather.",
    "Tested for comfort over long days.",
    "Free returns within thirty days.",
    "Limited edition colourway.",
    "Pairs well with the rest of the collection.",
)


def _generate_products(rng: random.Random, count: int) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for product_id in range(1, count + 1):
        category_id = rng.randrange(len(_CATEGORIES)) + 1
        _, category_name, nouns, (low, high) = _CATEGORIES[category_id - 1]
        brand, adjective, noun = rng.choice(_BRANDS), rng.choice(_ADJECTIVES), rng.choice(nouns)
        colour = rng.choice(_COLOURS)
        # log-uniform prices: many cheap items, few expensive ones, all ending in .99 or .49
        dollars = int(low * (high / low) ** rng.random())
        price_cents = dollars * 100 + rng.choice((99, 49, 99))
        description = (
            f"The {adjective.lower()} {noun.lower()} from {brand}, in {colour.lower()}. "
            + " ".join(rng.sample(_FEATURES, 2))
            + f" Part of our {category_name.lower()} range."
        )
        rows.append(
            (
                product_id,
                f"SF-{category_id:02d}-{product_id:06d}",
                category_id,
                f"{brand} {adjective} {noun} ({colour})",
                description,
                price_cents,
                rng.randint(200, 2000),  # enough stock that long soaks rarely sell out by accident
                round(rng.uniform(2.5, 5.0), 1),
            )
        )
    return rows


def _generate_users(rng: random.Random, count: int) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for index in range(count):
        salt = f"{rng.getrandbits(64):016x}"
        rows.append(
            (
                index + 1,
                email_for(index),
                f"Customer {index}",
                salt,
                _hash_password(salt, password_for(index)),
            )
        )
    return rows


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS categories (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE,"
    " category_id INTEGER NOT NULL REFERENCES categories(id), name TEXT NOT NULL,"
    " description TEXT NOT NULL, price_cents INTEGER NOT NULL CHECK (price_cents >= 0),"
    " stock INTEGER NOT NULL CHECK (stock >= 0), rating REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS products_category_price ON products (category_id, price_cents)",
    "CREATE INDEX IF NOT EXISTS products_price ON products (price_cents)",
    "CREATE INDEX IF NOT EXISTS products_name ON products (name)",
    "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL, salt TEXT NOT NULL, password_hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cart_items (user_id INTEGER NOT NULL REFERENCES users(id),"
    " product_id INTEGER NOT NULL REFERENCES products(id),"
    " quantity INTEGER NOT NULL CHECK (quantity > 0), PRIMARY KEY (user_id, product_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL"
    " REFERENCES users(id), status TEXT NOT NULL, total_cents INTEGER NOT NULL, created_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS orders_user ON orders (user_id, id)",
    "CREATE TABLE IF NOT EXISTS order_items (order_id INTEGER NOT NULL REFERENCES orders(id),"
    " product_id INTEGER NOT NULL REFERENCES products(id), name TEXT NOT NULL,"
    " price_cents INTEGER NOT NULL, quantity INTEGER NOT NULL,"
    " PRIMARY KEY (order_id, product_id)) WITHOUT ROWID",
)
_FTS_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS products_fts USING fts5"
    "(name, description, category, tokenize = 'porter unicode61')"
)


def fts5_available() -> bool:
    """Whether this SQLite build has FTS5 (search falls back to LIKE otherwise)."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE t USING fts5(a)")
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
    return True


# --------------------------------------------------------------------------- the database


class Database:
    """A pool of SQLite connections used from worker threads."""

    def __init__(self, path: str, *, pool_size: int = 4, fts: bool | None = None) -> None:
        self.path = path
        self.fts = fts5_available() if fts is None else fts
        self.secret = b""
        self.namespace = ""
        self.categories: dict[str, int] = {}
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._connections: list[sqlite3.Connection] = []
        self._pool_size = pool_size
        self._limiter = anyio.CapacityLimiter(pool_size)
        self._write_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
        return conn

    def open(self, *, seed: int, products: int, users: int) -> None:
        """Create the schema, seed it once, open the pool (blocking: call from a thread)."""
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            with self._write_lock:
                conn.execute("BEGIN IMMEDIATE")  # one seeder even when workers share the file
                try:
                    self._setup(conn, seed=seed, products=products, users=users)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            self.secret = bytes.fromhex(meta["secret"])
            self.namespace = meta["namespace"]
            self.fts = self.fts and meta.get("fts") == "1"
            self.categories = dict(conn.execute("SELECT slug, id FROM categories").fetchall())
        finally:
            conn.close()
        for _ in range(self._pool_size):
            pooled = self._connect()
            self._connections.append(pooled)
            self._pool.put(pooled)

    def _setup(self, conn: sqlite3.Connection, *, seed: int, products: int, users: int) -> None:
        for statement in _SCHEMA:
            conn.execute(statement)
        if conn.execute("SELECT 1 FROM meta WHERE key = 'seed'").fetchone():
            return
        rng = random.Random(seed)
        conn.executemany(
            "INSERT INTO categories (id, slug, name) VALUES (?, ?, ?)",
            [(index + 1, slug, name) for index, (slug, name, _, _) in enumerate(_CATEGORIES)],
        )
        conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _generate_products(rng, products))
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", _generate_users(rng, users))
        if self.fts:
            conn.execute(_FTS_SCHEMA)
            conn.execute(
                "INSERT INTO products_fts (rowid, name, description, category)"
                " SELECT p.id, p.name, p.description, c.name FROM products p"
                " JOIN categories c ON c.id = p.category_id"
            )
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("seed", str(seed)),
                ("products", str(products)),
                ("users", str(users)),
                ("fts", "1" if self.fts else "0"),
                ("secret", secrets.token_hex(32)),
                ("namespace", secrets.token_hex(6)),
            ],
        )

    def close(self) -> None:
        for conn in self._connections:
            conn.close()
        self._connections.clear()

    def _with_connection(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        conn = self._pool.get()  # never blocks for long: the limiter admits at most pool_size threads
        try:
            if not write:
                return fn(conn)
            with self._write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
        finally:
            self._pool.put(conn)

    def pool_stats(self) -> dict[str, int]:
        """Connections in use, requests waiting for one, and the pool's size (``/metrics``)."""
        statistics = self._limiter.statistics()
        return {"in_use": statistics.borrowed_tokens, "waiting": statistics.tasks_waiting, "size": self._pool_size}

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a worker thread (autocommit reads)."""
        return await anyio.to_thread.run_sync(self._with_connection, fn, False, limiter=self._limiter)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction; any exception rolls it back."""
        return await anyio.to_thread.run_sync(self._with_connection, fn, True, limiter=self._limiter)


# --------------------------------------------------------------------------- catalogue queries


def _price(cents: int) -> float:
    return cents / 100


_LIST_COLUMNS = "p.id, p.sku, p.name, c.slug, p.price_cents, p.stock, p.rating"
_DETAIL_COLUMNS = _LIST_COLUMNS + ", p.description, p.category_id"


def _product(row: Sequence[Any]) -> Row:
    product: Row = {
        "id": row[0],
        "sku": row[1],
        "name": row[2],
        "category": row[3],
        "price": _price(row[4]),
        "stock": row[5],
        "rating": row[6],
    }
    if len(row) > 7:
        product["description"] = row[7]
        product["category_id"] = row[8]
    return product


_TOKEN = re.compile(r"\w+")


def search_terms(text: str) -> tuple[str, ...]:
    """Words of a free-text query, lower-cased, at most 8 (bounds query cost and cache keys)."""
    return tuple(_TOKEN.findall(text.lower()))[:8]


@dataclass(frozen=True)
class ProductQuery:
    """A validated product listing or search request; also the cache key."""

    page: int = 1
    per_page: int = 20
    category_id: int | None = None
    min_cents: int | None = None
    max_cents: int | None = None
    terms: tuple[str, ...] = ()
    sort: str = "id"

    def cache_key(self) -> str:
        return (
            f"products:{self.category_id}:{self.min_cents}:{self.max_cents}:{self.sort}"
            f":{' '.join(self.terms)}:{self.page}:{self.per_page}"
        )


def list_products(conn: sqlite3.Connection, query: ProductQuery, *, fts: bool) -> Row:
    """One page of products plus the total matching, for listing and search alike."""
    source = "products p JOIN categories c ON c.id = p.category_id"
    where: list[str] = []
    params: list[object] = []
    order = SORTS[query.sort]
    if query.terms and fts:
        source = "products_fts f JOIN products p ON p.id = f.rowid JOIN categories c ON c.id = p.category_id"
        where.append("products_fts MATCH ?")
        params.append(" ".join(f'"{term}"*' for term in query.terms))
        if query.sort == "relevance":
            order = "f.rank, p.id"
    elif query.terms:
        for term in query.terms:
            pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(p.name LIKE ? ESCAPE '\\' OR p.description LIKE ? ESCAPE '\\' OR c.name LIKE ? ESCAPE '\\')")
            params += [pattern, pattern, pattern]
    if query.category_id is not None:
        where.append("p.category_id = ?")
        params.append(query.category_id)
    if query.min_cents is not None:
        where.append("p.price_cents >= ?")
        params.append(query.min_cents)
    if query.max_cents is not None:
        where.append("p.price_cents <= ?")
        params.append(query.max_cents)
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    conn.execute("BEGIN")  # one snapshot for the count and the page
    try:
        (total,) = conn.execute(f"SELECT COUNT(*) FROM {source}{condition}", params).fetchone()
        rows = conn.execute(
            f"SELECT {_LIST_COLUMNS} FROM {source}{condition} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, query.per_page, (query.page - 1) * query.per_page],
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return {
        "items": [_product(row) for row in rows],
        "page": query.page,
        "per_page": query.per_page,
        "total": total,
    }


def get_product(conn: sqlite3.Connection, product_id: int) -> Row:
    row = conn.execute(
        f"SELECT {_DETAIL_COLUMNS} FROM products p JOIN categories c ON c.id = p.category_id WHERE p.id = ?",
        (product_id,),
    ).fetchone()
    if row is None:
        raise DomainError("not_found", "product_not_found", f"no product with id {product_id}")
    return _product(row)


def list_categories(conn: sqlite3.Connection) -> Row:
    rows = conn.execute(
        "SELECT c.id, c.slug, c.name, COUNT(p.id) FROM categories c"
        " LEFT JOIN products p ON p.category_id = c.id GROUP BY c.id ORDER BY c.id"
    ).fetchall()
    return {
        "items": [{"id": r[0], "slug": r[1], "name": r[2], "product_count": r[3]} for r in rows],
        "total": len(rows),
    }


def set_stock(conn: sqlite3.Connection, product_id: int, stock: int) -> Row:
    if conn.execute("UPDATE products SET stock = ? WHERE id = ?", (stock, product_id)).rowcount != 1:
        raise DomainError("not_found", "product_not_found", f"no product with id {product_id}")
    return get_product(conn, product_id)


# --------------------------------------------------------------------------- users


def check_login(conn: sqlite3.Connection, email: str, password: str) -> int | None:
    """The user id when the credentials are right, else None (no hint which part was wrong)."""
    row = conn.execute("SELECT id, salt, password_hash FROM users WHERE email = ?", (email.lower(),)).fetchone()
    if row is None or not hmac.compare_digest(row[2], _hash_password(row[1], password)):
        return None
    return int(row[0])


# --------------------------------------------------------------------------- cart and orders


def get_cart(conn: sqlite3.Connection, user_id: int) -> Row:
    rows = conn.execute(
        "SELECT ci.product_id, p.name, p.price_cents, ci.quantity, p.stock FROM cart_items ci"
        " JOIN products p ON p.id = ci.product_id WHERE ci.user_id = ? ORDER BY ci.product_id",
        (user_id,),
    ).fetchall()
    items = [
        {
            "product_id": r[0],
            "name": r[1],
            "price": _price(r[2]),
            "quantity": r[3],
            "line_total": _price(r[2] * r[3]),
            "in_stock": r[4] >= r[3],
        }
        for r in rows
    ]
    return {
        "items": items,
        "item_count": sum(r[3] for r in rows),
        "total": _price(sum(r[2] * r[3] for r in rows)),
    }


def _require_product(conn: sqlite3.Connection, product_id: int) -> None:
    if conn.execute("SELECT 1 FROM products WHERE id = ?", (product_id,)).fetchone() is None:
        raise DomainError("not_found", "product_not_found", f"no product with id {product_id}")


def add_to_cart(conn: sqlite3.Connection, user_id: int, product_id: int, quantity: int) -> Row:
    _require_product(conn, product_id)
    row = conn.execute(
        "SELECT quantity FROM cart_items WHERE user_id = ? AND product_id = ?", (user_id, product_id)
    ).fetchone()
    new_quantity = quantity + (row[0] if row else 0)
    if new_quantity > MAX_LINE_QUANTITY:
        raise DomainError("invalid", "quantity_limit", f"at most {MAX_LINE_QUANTITY} of one product per cart")
    conn.execute(
        "INSERT INTO cart_items (user_id, product_id, quantity) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = excluded.quantity",
        (user_id, product_id, new_quantity),
    )
    return get_cart(conn, user_id)


def set_cart_quantity(conn: sqlite3.Connection, user_id: int, product_id: int, quantity: int) -> Row:
    _require_product(conn, product_id)
    if quantity == 0:
        conn.execute("DELETE FROM cart_items WHERE user_id = ? AND product_id = ?", (user_id, product_id))
    else:
        conn.execute(
            "INSERT INTO cart_items (user_id, product_id, quantity) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = excluded.quantity",
            (user_id, product_id, quantity),
        )
    return get_cart(conn, user_id)


def remove_from_cart(conn: sqlite3.Connection, user_id: int, product_id: int) -> Row:
    deleted = conn.execute(
        "DELETE FROM cart_items WHERE user_id = ? AND product_id = ?", (user_id, product_id)
    ).rowcount
    if deleted == 0:
        raise DomainError("not_found", "not_in_cart", f"product {product_id} is not in the cart")
    return get_cart(conn, user_id)


def checkout(conn: sqlite3.Connection, user_id: int) -> Row:
    """Turn the cart into an order; must run inside :meth:`Database.write` (one transaction)."""
    lines = conn.execute(
        "SELECT ci.product_id, p.name, p.price_cents, ci.quantity, p.stock FROM cart_items ci"
        " JOIN products p ON p.id = ci.product_id WHERE ci.user_id = ? ORDER BY ci.product_id",
        (user_id,),
    ).fetchall()
    if not lines:
        raise DomainError("conflict", "empty_cart", "the cart is empty")
    short = [
        {"product_id": pid, "requested": qty, "available": stock} for pid, _, _, qty, stock in lines if stock < qty
    ]
    if short:
        raise DomainError("conflict", "insufficient_stock", "not enough stock for some items", short)
    for pid, _, _, qty, _ in lines:
        updated = conn.execute(
            "UPDATE products SET stock = stock - ? WHERE id = ? AND stock >= ?", (qty, pid, qty)
        ).rowcount
        if updated != 1:  # cannot happen inside BEGIN IMMEDIATE; kept as the last line of defence
            raise DomainError("conflict", "insufficient_stock", f"stock of product {pid} changed")
    total = sum(price * qty for _, _, price, qty, _ in lines)
    created_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    cursor = conn.execute(
        "INSERT INTO orders (user_id, status, total_cents, created_at) VALUES (?, 'placed', ?, ?)",
        (user_id, total, created_at),
    )
    order_id = cursor.lastrowid
    conn.executemany(
        "INSERT INTO order_items (order_id, product_id, name, price_cents, quantity) VALUES (?, ?, ?, ?, ?)",
        [(order_id, pid, name, price, qty) for pid, name, price, qty, _ in lines],
    )
    conn.execute("DELETE FROM cart_items WHERE user_id = ?", (user_id,))
    return get_order(conn, user_id, int(order_id or 0))


def list_orders(conn: sqlite3.Connection, user_id: int, page: int, per_page: int) -> Row:
    (total,) = conn.execute("SELECT COUNT(*) FROM orders WHERE user_id = ?", (user_id,)).fetchone()
    rows = conn.execute(
        "SELECT o.id, o.status, o.total_cents, o.created_at,"
        " (SELECT SUM(quantity) FROM order_items WHERE order_id = o.id)"
        " FROM orders o WHERE o.user_id = ? ORDER BY o.id DESC LIMIT ? OFFSET ?",
        (user_id, per_page, (page - 1) * per_page),
    ).fetchall()
    items = [{"id": r[0], "status": r[1], "total": _price(r[2]), "created_at": r[3], "item_count": r[4]} for r in rows]
    return {"items": items, "page": page, "per_page": per_page, "total": total}


def get_order(conn: sqlite3.Connection, user_id: int, order_id: int) -> Row:
    """One order of this user; another user's order is 'not found' (no existence leak)."""
    row = conn.execute(
        "SELECT id, status, total_cents, created_at FROM orders WHERE id = ? AND user_id = ?",
        (order_id, user_id),
    ).fetchone()
    if row is None:
        raise DomainError("not_found", "order_not_found", f"no order with id {order_id}")
    lines = conn.execute(
        "SELECT product_id, name, price_cents, quantity FROM order_items WHERE order_id = ? ORDER BY product_id",
        (order_id,),
    ).fetchall()
    return {
        "id": row[0],
        "status": row[1],
        "total": _price(row[2]),
        "created_at": row[3],
        "item_count": sum(line[3] for line in lines),
        "items": [
            {
                "product_id": line[0],
                "name": line[1],
                "price": _price(line[2]),
                "quantity": line[3],
                "line_total": _price(line[2] * line[3]),
            }
            for line in lines
        ],
    }

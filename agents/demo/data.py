"""The demo analytics database (SQLite) that Text2SQL queries, and the demo knowledge documents.

Deterministic (seeded RNG), rebuilt only when missing, so `seed_demo` stays idempotent.
"""
from __future__ import annotations

import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path

from agents import conf
from agents.tools.analytics import dialect_of, sqlite_path

DEMO_DOCS_DIR = Path(__file__).resolve().parent / "docs"
REGIONS = ["north", "south", "east", "west"]
SEGMENTS = ["smb", "mid-market", "enterprise"]
CATEGORIES = ["hardware", "software", "services"]
TICKET_CATEGORIES = ["login", "billing", "performance", "export", "other"]

SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region TEXT NOT NULL,
    segment TEXT NOT NULL, signup_date TEXT NOT NULL, churned INTEGER NOT NULL DEFAULT 0);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    price REAL NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    order_date TEXT NOT NULL, region TEXT NOT NULL, total REAL NOT NULL, discount REAL NOT NULL DEFAULT 0);
CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL, unit_price REAL NOT NULL);
CREATE TABLE support_tickets (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    category TEXT NOT NULL, opened_at TEXT NOT NULL, resolved_hours REAL, csat INTEGER);
"""


def create_demo_analytics_db(path: Path, *, seed: int = 7, customers: int = 400, orders: int = 4000) -> bool:
    """Create the sample database at `path` unless it exists; returns whether it was created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    start = date(2026, 1, 1)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    connection = sqlite3.connect(tmp)
    try:
        connection.executescript(SCHEMA)
        connection.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
            [
                (i, f"Customer {i}", rng.choice(REGIONS), rng.choice(SEGMENTS),
                 (start - timedelta(days=rng.randint(0, 700))).isoformat(), int(rng.random() < 0.12))
                for i in range(1, customers + 1)
            ],
        )
        products = [(i, f"Product {i}", rng.choice(CATEGORIES), round(rng.uniform(5, 500), 2)) for i in range(1, 41)]
        connection.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", products)
        items: list[tuple[int, int, int, int, float]] = []
        order_rows: list[tuple[int, int, str, str, float, float]] = []
        for order_id in range(1, orders + 1):
            customer = rng.randint(1, customers)
            lines = [(rng.choice(products), rng.randint(1, 5)) for _ in range(rng.randint(1, 4))]
            total = round(sum(p[3] * q for p, q in lines), 2)
            order_rows.append((order_id, customer, (start + timedelta(days=rng.randint(0, 320))).isoformat(),
                               rng.choice(REGIONS), total, rng.choice([0, 0, 0, 0.1, 0.2])))
            items.extend((len(items) + 1, order_id, p[0], q, p[3]) for p, q in lines)
        connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", order_rows)
        connection.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", items)
        connection.executemany(
            "INSERT INTO support_tickets VALUES (?, ?, ?, ?, ?, ?)",
            [
                (i, rng.randint(1, customers), rng.choice(TICKET_CATEGORIES),
                 (start + timedelta(days=rng.randint(0, 320))).isoformat(),
                 round(rng.uniform(0.5, 72), 1), rng.randint(1, 5))
                for i in range(1, 1201)
            ],
        )
        connection.commit()
    finally:
        connection.close()
    tmp.rename(path)
    return True


def seed_analytics() -> bool:
    """Create the default analytics database if it is the (missing) SQLite demo file."""
    url = conf.analytics_database_url()
    if dialect_of(url) != "sqlite":
        return False
    return create_demo_analytics_db(sqlite_path(url))

"""Run the ShopFlow reference service under uvicorn, on loopback only.

``python -m pytest_shopflow_perf.service --host 127.0.0.1 --port 8000
[--redis-url URL] [--db PATH] [--seed N] [--products N] [--users N]
[--faults JSON]``. Options override the ``SHOPFLOW_*`` environment. A
non-loopback ``--host`` is refused: the service has unauthenticated admin
fault knobs and is meant for load tests, never for a reachable network.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_shopflow_perf.service",
        description="ShopFlow reference e-commerce API (load-test target).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000, 0 picks a free one)")
    parser.add_argument("--redis-url", help="Redis cache URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--db", help="SQLite file (default: a temporary file deleted at exit)")
    parser.add_argument("--seed", type=int, help="seed of the generated catalogue and of fault randomness")
    parser.add_argument("--products", type=int, help="number of seeded products (default 5000)")
    parser.add_argument("--users", type=int, help="number of seeded customers (default 1000)")
    parser.add_argument("--faults", help="initial faults as JSON (see /admin/faults)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    parser.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not _is_loopback_host(args.host):
        print(
            f"refusing to bind {args.host!r}: the ShopFlow service listens on loopback only "
            "(127.0.0.1, ::1 or localhost)",
            file=sys.stderr,
        )
        return 2

    import uvicorn

    from .app import ServiceConfig, create_app
    from .faults import FaultError, FaultSettings

    try:
        config = ServiceConfig.from_env()
        overrides: dict[str, Any] = {
            "redis_url": args.redis_url,
            "db_path": args.db,
            "seed": args.seed,
            "products": args.products,
            "users": args.users,
            "faults": FaultSettings.from_text(args.faults) if args.faults else None,
        }
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    except (ValueError, FaultError) as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One base for the plugin's errors: ``except ShopflowPerfError`` catches every one of them.

Each error still derives from the built-in it has always been (ValueError, RuntimeError,
httpx.TransportError...), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

__all__ = ["ShopflowPerfError"]


class ShopflowPerfError(Exception):
    """Base of every error the plugin raises on purpose (bad input, refused target, unusable baseline...)."""

"""One base for the plugin's errors: ``except ShopflowPerfError`` catches every one of them.

Each error still derives from the built-in it has always been (ValueError, RuntimeError,
httpx.TransportError...), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ShopflowPerfError", "hide_own_errors"]


class ShopflowPerfError(Exception):
    """Base of every error the plugin raises on purpose (bad input, refused target, unusable baseline...)."""


def hide_own_errors(excinfo: Any) -> bool:
    """``__tracebackhide__`` of a plugin frame on the user's path: hidden for the errors raised on purpose.

    A usage error, an SLO breach or a bad argument then shows the user's own line and the
    message, not the plugin's source; any other exception (a bug) keeps every frame. pytest
    calls it with the ``ExceptionInfo`` (pytest docs, "Writing well integrated assertion
    helpers"); pytest is loaded whenever it does, so its ``UsageError`` is looked up, not imported.
    """
    value = getattr(excinfo, "value", None)
    pytest = sys.modules.get("pytest")
    usage = getattr(pytest, "UsageError", ()) if pytest is not None else ()
    return isinstance(value, (ShopflowPerfError, AssertionError, *([usage] if usage else [])))

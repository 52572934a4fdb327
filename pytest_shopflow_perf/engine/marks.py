"""The mark that an exception was already counted where it happened (a request, a measured block).

The engine counts an exception that ends an iteration on the journey's row unless it carries
this mark, so an error is never counted twice.
"""

from __future__ import annotations

import httpx

RECORDED = "__shopflow_perf_recorded__"
ERROR_EXTENSION = "shopflow_perf.error"
MEASURED_ROW = "__shopflow_perf_measured_row__"


def mark_recorded(exc: BaseException) -> None:
    setattr(exc, RECORDED, True)


def is_recorded(exc: BaseException) -> bool:
    if getattr(exc, RECORDED, False):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return ERROR_EXTENSION in exc.response.extensions
    return False


def mark_measured(exc: BaseException, row: str) -> None:
    """Counted on a measured row: the engine still keeps its traceback (the block's own error)."""
    if not getattr(exc, RECORDED, False):
        setattr(exc, MEASURED_ROW, row)
    mark_recorded(exc)


def measured_row(exc: BaseException) -> str | None:
    row = getattr(exc, MEASURED_ROW, None)
    return row if isinstance(row, str) else None

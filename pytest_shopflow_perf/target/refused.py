"""The error of a request the target rule refused: raised before any packet, counted as kind ``refused``."""

from __future__ import annotations

import httpx

from pytest_shopflow_perf._errors import ShopflowPerfError

__all__ = ["TargetRefused"]


class TargetRefused(ShopflowPerfError, httpx.TransportError):
    """A request or connection to a host the target rule refuses: it is never sent."""

    def __init__(self, host: str, detail: str | None = None) -> None:
        self.host = host
        super().__init__(
            detail
            or f"refused to send a request to {host!r}: not loopback and not allowed; "
            f"allow it with `--perf-allow-host {host}` if it is a test environment you own"
        )

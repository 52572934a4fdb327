"""A read-only view of a run in progress, for whoever judges it while it goes (the SLO abort watchdog).

``LiveView`` is what the watchdog may read of a live recorder: figures of the run
so far and the newest span of closed windows, never the recorder's histograms,
series or rows themselves. :class:`~pytest_shopflow_perf.metrics.recorder.Recorder`
implements it. A view's figures hold at the moment they are read: the recorder goes
on recording, so read them between windows (the engine calls its watchdog then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pytest_shopflow_perf.metrics.hdr import count_above, mean_us

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram


@dataclass(frozen=True)
class LiveTotals:
    """The run so far, on one endpoint or all of them: counts, and the latency of successful requests.

    ``errors`` of the whole run include the errors without a request of their own (failed
    checks, journey exceptions). The latency figures are computed when asked, not before.
    """

    requests: int
    errors: int
    _success_histograms: tuple[HdrHistogram, ...] = ()

    @property
    def successes(self) -> int:
        return sum(h.get_total_count() for h in self._success_histograms)

    @property
    def max_us(self) -> int:
        """The slowest success (0 when there is none)."""
        return max((h.get_max_value() for h in self._success_histograms), default=0)

    def sum_us(self) -> float:
        """The latencies of every success added up (per endpoint: its exact HDR mean times its count)."""
        return float(sum(mean_us(h) * h.get_total_count() for h in self._success_histograms))

    def count_above(self, limit_us: float) -> int:
        """How many successes took longer than ``limit_us``."""
        return sum(count_above(h, limit_us) for h in self._success_histograms)


@dataclass(frozen=True)
class LiveSpan:
    """Requests of a span of closed windows: ``counts`` are their merged HDR buckets (None: no success)."""

    start: float
    end: float
    requests: int
    errors: int
    counts: Any


class LiveView(Protocol):
    """What a judge of a run in progress may read of it."""

    def endpoint_names(self) -> list[str]:
        """The endpoints seen so far."""
        ...

    def totals(self, endpoint: str | None) -> LiveTotals:
        """The run so far on ``endpoint`` (None: the whole run); zeros for an endpoint not seen yet."""
        ...

    def closed_windows(self) -> int:
        """How many 1-second windows of the run have closed."""
        ...

    def newest_span(self, endpoint: str | None, seconds: float) -> LiveSpan | None:
        """The span of ``seconds`` that ends with the newest closed window, or None before any (or no such endpoint)."""
        ...

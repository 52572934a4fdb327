"""Lossless latency recording: the live recorder of a run, per endpoint and per 1-second window.

Memory stays flat over a long run: only the open window and the run totals are
live histograms; a window is reduced to a few figures when it closes (a live
histogram per window would cost ~188 KB each, 6.8 GB after a one-hour soak of
ten endpoints). Percentiles are computed once per closed window, never per
request (one look-up costs ~0.5 ms). The histogram helpers are in
:mod:`pytest_shopflow_perf.metrics.hdr`; endpoint names are collapsed here (``/items/{id}``).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf._errors import ShopflowPerfError
from pytest_shopflow_perf.metrics.hdr import (
    HIGHEST_US,
    LOWEST_US,
    counts_percentiles,
    merge_snapshots,
    new_histogram,
    pack_counts,
    percentiles,
    reset_histogram,
    snapshot,
    to_us,
)
from pytest_shopflow_perf.metrics.live import LiveSpan, LiveTotals

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

WINDOW_S = 1.0
WINDOW_PERCENTILES = (50.0, 95.0, 99.0)
# Buckets of each 1-second window are kept this long (then merged into blocks): enough for every
# span and phase of a normal run, while a soak's memory stays flat.
DETAIL_WINDOWS = 600
MAX_ENDPOINTS = 200
OVERFLOW_ENDPOINT = "(other endpoints)"
# Rows of errors that have no request of their own (failed checks, journey exceptions), capped like endpoints:
# a journey that names its checks after data (``f"check {i}"``) must not grow memory without bound.
MAX_EVENT_ROWS = 200
OVERFLOW_EVENT_ROW = "(other checks and journey errors)"
CHECK_ROW_PREFIX = "check: "
JOURNEY_ROW_PREFIX = "journey "


class CoarsenedError(ShopflowPerfError, ValueError):
    """A span needs 1-second detail that a long run has merged into blocks."""


# ---- endpoint names --------------------------------------------------------

_ID_SEGMENT = re.compile(
    r"""^(
        \d+                                                   # 123
      | [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}  # uuid
      | (?=[^/]*\d)[0-9a-fA-F]{12,}                           # long hex with a digit
      | (?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_\-]{16,}       # long opaque token
      | [A-Za-z]{1,5}[_-](?=[^/]*\d)[A-Za-z0-9]{4,}          # prefixed ids: ord_8f3a2c, sku-0042
    )$""",
    re.VERBOSE,
)


def collapse_path(path: str) -> str:
    """``/api/products/123`` -> ``/api/products/{id}`` so URL cardinality never explodes."""
    if not any(ch.isdigit() for ch in path):
        return path
    return "/".join("{id}" if segment and _ID_SEGMENT.match(segment) else segment for segment in path.split("/"))


# ---- recording ---------------------------------------------------------------


@dataclass
class WindowSeries:
    """Per-window figures of one endpoint (or the total), in compact arrays."""

    t_s: array[float] = field(default_factory=lambda: array("d"))
    count: array[int] = field(default_factory=lambda: array("q"))
    errors: array[int] = field(default_factory=lambda: array("q"))
    p50_ms: array[float] = field(default_factory=lambda: array("d"))
    p95_ms: array[float] = field(default_factory=lambda: array("d"))
    p99_ms: array[float] = field(default_factory=lambda: array("d"))
    mean_ms: array[float] = field(default_factory=lambda: array("d"))
    max_ms: array[float] = field(default_factory=lambda: array("d"))
    # The total's series only, when the engine reports them: virtual users alive during each window, and
    # (open model) iterations in flight (means of the engine's ticks): the load applied, for the charts.
    users: array[float] = field(default_factory=lambda: array("d"))
    busy: array[float] = field(default_factory=lambda: array("d"))
    # Live runs only (not in the JSON record): each window's histogram buckets, for spans of windows.
    # Only the newest ``detail`` windows keep their own; older ones are merged into one ``prefix``,
    # so memory stays flat over a soak (it grew ~57 MiB an hour at 1,000 requests a second).
    snapshots: list[bytes | None] = field(default_factory=list)
    prefix: bytes | None = None  # the merged buckets of every window before ``coarsened``
    coarsened: int = 0
    detail: int | None = DETAIL_WINDOWS

    def append(self, t_s: float, count: int, errors: int, histogram: HdrHistogram | None, total_us: int) -> None:
        self.t_s.append(round(t_s, 3))
        self.count.append(count)
        self.errors.append(errors)
        self.snapshots.append(snapshot(histogram) if histogram is not None and histogram.get_total_count() else None)
        if histogram is not None and histogram.get_total_count():
            values = percentiles(histogram, list(WINDOW_PERCENTILES))
            self.p50_ms.append(values[50.0] / 1000.0)
            self.p95_ms.append(values[95.0] / 1000.0)
            self.p99_ms.append(values[99.0] / 1000.0)
            self.mean_ms.append(total_us / histogram.get_total_count() / 1000.0)
            self.max_ms.append(histogram.get_max_value() / 1000.0)
        else:
            for series in (self.p50_ms, self.p95_ms, self.p99_ms, self.mean_ms, self.max_ms):
                series.append(0.0)
        if self.detail is not None:
            self._coarsen(self.t_s[-1] - self.detail * WINDOW_S)

    def append_merged(self, t_s: float, count: int, errors: int, counts: Any, mean_ms: float, max_ms: float) -> None:
        """A window merged from the same window of several recorders (shards): ``counts`` dense or None.

        The percentiles follow HDR's rule over the merged buckets, so they are exactly those of
        one histogram that saw every request; the mean is the shards' means weighted by successes.
        """
        self.t_s.append(round(t_s, 3))
        self.count.append(count)
        self.errors.append(errors)
        successes = int(counts.sum()) if counts is not None else 0
        self.snapshots.append(pack_counts(counts) if successes else None)
        if successes:
            values = counts_percentiles(counts, list(WINDOW_PERCENTILES))
            self.p50_ms.append(values[50.0] / 1000.0)
            self.p95_ms.append(values[95.0] / 1000.0)
            self.p99_ms.append(values[99.0] / 1000.0)
            self.mean_ms.append(mean_ms)
            self.max_ms.append(max_ms)
        else:
            for series in (self.p50_ms, self.p95_ms, self.p99_ms, self.mean_ms, self.max_ms):
                series.append(0.0)
        if self.detail is not None:
            self._coarsen(self.t_s[-1] - self.detail * WINDOW_S)

    def _coarsen(self, horizon_s: float) -> None:
        """Merge the buckets of every window that starts before ``horizon_s`` into the prefix."""
        members = [self.prefix] if self.prefix is not None else []
        while self.coarsened < len(self.t_s) and self.t_s[self.coarsened] < horizon_s - 1e-9:
            packed = self.snapshots[self.coarsened]
            if packed is not None:
                members.append(packed)
                self.snapshots[self.coarsened] = None
            self.coarsened += 1
        if len(members) > (self.prefix is not None):
            self.prefix = pack_counts(merge_snapshots(members))

    def span_snapshots(self, start: float, end: float) -> list[bytes]:
        """The buckets of the windows that start in [start, end).

        Windows older than the detail kept exist only merged, from the start of the run on: a
        range that starts inside them raises ``CoarsenedError`` (a soak's 20m..30m cannot be
        rebuilt second by second afterwards; declared thresholds are judged while the run goes).
        """
        chosen = [i for i in range(len(self.t_s)) if start <= self.t_s[i] < end]
        if chosen and chosen[0] < self.coarsened:
            if start > 1e-9 or chosen[-1] < self.coarsened - 1:
                first_kept = self.t_s[self.coarsened] if self.coarsened < len(self.t_s) else self.t_s[-1]
                raise CoarsenedError(
                    f"the range {start:g}-{end:g} s needs the 1-second windows before {first_kept:g} s, which "
                    f"this run kept only merged (after {self.detail} windows the older ones are merged so a "
                    "soak's memory stays flat); declare the threshold on the marker (slo=[...]) so it is "
                    "judged while the run goes"
                )
            found = [self.prefix] if self.prefix is not None else []
            return found + [p for i in chosen if i >= self.coarsened and (p := self.snapshots[i]) is not None]
        return [p for i in chosen if (p := self.snapshots[i]) is not None]

    @property
    def snapshot_bytes(self) -> int:
        """Memory held by window buckets (for the flat-memory test and the README's claim)."""
        return sum(len(p) for p in self.snapshots if p is not None) + len(self.prefix or b"")

    def add_gauges(self, users: float, busy: float | None) -> None:
        """The load applied during the window just appended (users alive; open model: iterations in flight)."""
        self.users.append(users)
        if busy is not None:
            self.busy.append(busy)

    def to_dict(self) -> dict[str, list[Any]]:
        data: dict[str, list[Any]] = {
            "t_s": list(self.t_s),
            "count": list(self.count),
            "errors": list(self.errors),
            "p50_ms": [round(v, 3) for v in self.p50_ms],
            "p95_ms": [round(v, 3) for v in self.p95_ms],
            "p99_ms": [round(v, 3) for v in self.p99_ms],
            "mean_ms": [round(v, 3) for v in self.mean_ms],
            "max_ms": [round(v, 3) for v in self.max_ms],
        }
        for name in ("users", "busy"):
            values = getattr(self, name)
            if len(values) and len(values) == len(self.t_s):  # only a complete series: one value per window
                data[name] = list(values)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, list[Any]]) -> WindowSeries:
        series = cls()
        for name, typecode in (("t_s", "d"), ("count", "q"), ("errors", "q")):
            setattr(series, name, array(typecode, data.get(name, [])))
        for name in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms"):
            setattr(series, name, array("d", data.get(name, [0.0] * len(series.t_s))))
        for name in ("users", "busy"):
            setattr(series, name, array("d", data.get(name, [])))
        return series


class EndpointRecorder:
    """Live counters of one endpoint.

    ``hist`` holds the latency of successful requests (corrected in the open
    model), as k6's ``http_req_duration{expected_response:true}``: failures are
    often fast (a refused connection, an instant 503), and mixing them in makes a
    failing service look faster. Failed requests keep a histogram of their own.
    """

    __slots__ = (
        "connect_hist",
        "errors",
        "errors_by_kind",
        "failed_hist",
        "hist",
        "name",
        "raw_hist",
        "requests",
        "series",
        "wait_hist",
        "win_count",
        "win_errors",
        "win_hist",
        "win_total_us",
    )

    def __init__(self, name: str, open_model: bool, detail: int | None = DETAIL_WINDOWS) -> None:
        self.name = name
        self.requests = 0
        self.errors = 0
        self.errors_by_kind: dict[str, int] = {}
        self.hist = new_histogram()
        self.raw_hist = new_histogram() if open_model else None
        self.failed_hist: HdrHistogram | None = None  # created on the first failure
        # Connect (TCP+TLS) and pool wait before the request went out: created on their first value.
        self.connect_hist: HdrHistogram | None = None
        self.wait_hist: HdrHistogram | None = None
        self.win_hist = new_histogram()
        self.win_count = 0
        self.win_errors = 0
        self.win_total_us = 0
        self.series = WindowSeries(detail=detail)


class EventRecorder:
    """Errors without a request of their own (failed checks, journey exceptions) under one row name."""

    __slots__ = ("errors", "errors_by_kind", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.errors = 0
        self.errors_by_kind: dict[str, int] = {}


class Recorder:
    """Collects every request of a run; the engine calls it, results read its snapshot.

    It is also a :class:`~pytest_shopflow_perf.metrics.live.LiveView` of the run in progress.
    """

    def __init__(self, *, open_model: bool, start: float, detail: int | None = DETAIL_WINDOWS) -> None:
        self.open_model = open_model
        self.start = start
        self.detail = detail
        self.endpoints: dict[str, EndpointRecorder] = {}
        self.events: dict[str, EventRecorder] = {}
        self._win_event_errors = 0
        self.total_series = WindowSeries(detail=detail)
        self._total_win_hist = new_histogram()
        self._window_index = 0
        self._window_end = start + WINDOW_S
        self.clamped = 0
        self.inflight: set[Any] = set()  # requests sent and not yet answered (their clocks)
        # Set by the engine: (users alive, iterations in flight or None) read once as each window closes.
        self.gauges: Callable[[], tuple[float, float | None]] | None = None

    def _endpoint(self, name: str) -> EndpointRecorder:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            if len(self.endpoints) >= MAX_ENDPOINTS:
                name = OVERFLOW_ENDPOINT
                endpoint = self.endpoints.get(name)
            if endpoint is None:
                endpoint = self.endpoints[name] = EndpointRecorder(name, self.open_model, self.detail)
        return endpoint

    def record(
        self,
        name: str,
        latency_s: float,
        now: float,
        error_kind: str | None,
        lateness_s: float = 0.0,
        *,
        connect_s: float = 0.0,
        wait_s: float = 0.0,
    ) -> None:
        """One finished request. ``lateness_s`` is how late its iteration started (open model).

        ``connect_s`` and ``wait_s`` (new connection, pool wait) come before the wire latency;
        in the open model the request paid them since its intended start, so they count in it.
        """
        if now >= self._window_end:
            self.roll(now)
        endpoint = self._endpoint(name)
        value = int(latency_s * 1_000_000 + 0.5)
        if connect_s > 0.0 or wait_s > 0.0:
            if connect_s > 0.0:
                if endpoint.connect_hist is None:
                    endpoint.connect_hist = new_histogram()
                endpoint.connect_hist.record_value(to_us(connect_s))
            if wait_s > 0.0:
                if endpoint.wait_hist is None:
                    endpoint.wait_hist = new_histogram()
                endpoint.wait_hist.record_value(to_us(wait_s))
            if self.open_model:
                lateness_s += connect_s + wait_s
        corrected = value + int(lateness_s * 1000000 + 0.5) if lateness_s > 0.0 else value
        if corrected > HIGHEST_US:
            self.clamped += 1
            corrected = HIGHEST_US
            value = min(value, HIGHEST_US)
        if value < LOWEST_US:
            value = LOWEST_US
            corrected = max(corrected, LOWEST_US)
        endpoint.requests += 1
        endpoint.win_count += 1
        if error_kind is None:
            endpoint.hist.record_value(corrected)
            if endpoint.raw_hist is not None:
                endpoint.raw_hist.record_value(value)
            endpoint.win_hist.record_value(corrected)
            endpoint.win_total_us += corrected
            return
        failed = endpoint.failed_hist
        if failed is None:
            failed = endpoint.failed_hist = new_histogram()
        failed.record_value(corrected)
        endpoint.errors += 1
        endpoint.win_errors += 1
        endpoint.errors_by_kind[error_kind] = endpoint.errors_by_kind.get(error_kind, 0) + 1

    def record_error(self, row: str, kind: str, now: float) -> None:
        """An error with no request of its own (a failed check, a journey exception), on a row of its own.

        It counts in the run's errors and windows, never on an HTTP endpoint that answered fine.
        """
        if now >= self._window_end:
            self.roll(now)
        event = self.events.get(row)
        if event is None:
            if len(self.events) >= MAX_EVENT_ROWS:
                row = OVERFLOW_EVENT_ROW
                event = self.events.get(row)
            if event is None:
                event = self.events[row] = EventRecorder(row)
        event.errors += 1
        event.errors_by_kind[kind] = event.errors_by_kind.get(kind, 0) + 1
        self._win_event_errors += 1

    def write_off_inflight(self, now: float) -> int:
        """Requests still unanswered when the run ends count as errors, timed up to now.

        Dropping them would let a hung service pass every threshold with zero requests.
        """
        unfinished = list(self.inflight)
        for clock in unfinished:
            clock.done = True
            self.record(clock.name, now - clock.start, now, "unfinished")
        self.inflight.clear()
        return len(unfinished)

    def close_open_window(self) -> None:
        """Close the window in progress if anything was recorded in it (a shard's last, however short)."""
        if self._win_event_errors or any(e.win_count or e.win_errors for e in self.endpoints.values()):
            self._close_window()

    def roll(self, now: float) -> None:
        """Close every window that ended before ``now``."""
        while now >= self._window_end:
            self._close_window()

    def finish(self, now: float) -> None:
        """Close the windows up to ``now`` and the partial last one."""
        self.roll(now)
        if now > self._window_end - WINDOW_S + 1e-3 or not len(self.total_series.t_s):
            self._close_window()

    def _close_window(self) -> None:
        t_s = self._window_index * WINDOW_S
        total = self._total_win_hist
        count = errors = 0
        total_us = 0
        for endpoint in self.endpoints.values():
            if endpoint.win_count or endpoint.win_errors:
                endpoint.series.append(
                    t_s, endpoint.win_count, endpoint.win_errors, endpoint.win_hist, endpoint.win_total_us
                )
                if endpoint.win_hist.get_total_count():
                    total.add(endpoint.win_hist)
                    reset_histogram(endpoint.win_hist)
                count += endpoint.win_count
                errors += endpoint.win_errors
                total_us += endpoint.win_total_us
                endpoint.win_count = endpoint.win_errors = endpoint.win_total_us = 0
        errors += self._win_event_errors
        self._win_event_errors = 0
        successes = total.get_total_count()
        self.total_series.append(t_s, count, errors, total if successes else None, total_us)
        if self.gauges is not None:
            self.total_series.add_gauges(*self.gauges())
        if successes:
            reset_histogram(total)
        self._window_index += 1
        self._window_end = self.start + (self._window_index + 1) * WINDOW_S

    # ---- the live view (metrics.live.LiveView) ----------------------------------

    def endpoint_names(self) -> list[str]:
        return list(self.endpoints)

    def totals(self, endpoint: str | None) -> LiveTotals:
        endpoints = [e for name, e in self.endpoints.items() if endpoint in (None, name)]
        errors = sum(e.errors for e in endpoints)
        if endpoint is None:
            errors += sum(event.errors for event in self.events.values())
        return LiveTotals(sum(e.requests for e in endpoints), errors, tuple(e.hist for e in endpoints))

    def closed_windows(self) -> int:
        return len(self.total_series.t_s)

    def newest_span(self, endpoint: str | None, seconds: float) -> LiveSpan | None:
        if endpoint is None:
            series = self.total_series
        elif endpoint in self.endpoints:
            series = self.endpoints[endpoint].series
        else:
            return None
        newest = self.closed_windows()
        if not newest:
            return None
        width = max(1, round((seconds or WINDOW_S) / WINDOW_S))
        end = newest * WINDOW_S
        start = max(0.0, end - width * WINDOW_S)
        chosen = [i for i in range(max(0, len(series.t_s) - width), len(series.t_s)) if series.t_s[i] >= start - 1e-9]
        snapshots = [snap for i in chosen if (snap := series.snapshots[i]) is not None]
        return LiveSpan(
            start=start,
            end=end,
            requests=sum(series.count[i] for i in chosen),
            errors=sum(series.errors[i] for i in chosen),
            counts=merge_snapshots(snapshots) if snapshots else None,
        )

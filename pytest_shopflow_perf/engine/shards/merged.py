"""The shards' windows merged into one recorder: the live view of a sharded run, and its final figures.

Window k of the run closes once every shard still running has closed its window k (they share
the run's clock): its buckets are the sum of the shards' buckets, so its percentiles are those
of one histogram of every request. The merged recorder is a ``Recorder`` without requests of its
own, so the progress line, the abort watchdog and ``summarize`` read it as they read one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_shopflow_perf.metrics.hdr import add_packed, merge_snapshots, new_histogram
from pytest_shopflow_perf.metrics.recorder import WINDOW_S, EventRecorder, Recorder

if TYPE_CHECKING:
    from pytest_shopflow_perf.engine.shards.wire import ShardFinal, ShardState, Window, WindowBatch


@dataclass
class ShardTally:
    """What the coordinator knows of one shard while it runs."""

    windows: int = 0  # windows received (indices 0 .. windows - 1)
    requests: int = 0
    errors: int = 0
    users: int = 0
    peak_users: int = 0
    remaining: float = 0.0
    state: ShardState | None = None
    ended: bool = False
    pending: dict[int, Window] = field(default_factory=dict)


class MergedRecorder(Recorder):
    """Windows of N shards, merged in window order."""

    def __init__(self, shards: int, *, open_model: bool, detail: int | None) -> None:
        super().__init__(open_model=open_model, start=0.0, detail=detail)
        self.tallies = [ShardTally() for _ in range(shards)]
        self._merged = 0  # merged windows so far

    # ---- input ----------------------------------------------------------------

    def absorb(self, batch: WindowBatch) -> None:
        tally = self.tallies[batch.shard]
        for window in batch.windows:
            tally.pending[window.index] = window
            tally.windows = max(tally.windows, window.index + 1)
            tally.requests += sum(row[1] for row in window.endpoints)
            tally.errors += sum(row[2] for row in window.endpoints) + window.event_errors
        if batch.state is not None:
            tally.state = batch.state
        tally.users = batch.users
        tally.peak_users = max(tally.peak_users, batch.users)
        tally.remaining = batch.remaining

    def end(self, shard: int) -> None:
        """The shard sends no more windows (it finished, or it was lost)."""
        self.tallies[shard].ended = True
        self.tallies[shard].users = 0
        self.tallies[shard].remaining = 0.0

    def merge_ready(self) -> int:
        """Merge every window that each running shard has closed; how many were merged."""
        merged = 0
        while True:
            index = self._merged
            waiting = [t for t in self.tallies if not t.ended and t.windows <= index]
            have = [t for t in self.tallies if t.windows > index]
            if waiting or not have:
                return merged
            self._merge_window(index, [w for t in self.tallies if (w := t.pending.pop(index, None)) is not None])
            self._merged += 1
            merged += 1

    def _merge_window(self, index: int, windows: list[Window]) -> None:
        rows: dict[str, list[tuple[str, int, int, bytes | None, float, float]]] = {}
        for window in windows:
            for row in window.endpoints:
                rows.setdefault(row[0], []).append(row)
        t_s = index * WINDOW_S
        total_count = total_errors = 0
        total_packed: list[bytes] = []
        weighted_ms = 0.0
        total_max = 0.0
        for name, parts in rows.items():
            endpoint = self._endpoint(name)
            count = sum(part[1] for part in parts)
            errors = sum(part[2] for part in parts)
            packed = [part[3] for part in parts if part[3] is not None]
            counts = merge_snapshots(packed) if packed else None
            successes = int(counts.sum()) if counts is not None else 0
            mean_ms = sum(part[4] * _successes(part[3]) for part in parts) / successes if successes else 0.0
            max_ms = max(part[5] for part in parts)
            endpoint.series.append_merged(t_s, count, errors, counts, mean_ms, max_ms)
            for part in packed:
                add_packed(endpoint.hist, part)
            endpoint.requests += count
            endpoint.errors += errors
            total_count += count
            total_errors += errors
            total_packed.extend(packed)
            weighted_ms += mean_ms * successes
            total_max = max(total_max, max_ms)
        total_errors += sum(window.event_errors for window in windows)
        counts = merge_snapshots(total_packed) if total_packed else None
        successes = int(counts.sum()) if counts is not None else 0
        self.total_series.append_merged(
            t_s, total_count, total_errors, counts, weighted_ms / successes if successes else 0.0, total_max
        )
        busy = [window.busy for window in windows if window.busy is not None]
        self.total_series.add_gauges(
            round(sum(window.users for window in windows), 2), round(sum(busy), 2) if busy else None
        )
        self._refresh_events()

    def _refresh_events(self) -> None:
        """Failed checks and journey exceptions of the run so far: the shards' running totals added."""
        rows: dict[str, EventRecorder] = {}
        for tally in self.tallies:
            for name, row in (tally.state.events if tally.state is not None else {}).items():
                event = rows.get(name) or rows.setdefault(name, EventRecorder(name))
                event.errors += int(row["errors"])
                for kind, count in row["errors_by_kind"].items():
                    event.errors_by_kind[kind] = event.errors_by_kind.get(kind, 0) + count
        self.events = rows

    # ---- figures ----------------------------------------------------------------

    @property
    def users(self) -> int:
        return sum(t.users for t in self.tallies)

    @property
    def remaining(self) -> float:
        return sum(t.remaining for t in self.tallies)

    def checks(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for tally in self.tallies:
            for name, (passes, fails) in (tally.state.checks if tally.state is not None else {}).items():
                had = found.get(name, (0, 0))
                found[name] = (had[0] + passes, had[1] + fails)
        return found

    def complete(self, finals: list[ShardFinal]) -> None:
        """The figures only the shards' ends carry: errors by kind, uncorrected, failed, connect, wait."""
        for shard in range(len(self.tallies)):
            self.end(shard)
        self.merge_ready()
        for endpoint in self.endpoints.values():
            endpoint.errors_by_kind = {}
        for tally in self.tallies:
            for name, kinds in (tally.state.errors_by_kind if tally.state is not None else {}).items():
                endpoint = self._endpoint(name)
                for kind, count in kinds.items():
                    endpoint.errors_by_kind[kind] = endpoint.errors_by_kind.get(kind, 0) + count
        self._refresh_events()
        for final in finals:
            for name, packed_kinds in final.histograms.items():
                endpoint = self._endpoint(name)
                for kind, packed in packed_kinds.items():
                    attribute = _HISTOGRAMS[kind]
                    histogram = getattr(endpoint, attribute)
                    if histogram is None:
                        histogram = new_histogram()
                        setattr(endpoint, attribute, histogram)
                    add_packed(histogram, packed)


_HISTOGRAMS = {"raw": "raw_hist", "failed": "failed_hist", "connect": "connect_hist", "wait": "wait_hist"}


def _successes(packed: bytes | None) -> int:
    if packed is None:
        return 0
    import numpy as np

    values = np.frombuffer(packed, dtype=np.uint32)
    return int(values[len(values) // 2 :].sum())

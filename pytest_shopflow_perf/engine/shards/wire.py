"""What travels between a shard and its coordinator: closed windows, running totals, the final figures.

Plain tuples, dicts and bytes (pickled by ``multiprocessing`` or Dask): a window is its HDR
buckets per endpoint (non-zero buckets only, ``metrics.hdr.snapshot``), its counts and the
figures that do not merge from buckets (mean, max). Journeys and hooks travel the other way with
cloudpickle, by value for the user's own modules (test files, conftests), which a shard process
(or a cluster worker) may not be able to import.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_shopflow_perf._errors import ShopflowPerfError
from pytest_shopflow_perf.metrics.hdr import snapshot
from pytest_shopflow_perf.metrics.recorder import WINDOW_S

if TYPE_CHECKING:
    from types import ModuleType

    from pytest_shopflow_perf.metrics.recorder import Recorder

# One endpoint in one window: name, requests, errors, success buckets (None: no success), mean ms, max ms.
EndpointWindow = tuple[str, int, int, "bytes | None", float, float]


@dataclass(frozen=True)
class Window:
    """One closed 1-second window of one shard."""

    index: int
    event_errors: int  # failed checks and journey exceptions in this window
    endpoints: tuple[EndpointWindow, ...]
    users: float = 0.0  # users alive during the window (mean)
    busy: float | None = None  # open model: iterations in flight (mean)


@dataclass
class ShardState:
    """A shard's running totals that are not per window; sent whole when they changed."""

    errors_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)  # endpoint -> kind -> count
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # row -> {"errors", "errors_by_kind"}
    checks: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (passes, fails)


@dataclass(frozen=True)
class WindowBatch:
    """The windows a shard closed since its last batch, and where it stands."""

    shard: int
    windows: tuple[Window, ...]
    state: ShardState | None  # None: unchanged since the last batch
    users: int
    remaining: float  # the most requests the rest of the shard's run can still make


@dataclass(frozen=True)
class ShardFinal:
    """A shard's last windows and what only the end of its run knows."""

    shard: int
    batch: WindowBatch
    # endpoint -> {"raw" | "failed" | "connect" | "wait": packed buckets}
    histograms: dict[str, dict[str, bytes]]
    generator: dict[str, Any]
    extra: dict[str, Any]
    started_at: str
    elapsed_s: float  # from the common start to the shard's end


class ShardError(ShopflowPerfError, RuntimeError):
    """A shard could not be planned, shipped or started, or failed with an error of its own."""


class WindowCollector:
    """Reads a shard's recorder for what it closed since the last look (on the shard's event loop)."""

    def __init__(self, recorder: Recorder, checks: dict[str, list[int]]) -> None:
        self.recorder = recorder
        self.checks = checks
        self._sent_windows = 0
        self._sent_rows: dict[str, int] = {}
        self._sent_state = ShardState()

    def windows(self) -> tuple[Window, ...]:
        recorder = self.recorder
        total = recorder.total_series
        first, last = self._sent_windows, len(total.t_s)
        if first == last:
            return ()
        rows: dict[int, list[EndpointWindow]] = {index: [] for index in range(first, last)}
        request_errors = dict.fromkeys(rows, 0)
        for name, endpoint in recorder.endpoints.items():
            series = endpoint.series
            for i in range(self._sent_rows.get(name, 0), len(series.t_s)):
                index = round(series.t_s[i] / WINDOW_S)
                rows[index].append(
                    (name, series.count[i], series.errors[i], series.snapshots[i], series.mean_ms[i], series.max_ms[i])
                )
                request_errors[index] += series.errors[i]
            self._sent_rows[name] = len(series.t_s)
        self._sent_windows = last
        users, busy = total.users, total.busy
        return tuple(
            Window(
                index,
                total.errors[index] - request_errors[index],
                tuple(rows[index]),
                users[index] if index < len(users) else 0.0,
                busy[index] if index < len(busy) else None,
            )
            for index in range(first, last)
        )

    def state(self) -> ShardState | None:
        """The running totals, or None when nothing changed since the last call."""
        current = ShardState(
            errors_by_kind={name: dict(endpoint.errors_by_kind) for name, endpoint in self.recorder.endpoints.items()},
            events={
                name: {"errors": event.errors, "errors_by_kind": dict(event.errors_by_kind)}
                for name, event in self.recorder.events.items()
            },
            checks={name: (passes, fails) for name, (passes, fails) in self.checks.items()},
        )
        if current == self._sent_state:
            return None
        self._sent_state = current
        return current

    def batch(self, shard: int, users: int, remaining: float) -> WindowBatch:
        return WindowBatch(shard, self.windows(), self.state(), users, remaining)


def final_histograms(recorder: Recorder) -> dict[str, dict[str, bytes]]:
    """Per endpoint the histograms no window carries: uncorrected, failed, connect and pool wait."""
    found: dict[str, dict[str, bytes]] = {}
    for name, endpoint in recorder.endpoints.items():
        kinds = {
            "raw": endpoint.raw_hist,
            "failed": endpoint.failed_hist,
            "connect": endpoint.connect_hist,
            "wait": endpoint.wait_hist,
        }
        packed = {kind: snapshot(h) for kind, h in kinds.items() if h is not None and h.get_total_count()}
        if packed:
            found[name] = packed
    return found


# ---- journeys and hooks -----------------------------------------------------------


def _installed_top_levels() -> set[str]:
    from importlib.metadata import packages_distributions

    return set(packages_distributions())


def user_modules(modules: Iterable[ModuleType] | None = None) -> list[ModuleType]:
    """The user's own modules (test files, conftests, helpers next to them): not installed, not stdlib.

    Pickled by value, their functions and classes reach a process that cannot import them.
    """
    installed = _installed_top_levels()
    found = []
    for module in list(sys.modules.values()) if modules is None else modules:
        name = getattr(module, "__name__", "")
        top = name.partition(".")[0]
        if (
            not getattr(module, "__file__", None)
            or name == "__main__"
            or top in installed
            or top in sys.stdlib_module_names
            or top == "pytest_shopflow_perf"
            or top.startswith("_")
        ):
            continue
        found.append(module)
    return found


def dumps(payload: object, what: str) -> bytes:
    """cloudpickle ``payload``, the user's modules by value; an error names what could not be sent."""
    import cloudpickle

    registered = []
    for module in user_modules():
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:
            continue
        registered.append(module)
    try:
        return bytes(cloudpickle.dumps(payload))
    except Exception as exc:
        raise ShardError(
            f"{what} cannot be sent to a shard process: {type(exc).__name__}: {exc}. Journeys, hooks and what "
            "they use from their module must be picklable (module-level functions and data; no open sockets, "
            "locks or clients created outside the journey); or run with workers=1"
        ) from exc
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)

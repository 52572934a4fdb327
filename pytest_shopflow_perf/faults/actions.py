"""Dependency faults: code run at a point of the load run and undone later (kill and restart Redis).

Network faults go through the fault proxy (:mod:`pytest_shopflow_perf.faults`);
these act on the system itself. A scheduler thread runs them on the run's
clock, and ``stop()`` undoes whatever is still in force, also when the test
fails or is interrupted: faults never outlive the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_shopflow_perf.faults.spec import parse_window


@dataclass(frozen=True)
class Action:
    """A fault made by calling ``start`` at ``at`` seconds and ``stop`` at ``until`` (None: never undone)."""

    name: str
    start: Callable[[], object]
    stop: Callable[[], object] | None = None
    at: float = 0.0
    until: float | None = None
    kind: str = field(default="action")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "start_s": self.at, "end_s": self.until, "path": None}


def action(
    name: str,
    start: Callable[[], object],
    stop: Callable[[], object] | None = None,
    *,
    at: float | str = 0.0,
    until: float | str | None = None,
    duration: float | str | None = None,
) -> Action:
    """``action("kill redis", redis.kill, redis.restart, at="10s", duration="10s")``."""
    begin, end = parse_window(at, until, duration, subject=f"action {name!r}")
    return Action(name=name, start=start, stop=stop, at=begin, until=end)


def service_faults(
    base_url: str,
    settings: dict[str, Any],
    *,
    name: str | None = None,
    at: float | str = 0.0,
    until: float | str | None = None,
    duration: float | str | None = None,
    allowed_hosts: Iterable[str] = (),
) -> Action:
    """The reference service's own fault knobs for a while: ``{"db_delay_ms": 50}`` is a slow database.

    ``PUT /admin/faults`` at the start, ``DELETE /admin/faults`` at the end (the
    service accepts both from loopback clients only). See the service's
    ``faults`` module for the settings: ``latency``, ``error_ratio``,
    ``db_delay_ms``, ``cache_down``. ``base_url`` must pass the target rule
    (loopback, or one of ``allowed_hosts``), checked here, before any request.
    """
    import httpx

    from pytest_shopflow_perf.target.policy import check_target

    check_target(base_url, allowed_hosts)

    def call(method: str, body: dict[str, Any] | None = None) -> None:
        with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
            response = client.request(method, "/admin/faults", json=body)
            response.raise_for_status()

    label = name or "service faults " + ", ".join(sorted(settings))
    return action(label, lambda: call("PUT", settings), lambda: call("DELETE"), at=at, until=until, duration=duration)


class Scheduler:
    """Runs actions on the run's clock in a thread of its own (the engine's loop is never blocked)."""

    def __init__(self, actions: Sequence[Action]) -> None:
        self.actions = list(actions)
        self.errors: list[str] = []
        self._started: list[Action] = []
        self._stopped: set[int] = set()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def begin(self, t0: float) -> None:
        if not self.actions or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(t0,), name="shopflow-perf faults", daemon=True)
        self._thread.start()

    def _run(self, t0: float) -> None:
        events = sorted(
            [(a.at, "start", i) for i, a in enumerate(self.actions)]
            + [(a.until, "stop", i) for i, a in enumerate(self.actions) if a.until is not None],
            key=lambda event: (event[0], event[1] == "start"),
        )
        for when, what, index in events:
            if self._halt.wait(max(0.0, t0 + when - time.perf_counter())):
                return
            self._apply(self.actions[index], what)

    def _apply(self, act: Action, what: str) -> None:
        with self._lock:
            if what == "start":
                if self._call(act, act.start):
                    self._started.append(act)  # a start that raised has nothing to undo
            elif id(act) not in self._stopped and act in self._started:
                self._stopped.add(id(act))
                if act.stop is not None:
                    self._call(act, act.stop)

    def _call(self, act: Action, function: Callable[[], object]) -> bool:
        try:
            function()
        except Exception as exc:  # a fault that fails to apply is reported, the run goes on
            self.errors.append(f"{act.name}: {type(exc).__name__}: {exc}")
            return False
        return True

    def stop(self) -> None:
        """End the schedule and undo every action still in force."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for act in list(self._started):
            self._apply(act, "stop")

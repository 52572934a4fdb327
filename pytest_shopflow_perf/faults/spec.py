"""What a fault is, apart from how it is injected: plain data that markers, reports and schedules can carry.

Kept free of sockets and event loops so that declaring faults (the public
builders :func:`latency`, :func:`bandwidth`, :func:`errors`, :func:`resets`,
:func:`timeouts` and :func:`outage`) never loads the proxy. It also owns the one
reading of a fault window (``at`` with ``until`` or ``duration``) and its
scaling, so network faults and dependency actions (:mod:`.actions`) agree on
what a window means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pytest_shopflow_perf.profile.units import parse_duration, parse_fraction

__all__ = [
    "KINDS",
    "Duration",
    "Fault",
    "applying",
    "bandwidth",
    "errors",
    "full_outage",
    "latency",
    "outage",
    "parse_window",
    "resets",
    "scale_window",
    "timeouts",
]

Duration = float | str
"""Seconds, or a string such as ``"300ms"`` or ``"10s"``."""

KINDS = ("latency", "bandwidth", "errors", "resets", "timeouts", "outage")
"""Every fault kind; also the keys of :attr:`FaultProxy.stats` that count injected faults."""

_BASE_KEYS = frozenset({"name", "kind", "start_s", "end_s", "path"})


@dataclass(frozen=True)
class Fault:
    """One network fault and its window on the run's clock; plain data, so it can go in markers and reports."""

    kind: str
    at: float = 0.0
    until: float | None = None
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        clash = _BASE_KEYS.intersection(self.params)
        if clash:
            raise ValueError(f"fault params may not use the reserved keys {sorted(clash)}")
        if not self.name:
            object.__setattr__(self, "name", self.kind)

    def active(self, t: float) -> bool:
        """Whether the fault is in force ``t`` seconds after the start of the run (window ``[at, until)``)."""
        return self.at <= t and (self.until is None or t < self.until)

    def matches(self, path: str) -> bool:
        """Path scope on segment boundaries: ``/api/cart`` covers ``/api/cart/7``, not ``/api/cartoon``."""
        scope = self.path
        if scope is None or path == scope:
            return True
        return path.startswith(scope if scope.endswith("/") else scope + "/")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description for reports: ``{"name", "kind", "start_s", "end_s", "path", **params}``."""
        entry: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "start_s": self.at,
            "end_s": self.until,
            "path": self.path,
        }
        entry.update(self.params)
        return entry


def applying(faults: Iterable[Fault], t: float, path: str) -> Fault | None:
    """The one fault that applies to a request for ``path`` at ``t``: the last active match of ``faults``.

    Given oldest first (by ``at``, list order on a tie), that is the newest fault whose scope covers the path.
    """
    chosen = None
    for fault in faults:
        if fault.active(t) and fault.matches(path):
            chosen = fault
    return chosen


def full_outage(faults: Iterable[Fault], t: float) -> bool:
    """Whether an outage of every path is in force at ``t`` (connections are then reset on sight)."""
    return any(f.kind == "outage" and f.path is None and f.active(t) for f in faults)


# -- windows -------------------------------------------------------------------------------------------------------


def scale_window(at: float, until: float | None, scale: float) -> tuple[float, float | None]:
    """A window on a scaled run's clock (``--perf-scale 0.25`` moves ``at=8`` to 2 s); an open end stays open."""
    if scale == 1.0:
        return at, until
    return at * scale, None if until is None else until * scale


def parse_window(
    at: Duration,
    until: Duration | None = None,
    duration: Duration | None = None,
    *,
    prefix: str = "",
    subject: str = "it",
    scale: float = 1.0,
) -> tuple[float, float | None]:
    """``(start, end)`` in seconds from ``at`` and either ``until`` or ``duration`` (end None: never ends).

    ``prefix`` leads every error message (``"latency(): "``), ``subject`` names what must end after it
    starts. The window is checked as written, then scaled by ``scale`` (see :func:`scale_window`).
    """
    start = parse_duration(at, what=f"{prefix}at")
    if until is not None and duration is not None:
        raise ValueError(f"{prefix}give either until= or duration=, not both")
    if until is not None:
        end: float | None = parse_duration(until, what=f"{prefix}until")
    elif duration is not None:
        end = start + parse_duration(duration, what=f"{prefix}duration")
    else:
        end = None
    if end is not None and end <= start:
        raise ValueError(f"{prefix}{subject} must end after it starts (at={start:g} s, ends at {end:g} s)")
    return scale_window(start, end, scale)


# -- fault builders ------------------------------------------------------------------------------------------------


def _make(
    kind: str,
    params: dict[str, Any],
    label: str,
    *,
    at: Duration,
    until: Duration | None,
    duration: Duration | None,
    path: str | None,
    name: str | None,
) -> Fault:
    """What every builder shares: the window, the path scope and the default name (``label``, plus the path)."""
    prefix = f"{kind}(): "
    start, end = parse_window(at, until, duration, prefix=prefix, subject="the fault")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise ValueError(f"{prefix}path={path!r} must be a path prefix starting with '/' (or None for all paths)")
    default = f"{label} on {path}" if path else label
    return Fault(kind=kind, at=start, until=end, path=path, params=params, name=name or default)


def _ratio(kind: str, ratio: float | str) -> float:
    return parse_fraction(ratio, what=f"{kind}(): ratio")


def latency(
    delay: Duration,
    *,
    jitter: Duration = 0,
    at: Duration = 0,
    until: Duration | None = None,
    duration: Duration | None = None,
    path: str | None = None,
    name: str | None = None,
) -> Fault:
    """Delay each request by ``delay`` +- a uniform ``jitter`` (never below zero) before forwarding it."""
    delay_s = parse_duration(delay, what="latency(): delay")
    jitter_s = parse_duration(jitter, what="latency(): jitter")
    label = f"latency {delay_s * 1000:g}ms" + (f" +-{jitter_s * 1000:g}ms" if jitter_s else "")
    params = {"delay_s": delay_s, "jitter_s": jitter_s}
    return _make("latency", params, label, at=at, until=until, duration=duration, path=path, name=name)


def bandwidth(
    bytes_per_second: float,
    *,
    at: Duration = 0,
    until: Duration | None = None,
    duration: Duration | None = None,
    path: str | None = None,
    name: str | None = None,
) -> Fault:
    """Throttle response bodies to ``bytes_per_second`` (per response; headers pass at once)."""
    if (
        isinstance(bytes_per_second, bool)
        or not isinstance(bytes_per_second, (int, float))
        or not math.isfinite(bytes_per_second)
        or bytes_per_second <= 0
    ):
        raise ValueError(f"bandwidth(): bytes_per_second={bytes_per_second!r} must be a positive number")
    rate = float(bytes_per_second)
    params = {"bytes_per_second": rate}
    label = f"bandwidth {rate:g} B/s"
    return _make("bandwidth", params, label, at=at, until=until, duration=duration, path=path, name=name)


def errors(
    ratio: float | str,
    *,
    status: int = 503,
    at: Duration = 0,
    until: Duration | None = None,
    duration: Duration | None = None,
    path: str | None = None,
    name: str | None = None,
) -> Fault:
    """Answer ``ratio`` of the requests with ``status`` and a small JSON body, without forwarding them."""
    share = _ratio("errors", ratio)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"errors(): status={status!r} must be an HTTP error status (400-599)")
    params = {"ratio": share, "status": status}
    label = f"errors {share * 100:g}% ({status})"
    return _make("errors", params, label, at=at, until=until, duration=duration, path=path, name=name)


def resets(
    ratio: float | str = 1.0,
    *,
    at: Duration = 0,
    until: Duration | None = None,
    duration: Duration | None = None,
    path: str | None = None,
    name: str | None = None,
) -> Fault:
    """Abort the client connection of ``ratio`` of the requests with a TCP RST (SO_LINGER 0)."""
    share = _ratio("resets", ratio)
    label = f"resets {share * 100:g}%"
    return _make("resets", {"ratio": share}, label, at=at, until=until, duration=duration, path=path, name=name)


def timeouts(
    ratio: float | str = 1.0,
    *,
    at: Duration = 0,
    until: Duration | None = None,
    duration: Duration | None = None,
    path: str | None = None,
    name: str | None = None,
) -> Fault:
    """Hold ``ratio`` of the requests unanswered until the client gives up, or forward them late when the fault ends."""
    share = _ratio("timeouts", ratio)
    label = f"timeouts {share * 100:g}%"
    return _make("timeouts", {"ratio": share}, label, at=at, until=until, duration=duration, path=path, name=name)


def outage(
    *,
    at: Duration,
    duration: Duration | None = None,
    until: Duration | None = None,
    path: str | None = None,
    name: str | None = None,
) -> Fault:
    """A full outage: connections are reset at once, new ones on accept; with ``path``, only matching requests."""
    if duration is None and until is None:
        raise ValueError("outage(): give duration= or until= (an outage must end inside the run to measure recovery)")
    return _make("outage", {}, "outage", at=at, until=until, duration=duration, path=path, name=name)

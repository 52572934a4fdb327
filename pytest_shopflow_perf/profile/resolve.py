"""One load profile from every place a user can state it.

Precedence, lowest first: built-in defaults < ini < marker (and keyword
arguments of ``load.run``) < environment < command line. Ini gives suite-wide
defaults, a marker states the test's own profile, env and command line are the
CI's overrides. The scale factor is applied last, to every duration.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_shopflow_perf.profile.units import DURATION_FORMS, SIZE_FORMS, UnitError, parse_duration, parse_size

DEFAULT_USERS = 10
DEFAULT_DURATION_S = 10.0
DEFAULT_MAX_DURATION_WITH_ITERATIONS_S = 600.0
DEFAULT_MAX_USERS = 1000
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_GRACEFUL_STOP_S = 5.0
DEFAULT_MAX_BODY = 16 * 1024 * 1024  # bytes of a response body kept in memory; the rest is read and dropped

MARKER_KEYS = (
    "users",
    "duration",
    "ramp_up",
    "ramp_down",
    "stages",
    "rate",
    "max_users",
    "think_time",
    "iterations",
    "workers",
    "base_url",
    "name",
    "timeout",
    "graceful_stop",
    "max_body",
    "client",
)
# Keys of the marker the plugin reads itself (thresholds, faults), not part of the profile.
PLUGIN_MARKER_KEYS = ("slo", "faults")
# Every key the marker accepts, in the order the README's marker table documents them.
DOCUMENTED_MARKER_KEYS = (
    "users",
    "duration",
    "ramp_up",
    "ramp_down",
    "stages",
    "rate",
    "max_users",
    "think_time",
    "iterations",
    "slo",
    "faults",
    "base_url",
    "name",
    "timeout",
    "graceful_stop",
    "client",
    "workers",
    "max_body",
)
# Settings that make sense as suite-wide defaults in ini.
INI_KEYS = (
    "users",
    "duration",
    "ramp_up",
    "ramp_down",
    "think_time",
    "max_users",
    "timeout",
    "graceful_stop",
    "max_body",
    "client",
    "workers",
)
# What the CI may override from the environment or the command line.
OVERRIDE_KEYS = ("users", "duration", "base_url", "client", "workers")
# The client of a virtual user: a real httpx.AsyncClient, or the lean one (more load per core).
CLIENTS = ("httpx", "fast")

ENV_VARS = {
    "base_url": "SHOPFLOW_BASE_URL",
    "users": "SHOPFLOW_PERF_USERS",
    "duration": "SHOPFLOW_PERF_DURATION",
    "client": "SHOPFLOW_PERF_CLIENT",
    "workers": "SHOPFLOW_PERF_WORKERS",
    "scale": "SHOPFLOW_PERF_SCALE",
}


class ProfileError(UnitError):
    """A profile value is wrong; the message names the source, the value and the fix."""


Stage = tuple[float, float]


@dataclass(frozen=True)
class LoadProfile:
    """Everything the engine needs to know about the shape of one run.

    ``duration`` is the whole run, ramps included (as Locust's ``--run-time``),
    so it is also what a CI budget pays. ``stages`` is always filled in: a
    closed-model profile of users/ramps becomes the equivalent stages.
    """

    stages: tuple[Stage, ...]
    start: float = 0.0  # users (closed) or arrivals/s (open) at t=0, before the first stage
    model: str = "closed"
    users: int = DEFAULT_USERS
    duration: float = DEFAULT_DURATION_S
    ramp_up: float = 0.0
    ramp_down: float = 0.0
    rate: float | None = None
    max_users: int = DEFAULT_MAX_USERS
    think_time: tuple[float, float] | None = None
    iterations: int | None = None
    workers: int | str = 1  # "auto": the engine decides from the cores and where the target runs
    base_url: str | None = None
    name: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    graceful_stop: float = DEFAULT_GRACEFUL_STOP_S
    max_body: int = DEFAULT_MAX_BODY
    client: str = "httpx"
    scale: float = 1.0
    seed: int = 0
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_open(self) -> bool:
        return self.model == "open"

    def target_at(self, elapsed: float) -> float:
        """Users (closed) or arrival rate (open) at ``elapsed`` seconds: linear within a stage."""
        value = self.start
        start = 0.0
        for stage_duration, target in self.stages:
            end = start + stage_duration
            if elapsed < end and stage_duration > 0:
                return value + (target - value) * (elapsed - start) / stage_duration
            value = target
            start = end
        return value

    def planned(self, start: float, end: float) -> float:
        """The integral of ``target_at`` over [start, end): user-seconds (closed) or arrivals (open)."""
        return self.integral(end) - self.integral(start)

    def integral(self, until: float) -> float:
        """Integral of ``target_at`` over [0, until]: planned user-seconds (closed) or arrivals (open).

        Closed form over the piecewise-linear stages, so it costs nothing however high the rate.
        """
        total = 0.0
        value = self.start
        start = 0.0
        for stage_duration, target in self.stages:
            if start >= until:
                break
            if stage_duration > 0:
                span = min(stage_duration, until - start)
                slope = (target - value) / stage_duration
                total += value * span + 0.5 * slope * span * span
            value = target
            start += stage_duration
        if until > start:
            total += value * (until - start)  # after the last stage the last target holds
        return total

    @property
    def peak(self) -> float:
        return max([self.start, *(target for _, target in self.stages)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: stored in every run record and baseline."""
        data = asdict(self)
        data["stages"] = [list(stage) for stage in self.stages]
        data["think_time"] = list(self.think_time) if self.think_time else None
        data.pop("sources")
        return data


def unknown_keys_error(label: str, given: Iterable[str], accepted: Sequence[str]) -> ProfileError | None:
    """The error for keys outside ``accepted`` (each with the closest accepted key), or None when all are known."""
    unknown = sorted(set(given) - set(accepted))
    if not unknown:
        return None
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
        parts.append(f"{key} (did you mean `{close[0]}`?)" if close else key)
    return ProfileError(f"{label}: unknown argument(s) {', '.join(parts)}; accepted: {', '.join(accepted)}")


def _error(source: str, key: str, value: object, expected: str) -> ProfileError:
    return ProfileError(f"{source}: {key}={value!r} is not valid: expected {expected}")


def _positive_int(source: str, key: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise _error(source, key, value, f"a whole number >= {minimum} (e.g. {key}=50)")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _error(source, key, value, f"a whole number >= {minimum} (e.g. {key}=50)") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise _error(source, key, value, f"a whole number >= {minimum} (e.g. {key}=50)")
    return value


def _positive_float(source: str, key: str, value: object) -> float:
    if isinstance(value, bool):
        raise _error(source, key, value, f"a positive number (e.g. {key}=100)")
    try:
        number = float(value) if isinstance(value, (int, float, str)) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise _error(source, key, value, f"a positive number (e.g. {key}=100)")
    return number


def _duration(source: str, key: str, value: object) -> float:
    try:
        return parse_duration(value, what=key)
    except UnitError:
        raise _error(source, key, value, DURATION_FORMS) from None


def _size(source: str, key: str, value: object) -> int:
    try:
        return parse_size(value, what=key)
    except UnitError:
        raise _error(source, key, value, SIZE_FORMS) from None


def _client(source: str, value: object) -> str:
    if value not in CLIENTS:
        raise _error(
            source, "client", value, 'client="httpx" (a real httpx.AsyncClient) or client="fast" (the lean client)'
        )
    return str(value)


WORKERS_FORMS = 'a whole number of processes >= 1 or "auto" (one per core, minus one when the target runs here)'


def _workers(source: str, value: object) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return _positive_int(source, "workers", value)
    except ProfileError:
        raise _error(source, "workers", value, WORKERS_FORMS) from None


def _think_time(source: str, value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    expected = 'a duration or a (min, max) pair of durations, e.g. think_time=(1, 3) or ("500ms", "2s")'
    if isinstance(value, str) and "," in value:
        value = tuple(part.strip() for part in value.strip("()[] ").split(","))
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise _error(source, "think_time", value, expected)
        low, high = (_duration(source, "think_time", part) for part in value)
    else:
        low = high = _duration(source, "think_time", value)
    if low > high:
        raise _error(source, "think_time", value, expected + " with min <= max")
    return (low, high)


def _stages(source: str, value: object) -> tuple[Stage, ...]:
    expected = 'a list of (duration, target) pairs, e.g. stages=[("10s", 20), ("30s", 20), ("5s", 0)]'
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise _error(source, "stages", value, expected)
    stages: list[Stage] = []
    for stage in value:
        if isinstance(stage, Mapping):
            stage = (stage.get("duration"), stage.get("target"))
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence) or len(stage) != 2:
            raise _error(source, "stages", value, expected)
        stage_duration = _duration(source, "stages", stage[0])
        target = stage[1]
        if isinstance(target, bool) or not isinstance(target, (int, float)) or target < 0:
            raise _error(source, "stages", value, expected + " with targets >= 0")
        stages.append((stage_duration, float(target)))
    if sum(d for d, _ in stages) <= 0:
        raise _error(source, "stages", value, expected + " lasting longer than 0 s")
    return tuple(stages)


def _base_url(source: str, value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise _error(source, "base_url", value, 'an http:// or https:// URL, e.g. "http://127.0.0.1:8000"')
    return value.rstrip("/")


def _name(source: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _error(source, "name", value, "a non-empty string")
    return value


_PARSERS: dict[str, Any] = {
    "users": lambda s, v: _positive_int(s, "users", v),
    "duration": lambda s, v: _duration(s, "duration", v),
    "ramp_up": lambda s, v: _duration(s, "ramp_up", v),
    "ramp_down": lambda s, v: _duration(s, "ramp_down", v),
    "stages": _stages,
    "rate": lambda s, v: _positive_float(s, "rate", v),
    "max_users": lambda s, v: _positive_int(s, "max_users", v),
    "think_time": _think_time,
    "iterations": lambda s, v: _positive_int(s, "iterations", v),
    "workers": _workers,
    "base_url": _base_url,
    "name": _name,
    "timeout": lambda s, v: _duration(s, "timeout", v),
    "graceful_stop": lambda s, v: _duration(s, "graceful_stop", v),
    "max_body": lambda s, v: _size(s, "max_body", v),
    "client": _client,
}


@dataclass(frozen=True)
class Source:
    """Raw values from one place, with the label used in error messages."""

    label: str
    values: Mapping[str, object]


def parse_scale(label: str, value: object) -> float:
    return _positive_float(label, "scale", value)


def env_source(environ: Mapping[str, str]) -> Source:
    values = {key: environ[var] for key, var in ENV_VARS.items() if key != "scale" and environ.get(var)}
    labels = ", ".join(f"{ENV_VARS[key]}" for key in values)
    return Source(f"environment ({labels})" if labels else "environment", values)


def resolve_profile(
    *,
    ini: Source,
    marker: Source,
    env: Source,
    cli: Source,
    scale: float = 1.0,
    seed: int = 0,
) -> LoadProfile:
    """Merge the sources in precedence order, validate, then apply overrides and scale."""
    error = unknown_keys_error(marker.label, set(marker.values) - set(PLUGIN_MARKER_KEYS), DOCUMENTED_MARKER_KEYS)
    if error is not None:
        raise error
    _refuse_users_with_rate(marker)
    parsed: dict[str, tuple[object, str]] = {}
    marker_has_stages = "stages" in marker.values
    marker_has_iterations = "iterations" in marker.values
    for source, allowed in (
        (ini, INI_KEYS),
        (marker, MARKER_KEYS),
        (env, OVERRIDE_KEYS),
        (cli, OVERRIDE_KEYS),
    ):
        for key, raw in source.values.items():
            if key not in allowed or raw is None:
                continue
            if source is ini and (
                (marker_has_stages and key in ("duration", "ramp_up", "ramp_down"))
                or (marker_has_iterations and key == "duration")
            ):
                continue  # a test that states its own shape is not stretched by suite defaults
            parsed[key] = (_PARSERS[key](source.label, raw), source.label)
    values = {key: value for key, (value, _) in parsed.items()}
    sources = {key: label for key, (_, label) in parsed.items()}
    overridden = {key for key, label in sources.items() if label in (env.label, cli.label)}
    return _build(values, sources, overridden, scale=scale, seed=seed, marker_label=marker.label)


def _refuse_users_with_rate(marker: Source) -> None:
    """``users=`` beside ``rate=`` sets nothing in the open model: refuse it rather than ignore it silently.

    The cap of the open model is ``max_users``; environment and command-line users (CI overrides)
    keep capping it, as documented.
    """
    users, rate = marker.values.get("users"), marker.values.get("rate")
    if users is None or rate is None:
        return
    raise ProfileError(
        f"{marker.label}: users={users!r} with rate={rate!r}: rate= is the open model (iterations started per "
        f"second, on schedule), in which users= sets nothing; to cap the concurrent virtual users give "
        f"max_users={users!r}, or leave out rate= for the closed model (load.run(..., rate=None) drops the "
        "marker's rate for one run)"
    )


def _build(
    values: dict[str, Any],
    sources: dict[str, str],
    overridden: set[str],
    *,
    scale: float,
    seed: int,
    marker_label: str,
) -> LoadProfile:
    rate: float | None = values.get("rate")
    is_open = rate is not None
    stages: tuple[Stage, ...] | None = values.get("stages")
    users: int = values.get("users", DEFAULT_USERS)
    ramp_up: float = values.get("ramp_up", 0.0)
    ramp_down: float = values.get("ramp_down", 0.0)
    iterations: int | None = values.get("iterations")
    default_duration = DEFAULT_MAX_DURATION_WITH_ITERATIONS_S if iterations else DEFAULT_DURATION_S
    max_users: int = values.get("max_users", DEFAULT_MAX_USERS)

    start = float(rate) if is_open and rate is not None else 0.0
    if stages is not None:
        if "duration" in values and "duration" not in overridden and sources.get("duration") == marker_label:
            raise ProfileError(
                f"{marker_label}: give either duration (with users/ramp_up/ramp_down) or stages, not both"
            )
        if "duration" in overridden:
            stretch = values["duration"] / sum(d for d, _ in stages)
            stages = tuple((d * stretch, target) for d, target in stages)
        if "users" in overridden:
            if is_open:
                max_users = users
            else:
                peak = max(target for _, target in stages) or 1.0
                stages = tuple((d, round(target * users / peak)) for d, target in stages)
        duration = sum(d for d, _ in stages)
    else:
        duration = values.get("duration", default_duration)
        if duration <= 0:
            raise ProfileError(f"{sources.get('duration', marker_label)}: duration must be longer than 0 s")
        if ramp_up + ramp_down > duration:
            raise ProfileError(
                f"{marker_label}: ramp_up ({ramp_up:g} s) + ramp_down ({ramp_down:g} s) exceed "
                f"duration ({duration:g} s); duration is the whole run, ramps included"
            )
        if is_open and "users" in overridden:
            max_users = users
        level = float(rate) if is_open and rate is not None else float(users)
        stages = ((ramp_up, level), (duration - ramp_up - ramp_down, level), (ramp_down, 0.0))
        stages = tuple(stage for stage in stages if stage[0] > 0) or ((duration, level),)
        start = 0.0 if ramp_up > 0 else level

    stages = tuple((d * scale, target) for d, target in stages)
    if not is_open:
        users = max(1, math.ceil(max(target for _, target in stages)))
    return LoadProfile(
        stages=stages,
        start=start,
        model="open" if is_open else "closed",
        users=users,
        duration=duration * scale,
        ramp_up=ramp_up * scale,
        ramp_down=ramp_down * scale,
        rate=rate,
        max_users=max_users,
        think_time=values.get("think_time"),
        iterations=iterations,
        workers=values.get("workers", 1),
        base_url=values.get("base_url"),
        name=values.get("name"),
        timeout=values.get("timeout", DEFAULT_TIMEOUT_S),
        graceful_stop=values.get("graceful_stop", DEFAULT_GRACEFUL_STOP_S),
        max_body=values.get("max_body", DEFAULT_MAX_BODY),
        client=values.get("client", "httpx"),
        scale=scale,
        seed=seed,
        sources=sources,
    )

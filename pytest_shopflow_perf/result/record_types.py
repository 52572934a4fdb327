"""Type checks of run records and baselines read from files (hand-edited, merged by git, truncated by a tool).

The plugin writes every record itself, so what it reads back should have the types it wrote; a file
someone edited may not. Each problem names the field by its path in the file
(``runs[2].endpoints["GET /x"].p95_ms: expected a number, got "fast"``) so it can be fixed by hand.
Only the fields the plugin reads are checked, and only when present: the schema grows by addition,
and older records lack newer fields. Presence rules (a run needs ``total``...) stay with the readers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["BASELINE_TYPES", "RUN_TYPES", "type_problems"]


@dataclass(frozen=True)
class _Scalar:
    expected: str  # "a number", "a whole number >= 0", "a string", "true or false"


@dataclass(frozen=True)
class _Optional:
    inner: _Spec


@dataclass(frozen=True)
class _List:
    item: _Spec


@dataclass(frozen=True)
class _Map:
    """An object whose keys are names (endpoints, checks, error kinds)."""

    value: _Spec


@dataclass(frozen=True)
class _Object:
    """An object of known fields; others are welcome and not checked."""

    fields: Mapping[str, _Spec] = field(default_factory=dict)
    same_length: bool = False  # per-window arrays: every list as long as the others


@dataclass(frozen=True)
class _Either:
    """One of several shapes (a field whose form changed: older records keep the old one)."""

    options: tuple[_Spec, ...]
    expected: str


_Spec = _Scalar | _Optional | _List | _Map | _Object | _Either

NUMBER = _Scalar("a number")
COUNT = _Scalar("a whole number >= 0")
STRING = _Scalar("a string")
BOOLEAN = _Scalar("true or false")
_MS = ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
_SETUP = tuple(f"{kind}_ms_{figure}" for kind in ("connect", "wait") for figure in ("mean", "p95", "max"))

_WINDOWS = _Object(
    {"t_s": _List(NUMBER), "count": _List(COUNT), "errors": _List(COUNT), **{key: _List(NUMBER) for key in _MS}},
    same_length=True,
)
_STATS = _Object(
    {
        "requests": COUNT,
        "errors": COUNT,
        "request_errors": COUNT,
        "error_rate": _Optional(NUMBER),
        "rps": _Optional(NUMBER),
        **{key: _Optional(NUMBER) for key in (*_MS, *_SETUP)},
        "errors_by_kind": _Map(COUNT),
        "hdr": STRING,
        "windows": _WINDOWS,
        "failed": _Object({"requests": COUNT, **{key: _Optional(NUMBER) for key in _MS}, "hdr": STRING}),
        "uncorrected": _Object({**{key: _Optional(NUMBER) for key in _MS}, "hdr": STRING}),
    }
)
_GENERATOR = _Object(
    {
        **{
            key: _Optional(NUMBER)
            for key in (
                "loop_lag_p50_ms",
                "loop_lag_p99_ms",
                "loop_lag_max_ms",
                "cpu_percent",
                "cpu_max_percent",
                "max_lateness_ms",
            )
        },
        **{
            key: COUNT
            for key in (
                "peak_users",
                "users_target",
                "users_started",
                "users_failed_to_start",
                "iterations",
                "late_iterations",
                "dropped_iterations",
                "clamped_values",
            )
        },
        "saturated": BOOLEAN,
        "reasons": _List(STRING),
        "client": STRING,
        "transport": STRING,
        "event_loop": STRING,
    }
)
_PROFILE = _Object(
    {
        "model": STRING,
        "users": COUNT,
        "max_users": COUNT,
        "duration": NUMBER,
        "rate": _Optional(NUMBER),
        "scale": NUMBER,
        "stages": _List(_List(NUMBER)),
        "name": _Optional(STRING),
        "base_url": _Optional(STRING),
    }
)
_ENVIRONMENT = _Object(
    {
        "fingerprint": _Optional(STRING),
        "git_commit": _Optional(STRING),
        "cpu_model": _Optional(STRING),
        "cpu_count": _Optional(COUNT),
        "cpu_quota": _Optional(NUMBER),
        "python": _Optional(STRING),
        "plugin_version": _Optional(STRING),
    }
)
RUN_TYPES = _Object(
    {
        "schema": STRING,
        "test": STRING,
        "started_at": STRING,
        "duration_s": NUMBER,
        "window_s": NUMBER,
        "model": STRING,
        "target": _Either(  # older records hold the URL only
            (STRING, _Object({"url": STRING, "source": STRING, "label": STRING})),
            "a URL or an object of url, source and label",
        ),
        "interrupted": BOOLEAN,
        "git_commit": _Optional(STRING),
        "profile": _PROFILE,
        "environment": _ENVIRONMENT,
        "generator": _GENERATOR,
        "checks": _Map(_Object({"passes": COUNT, "fails": COUNT})),
        "total": _STATS,
        "endpoints": _Map(_STATS),
        "events": _Map(_Object({"errors": COUNT, "errors_by_kind": _Map(COUNT)})),
        "extra": _Object(),
        "shards": _List(
            _Object(
                {
                    "worker": STRING,
                    "users": COUNT,
                    "requests": COUNT,
                    "errors": COUNT,
                    "generator": _GENERATOR,
                    "lost": BOOLEAN,
                    "lost_at_s": _Optional(NUMBER),
                    "note": STRING,
                }
            )
        ),
    }
)
"""The types of a run record (``shopflow-perf/run/1``) as the plugin writes it."""
BASELINE_TYPES = _Object({"schema": STRING, "test": STRING, "runs": _List(RUN_TYPES)})
"""The types of a baseline file (``shopflow-perf/baseline/1``)."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _shown(value: object) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _field(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _scalar_ok(value: object, spec: _Scalar) -> bool:
    if spec is STRING:
        return isinstance(value, str)
    if spec is BOOLEAN:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if spec is COUNT:
        return isinstance(value, int) and value >= 0
    return math.isfinite(value)


def _check(value: object, spec: _Spec, path: str, problems: list[str]) -> None:
    where = path or "the file"
    if isinstance(spec, _Either):
        if not any(not type_problems(value, option, path) for option in spec.options):
            problems.append(f"{where}: expected {spec.expected}, got {_shown(value)}")
    elif isinstance(spec, _Optional):
        if value is not None:
            _check(value, spec.inner, path, problems)
    elif isinstance(spec, _Scalar):
        if not _scalar_ok(value, spec):
            problems.append(f"{where}: expected {spec.expected}, got {_shown(value)}")
    elif isinstance(spec, _List):
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {_shown(value)}")
            return
        for index, item in enumerate(value):
            _check(item, spec.item, f"{path}[{index}]", problems)
    elif not isinstance(value, Mapping):
        problems.append(f"{where}: expected an object, got {_shown(value)}")
    elif isinstance(spec, _Map):
        for key, item in value.items():
            _check(item, spec.value, f"{path}[{json.dumps(key, ensure_ascii=False)}]", problems)
    else:
        for key, item_spec in spec.fields.items():
            if key in value:
                _check(value[key], item_spec, _field(path, key) if path else key, problems)
        if spec.same_length:
            lengths = {key: len(value[key]) for key in spec.fields if isinstance(value.get(key), list)}
            if len(set(lengths.values())) > 1:
                sizes = ", ".join(f"{key} {size}" for key, size in lengths.items())
                problems.append(f"{where}: the per-window lists differ in length ({sizes})")


def type_problems(data: object, spec: _Spec = BASELINE_TYPES, path: str = "") -> list[str]:
    """Every field of ``data`` whose type is not the one ``spec`` says, as ``path: expected X, got Y``."""
    problems: list[str] = []
    _check(data, spec, path, problems)
    return problems

"""The SLO expression grammar: ``[ENDPOINT: ]METRIC OP VALUE [over any D] [during ...]`` -> ``Threshold``.

``Slo`` is a declared threshold (marker, ini, ``@pytest.mark.slo``), validated when it is made;
``as_slos`` reads a marker's or ini's list of them. Nothing here measures anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pytest_shopflow_perf._errors import ShopflowPerfError
from pytest_shopflow_perf.profile.units import UnitError, parse_duration, parse_fraction

GRAMMAR = (
    "[ENDPOINT: ]METRIC OP VALUE [over any DURATION] [during stage N | during START..END], where METRIC is "
    "p(N), avg, med, min, max (latency; VALUE in us, ms or s, ms when no unit), error_rate or rate (VALUE as "
    "1% or 0.01; error_rate[KIND, ...] counts only those error kinds), rps, count or errors (numbers), and OP "
    "is <, <=, >, >= or ==; e.g. 'p(95)<500ms', "
    "'error_rate<1%', 'rps>50', 'GET /api/products: p(99)<1s', 'error_rate<5% over any 10s', "
    "'p(95)<800ms during stage 2', 'p(95)<500ms during 20s..end'. The target's resources (sampled from the "
    "embedded service, --perf-target-pid or --perf-metrics-url): target_cpu (mean, % of one core), target_rss "
    "(max, MB or GB), gauge(NAME) (max of a scraped gauge), e.g. 'target_cpu<70%', 'target_rss<512MB', "
    "'gauge(shopflow_db_connections_in_use)<3'"
)
_EXPRESSION = re.compile(
    r"^\s*(?:(?P<endpoint>.+?)\s*:\s+)?(?P<metric>p\(\s*\d+(?:\.\d+)?\s*\)|gauge\([^()]+\)|[a-z_]+(?:\[[^\]]*\])?)\s*"
    r"(?P<op><=|>=|==|<|>)\s*(?P<value>[^\s]+?)"
    r"(?:\s+over\s+any\s+(?P<span>\S+))?"
    r"(?:\s+during\s+(?:stage\s+(?P<stage>\d+)|(?P<start>[^\s.]+)\.\.(?P<end>\S+)))?\s*$"
)
_LATENCY_METRICS = {"avg": "mean", "mean": "mean", "med": "p50", "min": "min", "max": "max"}
# The unit a threshold's value is shown in: what it was written in (latency), or the metric's own.
_LATENCY_UNITS = {"us": 1e6, "ms": 1e3, "s": 1.0}
_METRIC_UNITS = {"error_rate": "%", "rps": "req/s", "count": "", "errors": "", "target_cpu": "%", "target_rss": "MB"}
RESOURCE_METRICS = ("target_cpu", "target_rss")  # and gauge(NAME): of the target, not of the requests
_MEMORY_UNITS = {"mb": 1.0, "gb": 1000.0}
# The comparison of each OP, measured value first.
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
}
DEFAULT_ABORT_GRACE_S = 5.0


class SloError(ShopflowPerfError, ValueError):
    """An SLO expression or threshold could not be read; the message gives the grammar."""


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold: ``metric op value`` on an endpoint (None = the whole run), maybe scoped in time."""

    metric: str  # "p95", "p99.9", "mean", "min", "max", "error_rate", "rps", "count", "errors"
    op: str
    value: float  # seconds for latency, fraction for rates
    endpoint: str | None = None
    text: str = ""
    span: float | None = None  # "over any 10s": every span of this width must hold
    stage: int | None = None  # "during stage 2" (1-based)
    between: tuple[float, float] | None = None  # "during 10s..20s" (end may be inf)
    unit: str = ""  # what the value was written in: "us", "ms", "s" (latency); "" = the metric's own
    kinds: tuple[str, ...] | None = None  # error_rate[HTTP 5, timeout]: only errors of these kinds (prefixes)

    def __post_init__(self) -> None:
        if not self.text:  # built in code (assert_latency...): the expression the grammar reads back
            object.__setattr__(self, "text", expression(self))

    @property
    def is_latency(self) -> bool:
        return self.metric.startswith("p") or self.metric in ("mean", "min", "max")

    @property
    def is_resource(self) -> bool:
        """Judged on ``result.resources`` (the target's samples), not on the requests."""
        return self.metric in RESOURCE_METRICS or self.metric.startswith("gauge(")

    @property
    def scope(self) -> str:
        parts = []
        if self.span is not None:
            parts.append(f"any {self.span:g} s")
        if self.stage is not None:
            parts.append(f"stage {self.stage}")
        if self.between is not None:
            start, end = self.between
            parts.append(f"{start:g}-{'end' if math.isinf(end) else f'{end:g}'} s")
        return ", ".join(parts) or "whole run"

    @property
    def display_unit(self) -> str:
        """The unit its value and what was measured against it are shown in: ms, s, us, %, req/s or none."""
        if self.is_latency:
            return self.unit if self.unit in _LATENCY_UNITS else "ms"
        return _METRIC_UNITS.get(self.metric, "")


def _number(value: float) -> str:
    """A plain decimal the grammar and the unit parser read (never an exponent), without float noise."""
    text = f"{round(value, 6):.12f}".rstrip("0").rstrip(".")  # 0.9 s in us is 899999.9999999999 as a float
    return text if text not in ("", "-0") else "0"


def expression(threshold: Threshold) -> str:
    """``threshold`` in the grammar's own form: ``parse_threshold(expression(t))`` is ``t`` again.

    Every report prints thresholds so, whoever made them (an expression, ``assert_latency(p95=0.5)``),
    so that what a report shows can be pasted into ``slo=[...]`` as it stands.
    """
    metric = threshold.metric
    if metric == "mean":
        name = "avg"
    elif threshold.is_latency and metric not in ("min", "max"):
        name = f"p({metric[1:]})"
    elif metric == "error_rate" and threshold.kinds:
        name = f"error_rate[{', '.join(_kind_text(kind) for kind in threshold.kinds)}]"
    else:
        name = metric
    unit = threshold.display_unit
    if threshold.is_latency:
        value = _number(threshold.value * _LATENCY_UNITS[unit]) + unit
    elif unit == "%":
        value = _number(threshold.value * 100) + "%"
    elif unit == "MB":
        value = _number(threshold.value) + "MB"
    else:
        value = _number(threshold.value)
    text = f"{threshold.endpoint}: " if threshold.endpoint is not None else ""
    text += f"{name}{threshold.op}{value}"
    if threshold.span is not None:
        text += f" over any {_duration(threshold.span)}"
    if threshold.stage is not None:
        text += f" during stage {threshold.stage}"
    elif threshold.between is not None:
        start, end = threshold.between
        text += f" during {_duration(start)}..{'end' if math.isinf(end) else _duration(end)}"
    return text


def _duration(seconds: float) -> str:
    """Whole seconds, else whole milliseconds, else microseconds: ``during START..`` takes no decimal point."""
    for unit, factor in (("s", 1.0), ("ms", 1e3)):
        scaled = round(seconds * factor, 9)
        if scaled.is_integer():
            return f"{_number(scaled)}{unit}"
    return f"{_number(seconds * 1e6)}us"


def latency_unit(limit: object) -> str:
    """The unit a latency limit was written in: "250ms" -> ms, "1.5s" or "1m" -> s; a number of seconds by size."""
    if isinstance(limit, str):
        text = limit.strip().lower()
        if text.endswith(("us", "µs")):
            return "us"
        if text.endswith("ms"):
            return "ms"
        if text and not text[-1].isdigit():
            return "s"
        try:
            limit = float(text)
        except ValueError:
            return "ms"
    if isinstance(limit, (int, float)) and not isinstance(limit, bool):
        return "s" if limit >= 1 else "ms"
    return "ms"


@dataclass(frozen=True)
class Slo:
    """A declared threshold (marker ``slo=[...]``, ``@pytest.mark.slo``, ini ``perf_slo``), checked after each run.

    :param abort: stop the load early once the threshold is breached beyond
        recovery (no remaining requests could bring it back), after ``grace``.
    """

    expression: str
    abort: bool = False
    grace: float | str = DEFAULT_ABORT_GRACE_S

    def __post_init__(self) -> None:
        threshold = parse_threshold(self.expression)  # fail at declaration, with the grammar
        if self.abort and threshold.is_resource:
            raise SloError(
                f"Slo({self.expression!r}, abort=True): the target's resources are judged when the run ends, "
                "not while it goes; drop abort=True"
            )
        if self.abort and threshold.kinds:
            raise SloError(
                f"Slo({self.expression!r}, abort=True): error_rate[KINDS] cannot abort a run (the live windows "
                "count errors, not their kinds); abort on error_rate instead"
            )
        try:
            parse_duration(self.grace, what="grace")
        except UnitError as exc:
            raise SloError(str(exc)) from None

    @property
    def threshold(self) -> Threshold:
        return parse_threshold(self.expression)

    @property
    def grace_s(self) -> float:
        return parse_duration(self.grace, what="grace")


_KIND = re.compile(r'\s*(?:"(?P<quoted>[^"]*)"|(?P<plain>[^,"]*?))\s*(?:,|$)')


def _kinds(text: str) -> tuple[str, ...]:
    """``HTTP 5, timeout`` -> ("HTTP 5", "timeout"); a kind with a comma is quoted: ``"check: a, b"``."""
    kinds: list[str] = []
    position = 0
    while position < len(text):
        match = _KIND.match(text, position)
        if match is None or match.end() == position:
            raise SloError(f"cannot read the error kinds [{text}]; e.g. error_rate[HTTP 5, timeout]<1%")
        kind = match.group("quoted") if match.group("quoted") is not None else match.group("plain")
        kinds.append(kind)
        position = match.end()
    if not kinds or not all(kind.strip() for kind in kinds):
        raise SloError(f"error_rate[{text}] needs error kinds, e.g. error_rate[HTTP 5, timeout]<1%")
    return tuple(kinds)


def _kind_text(kind: str) -> str:
    return f'"{kind}"' if "," in kind or kind != kind.strip() else kind


def _percentile_metric(text: str) -> str:
    number = float(text[2:-1].strip())
    if not 0 < number <= 100:
        raise SloError(f"percentile {text!r} must lie in (0, 100]")
    return f"p{number:g}"


def parse_threshold(expression: str) -> Threshold:
    """``"GET /api/products: p(95)<300ms"`` -> Threshold; errors name the expression and the grammar."""
    match = _EXPRESSION.match(expression) if isinstance(expression, str) else None
    if match is None:
        raise SloError(f"cannot read SLO expression {expression!r}; expected {GRAMMAR}")
    metric_text = match.group("metric")
    op, value_text = match.group("op"), match.group("value")
    unit = ""
    kinds: tuple[str, ...] | None = None
    try:
        if metric_text.startswith("p(") or metric_text in _LATENCY_METRICS:
            if metric_text.startswith("p("):
                metric = _percentile_metric(metric_text.replace(" ", ""))
            else:
                metric = _LATENCY_METRICS[metric_text]
            value = _latency_value(value_text)
            # k6: a bare number is milliseconds
            unit = latency_unit(value_text) if value_text.strip()[-1:].isalpha() else "ms"
        elif metric_text.split("[")[0] in ("rate", "error_rate"):
            metric, value = "error_rate", parse_fraction(value_text, what=metric_text)
            if "[" in metric_text:
                kinds = _kinds(metric_text[metric_text.index("[") + 1 : -1])
        elif metric_text in ("rps", "count", "errors"):
            metric, value = metric_text, float(value_text)
        elif metric_text == "target_cpu":
            metric, value = metric_text, _cpu_share(value_text)
        elif metric_text == "target_rss":
            metric, value = metric_text, _megabytes(value_text)
        elif metric_text.startswith("gauge("):
            metric, value = f"gauge({metric_text[6:-1].strip()})", float(value_text)
        else:
            raise SloError(f"unknown metric {metric_text!r}")
        span = parse_duration(match.group("span"), what="over any") if match.group("span") else None
        if span is not None and span <= 0:
            raise SloError("'over any' needs a span longer than 0 s")
        stage = int(match.group("stage")) if match.group("stage") else None
        if stage is not None and stage < 1:
            raise SloError("stages are numbered from 1")
        between = None
        if match.group("start"):
            end_text = match.group("end")
            end = math.inf if end_text == "end" else parse_duration(end_text, what="during end")
            between = (parse_duration(match.group("start"), what="during start"), end)
            if between[1] <= between[0]:
                raise SloError("'during START..END' needs END after START")
        if metric in RESOURCE_METRICS or metric.startswith("gauge("):
            if match.group("endpoint"):
                raise SloError(f"{metric} is of the target's process, not of an endpoint: drop the endpoint")
            if op not in ("<", "<="):
                raise SloError(f"{metric} is a ceiling: use < or <=")
        if kinds is not None and (span is not None or stage is not None or between is not None):
            raise SloError("error_rate[KINDS] is judged on the whole run: 1-second windows count errors, not kinds")
    except (UnitError, ValueError) as exc:
        raise SloError(f"cannot read SLO expression {expression!r}: {exc}; expected {GRAMMAR}") from None
    return Threshold(
        metric=metric,
        op=op,
        value=value,
        endpoint=match.group("endpoint"),
        text=expression.strip(),
        span=span,
        stage=stage,
        between=between,
        unit=unit,
        kinds=kinds,
    )


def as_slos(items: Iterable[object], source: str) -> list[Slo]:
    """Strings and ``Slo`` objects from a marker or ini, validated (errors name the source)."""
    slos = []
    for item in items:
        if isinstance(item, Slo):
            slos.append(item)
        elif isinstance(item, str):
            try:
                slos.append(Slo(item))
            except SloError as exc:
                raise SloError(f"{source}: {exc}") from None
        else:
            raise SloError(f"{source}: {item!r} is not an SLO; give strings like 'p(95)<500ms' or Slo(...) objects")
    return slos


def _latency_value(text: str) -> float:
    stripped = text.strip()
    try:
        return float(stripped) / 1000.0  # k6: a bare number is milliseconds
    except ValueError:
        return parse_duration(stripped, what="latency")


def _megabytes(text: str) -> float:
    """``512MB``, ``1.5GB`` or a bare number of MB (10**6 bytes, as ``process_resident_memory_bytes`` / 1e6)."""
    stripped = text.strip().lower()
    for suffix, factor in _MEMORY_UNITS.items():
        if stripped.endswith(suffix):
            return _positive(float(stripped[: -len(suffix)]) * factor, text)
    return _positive(float(stripped), text)


def _positive(megabytes: float, text: str) -> float:
    if not megabytes > 0:
        raise SloError(f"target_rss<{text}: the limit must be above 0 MB, e.g. target_rss<512MB")
    return megabytes


def _cpu_share(text: str) -> float:
    """``70%`` of one core -> 0.7 (``150%``: one and a half cores); a percent sign, so 0.7 and 70 are not confused."""
    stripped = text.strip()
    if not stripped.endswith("%"):
        raise SloError(f"target_cpu takes a percentage of one core, e.g. target_cpu<70%, got {text!r}")
    share = float(stripped[:-1]) / 100.0
    if not share > 0:
        raise SloError(f"target_cpu<{text}: the limit must be above 0 %")
    return share

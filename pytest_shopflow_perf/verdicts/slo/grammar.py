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
    "1% or 0.01), rps, count or errors (numbers), and OP is <, <=, >, >= or ==; e.g. 'p(95)<500ms', "
    "'error_rate<1%', 'rps>50', 'GET /api/products: p(99)<1s', 'error_rate<5% over any 10s', "
    "'p(95)<800ms during stage 2', 'p(95)<500ms during 20s..end'"
)
_EXPRESSION = re.compile(
    r"^\s*(?:(?P<endpoint>.+?)\s*:\s+)?(?P<metric>p\(\s*\d+(?:\.\d+)?\s*\)|[a-z_]+)\s*"
    r"(?P<op><=|>=|==|<|>)\s*(?P<value>[^\s]+?)"
    r"(?:\s+over\s+any\s+(?P<span>\S+))?"
    r"(?:\s+during\s+(?:stage\s+(?P<stage>\d+)|(?P<start>[^\s.]+)\.\.(?P<end>\S+)))?\s*$"
)
_LATENCY_METRICS = {"avg": "mean", "mean": "mean", "med": "p50", "min": "min", "max": "max"}
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

    @property
    def is_latency(self) -> bool:
        return self.metric.startswith("p") or self.metric in ("mean", "min", "max")

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
        parse_threshold(self.expression)  # fail at declaration, with the grammar
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
    metric_text = match.group("metric").replace(" ", "")
    op, value_text = match.group("op"), match.group("value")
    try:
        if metric_text.startswith("p("):
            metric = _percentile_metric(metric_text)
            value = _latency_value(value_text)
        elif metric_text in _LATENCY_METRICS:
            metric = _LATENCY_METRICS[metric_text]
            value = _latency_value(value_text)
        elif metric_text in ("rate", "error_rate"):
            metric, value = "error_rate", parse_fraction(value_text, what=metric_text)
        elif metric_text in ("rps", "count", "errors"):
            metric, value = metric_text, float(value_text)
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

"""A capacity search in the reports: a terminal line, summary.md's "Capacity search", findings.

They read the plain record of a search (a run's ``extra["capacity"]``, or ``"capacity_search"`` in
a summary's run entry), never the search itself: the levels it ran in order, which passed, the SLO
breaches of those that did not, where it stopped (``limit``) and how the sustainable level compares
with the baseline's (``regression``). ``recommendations.py`` ranks and words the findings with the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytest_shopflow_perf.reporting.advice import TEST_OWNER

__all__ = [
    "capacity_caption",
    "capacity_of",
    "findings",
    "level_text",
    "markdown_lines",
    "regression_text",
    "terminal_line",
]

Table = Callable[[Iterable[str], Iterable[Iterable[Any]]], list[str]]
FAILING = ("major", "critical")
STEP_COLUMNS = ("step", "level", "passed", "req/s", "p95", "p99", "errors", "breaches / why")


def capacity_of(run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The search's record of a run record (``extra["capacity"]``) or of a summary's run entry."""
    record = run.get("capacity_search")
    if record is None:
        record = (run.get("extra") or {}).get("capacity")
    return record if isinstance(record, Mapping) and record.get("steps") is not None else None


def level_text(value: float | None) -> str:
    """``340``, ``1,000``, ``12.5``: a level as typed, without a trailing ``.0``."""
    if value is None:
        return "-"
    number = float(value)
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:,.2f}".rstrip("0").rstrip(".")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _unit(record: Mapping[str, Any]) -> str:
    return str(record.get("unit") or ("users" if record.get("model") == "users" else "arrivals/s"))


def _slo(record: Mapping[str, Any]) -> str:
    return ", ".join(str(s) for s in record.get("slo") or []) or "its SLOs"


def _why(step: Mapping[str, Any]) -> str:
    """What broke a level (its breaches), or what else stopped it: the generator, abort-on-fail."""
    parts = [str(b) for b in step.get("breaches") or []]
    if step.get("saturated"):
        parts.append("the generator saturated")
    if step.get("aborted"):
        duration = step.get("duration_s")
        parts.append(f"aborted after {duration:.1f} s" if duration is not None else "aborted")
    return "; ".join(parts)


def _sustained(record: Mapping[str, Any]) -> str:
    """``340 arrivals/s``, or ``none: the first level (50 arrivals/s) already failed``."""
    best = record.get("max_sustainable")
    if best is not None:
        return f"{level_text(best)} {_unit(record)}"
    steps = record.get("steps") or []
    first = f" ({level_text(steps[0].get('level'))} {_unit(record)})" if steps else ""
    return f"none: the first level{first} already failed"


def _saturated_step(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((s for s in record.get("steps") or [] if s.get("saturated")), None)


def regression_text(record: Mapping[str, Any]) -> str | None:
    """``vs baseline 500: -32 % (major)``, or what kept it from being compared."""
    regression = record.get("regression")
    if not regression:
        return None
    tier = regression.get("tier")
    baseline = regression.get("baseline_max_sustainable")
    note = regression.get("note")
    if baseline is None:
        return f"regression: {note}" if note else None
    change = regression.get("change")
    figure = f"{change * 100:+.0f} %" if change is not None else "not compared"
    detail = f"{tier}: {note}" if tier == "inconclusive" and note else (tier or "not judged")
    return f"vs baseline {level_text(baseline)}: {figure} ({detail})"


def _headline(record: Mapping[str, Any]) -> str:
    """What the search found: its sustainable level and where it stopped, in the record's unit."""
    unit = _unit(record)
    best = record.get("max_sustainable")
    steps: Sequence[Mapping[str, Any]] = record.get("steps") or []
    limit = record.get("limit")
    if limit == "generator":
        saturated = _saturated_step(record)
        at = f" at {level_text(saturated['level'])}" if saturated else ""
        if best is None:
            return f"not measured: the generator saturated{at}, the first level, before the service broke (add workers)"
        return f"at least {level_text(best)} {unit}: the generator saturated{at} before the service broke (add workers)"
    if limit == "max":
        return f"sustains the max, {level_text(best)} {unit}"
    if best is None:
        first = steps[0] if steps else {}
        why = _why(first)
        return f"below {level_text(first.get('level'))} {unit}: the first level already breaks" + (
            f": {why}" if why else ""
        )
    line = f"max sustainable {level_text(best)} {unit} at {_slo(record)}"
    breaking = record.get("breaking")
    if breaking:
        why = _why(breaking)
        line += f"; breaks at {level_text(breaking.get('level'))}" + (f": {why}" if why else "")
    return line


def terminal_line(run: Mapping[str, Any]) -> str | None:
    """The ``-v`` block's line: ``  capacity: max sustainable 340 arrivals/s at p(95)<60ms; breaks at 400: ...``,
    then ``; vs baseline 500: -32 % (major)`` when it was compared."""
    record = capacity_of(run)
    if record is None:
        return None
    regression = regression_text(record)
    return f"  capacity: {_headline(record)}" + (f"; {regression}" if regression else "")


def _step_row(index: int, step: Mapping[str, Any], unit: str) -> tuple[str, ...]:
    error_rate = step.get("error_rate")
    return (
        str(index),
        f"{level_text(step.get('level'))} {unit}",
        "yes" if step.get("passed") else "**no**",
        f"{float(step.get('rps') or 0):,.1f}",
        _ms(step.get("p95_ms")),
        _ms(step.get("p99_ms")),
        "-" if error_rate is None else f"{error_rate * 100:.2f} %",
        _why(step) or "-",
    )


def _limit_text(record: Mapping[str, Any]) -> str:
    unit = _unit(record)
    limit = record.get("limit")
    if limit == "generator":
        saturated = _saturated_step(record)
        at = f" at {level_text(saturated['level'])} {unit}" if saturated else ""
        return f"the generator (it saturated{at} before the service broke: add workers or --perf-cluster)"
    if limit == "max":
        return "the search's max (it passed: the service's limit is higher)"
    breaking = record.get("breaking")
    return "the service" + (f" (it breaks at {level_text(breaking.get('level'))} {unit})" if breaking else "")


def markdown_lines(runs: Sequence[Mapping[str, Any]], table: Table) -> list[str]:
    """The "Capacity search" section: per run, the levels in the order run, then what the search found."""
    lines: list[str] = []
    for run in runs:
        record = capacity_of(run)
        if record is None:
            continue
        unit = _unit(record)
        lines += ["", f"### {run.get('name') or run.get('test') or 'load run'}", ""]
        model = str(record.get("model") or "rate").capitalize()
        lines.append(f"{model} model, levels in {unit}, in the order run; each level judged on {_slo(record)}.")
        lines.append("")
        steps = record.get("steps") or []
        lines += table(STEP_COLUMNS, (_step_row(i, step, unit) for i, step in enumerate(steps, 1)))
        regression = regression_text(record)
        tier = (record.get("regression") or {}).get("tier")
        if regression and tier in FAILING:
            regression = regression.replace(f"({tier}", f"(**{tier}**", 1)
        lines += [
            "",
            f"**Max sustainable: {_sustained(record)}**; limit: {_limit_text(record)}"
            + (f"; {regression}" if regression else "; no baseline to compare with")
            + ".",
        ]
    return ["", "## Capacity search", *lines] if lines else []


def capacity_caption(record: Mapping[str, Any]) -> str:
    """The HTML chart's caption: how to read it, then what the search found."""
    steps = record.get("steps") or []
    regression = regression_text(record)
    return (
        f"Each point is a step of its own at one level ({len(steps)} in all), judged on {_slo(record)}: green "
        "passed, red failed, a cross where the generator saturated; dashed: the max sustainable level. "
        f"Max sustainable: {_sustained(record)}; limit: {_limit_text(record)}"
        + (f"; {regression}." if regression else ".")
    )


def findings(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Facts for recommendations: title, subject, fragment, advice, impact, effort, owner, cites."""
    record = capacity_of(run)
    if record is None:
        return []
    unit = _unit(record)
    best = record.get("max_sustainable")
    found = []
    if record.get("limit") == "generator":
        saturated = _saturated_step(record)
        at = f", saturated at {level_text(saturated['level'])}" if saturated else ""
        measured = f"at least {level_text(best)} {unit}" if best is not None else "no level measured"
        found.append(
            {
                "title": "Find the service's real capacity: the generator saturated first",
                "subject": "the capacity search stopped at the generator's limit",
                "fragment": f"({measured}{at})",
                "advice": "the service did not break, so its capacity is above what was measured; add workers "
                "(workers=N, --perf-workers) or generate load from other machines (--perf-cluster) and search again",
                "impact": "medium",
                "effort": "medium",
                "owner": TEST_OWNER,
                "cites": ["capacity search (levels, generator saturation)"],
            }
        )
    regression = record.get("regression") or {}
    tier = regression.get("tier")
    baseline = regression.get("baseline_max_sustainable")
    if tier in FAILING:
        change = regression.get("change")
        figure = f", {change * 100:+.0f} %" if change is not None else ""
        found.append(
            {
                "title": "Capacity dropped: find what made the service slower at load",
                "subject": "the max sustainable level fell",
                "fragment": f"from {level_text(baseline)} to {level_text(best)} {unit} ({tier}{figure})",
                "advice": "compare the breaking level's p95 and errors with the baseline's and profile the service "
                "at that level; the changes since the baseline (code, configuration, data size) are the suspects",
                "impact": "high",
                "effort": "medium",
                "owner": "Backend",
                "cites": ["capacity search (max sustainable, baseline's)", "breaking level's SLO breaches"],
            }
        )
    return found

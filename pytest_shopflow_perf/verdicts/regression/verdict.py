"""The regression verdict: its policy, findings and tiers, and ``compare`` (a run record against a baseline).

A pure function on JSON-safe records (no HTTP, no pytest). The statistics of each
test are in :mod:`.stats`; here the tests of a comparison are corrected together
(Benjamini-Hochberg), tiered by effect size, and downgraded to "inconclusive"
when the comparison is not like for like (another machine, a busier machine,
another load shape, too few baseline runs). ``finding_row`` renders a finding as a table row for the
assertion message and the ``baseline diff`` command alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from pytest_shopflow_perf.result.schema import FAIL_ON_CHOICES, FAILING_TIERS, TIERS, Tier, tier_rank
from pytest_shopflow_perf.verdicts.baseline import validate_baseline, validate_run
from pytest_shopflow_perf.verdicts.regression.machine import busier_than_baseline
from pytest_shopflow_perf.verdicts.regression.stats import (
    LATENCY_KEYS,
    TOTAL,
    Pending,
    compare_error_rate,
    compare_latency,
    compare_throughput,
    streams,
)

METRICS: Final[tuple[str, ...]] = ("p50", "p95", "p99", "mean", "throughput", "error_rate")
_EPSILON: Final = 1e-9


@dataclass(frozen=True)
class RegressionPolicy:
    """Thresholds of the verdict. Relative thresholds are fractions (0.10 = +10 %).

    :param alpha: significance level of the one-sided tests, after Benjamini-Hochberg.
    :param minor: relative worsening above which a significant change is a regression.
    :param major: ... a major one.
    :param critical: ... a critical one.
    :param error_rate_floor: smallest absolute error-rate increase (0.001 = 0.1
        percentage points) that can count as a regression.
    :param noise_floor: run-to-run variation (relative sd) that baseline runs
        recorded together may not show, added to the one they do show; with a
        single baseline run it is the only estimate there is.
    :param metrics: metrics to compare, a subset of :data:`METRICS`.
    :param single_run_noise_floor: the run-to-run variation assumed when the
        baseline holds a single run, which cannot show it (short runs of one
        machine were seen to differ by 25 % and more on rare endpoints): only
        changes well beyond it can be significant.
    :param min_baseline_runs: fewer baseline runs than this never fail a test:
        findings stay "inconclusive" until the baseline has them.
    :param latency_floor_ms: smallest absolute latency increase (ms) that can count
        as a regression: on a millisecond service, 1.8 -> 2.6 ms is "+44 %" of
        timer and scheduler noise, not a slowdown anyone would act on.
    :param busy_machine: downgrade regressions to "inconclusive" when the machine was
        measurably busier than during the baseline (:mod:`.machine`); off only where the
        machine's load is part of what is tested.
    """

    alpha: float = 0.05
    minor: float = 0.10
    major: float = 0.25
    critical: float = 0.50
    error_rate_floor: float = 0.001
    noise_floor: float = 0.03
    metrics: tuple[str, ...] = METRICS
    single_run_noise_floor: float = 0.10
    min_baseline_runs: int = 1
    latency_floor_ms: float = 1.0
    busy_machine: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha={self.alpha!r} must lie strictly between 0 and 1")
        if not 0.0 <= self.minor <= self.major <= self.critical:
            raise ValueError(
                f"tiers must satisfy 0 <= minor <= major <= critical, got "
                f"{self.minor!r}, {self.major!r}, {self.critical!r}"
            )
        if not 0.0 <= self.error_rate_floor < 1.0:
            raise ValueError(f"error_rate_floor={self.error_rate_floor!r} must lie in [0, 1)")
        if not 0.0 <= self.noise_floor < 1.0:
            raise ValueError(f"noise_floor={self.noise_floor!r} must lie in [0, 1)")
        if not 0.0 <= self.single_run_noise_floor < 1.0:
            raise ValueError(f"single_run_noise_floor={self.single_run_noise_floor!r} must lie in [0, 1)")
        if not 0.0 <= self.latency_floor_ms < math.inf:
            raise ValueError(f"latency_floor_ms={self.latency_floor_ms!r} must be a finite number >= 0")
        if self.min_baseline_runs < 1:
            raise ValueError(f"min_baseline_runs={self.min_baseline_runs!r} must be at least 1")
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")


# ini perf_regression_<name> -> RegressionPolicy field: one table for the gate and the baseline CLI.
def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(raw)


_flag.__name__ = "boolean (true or false)"

REGRESSION_INI: Final[dict[str, Callable[[str], Any]]] = {
    "alpha": float,
    "minor": float,
    "major": float,
    "critical": float,
    "error_rate_floor": float,
    "noise_floor": float,
    "single_run_noise_floor": float,
    "min_baseline_runs": int,
    "latency_floor_ms": float,
    "busy_machine": _flag,
}


def policy_from_ini(getini: Callable[[str], str]) -> RegressionPolicy:
    """The policy of a project's ini (``perf_regression_*``; empty = default); ValueError names a bad value."""
    values: dict[str, Any] = {}
    for field_name, kind in REGRESSION_INI.items():
        raw = getini(f"perf_regression_{field_name}")
        if raw:
            try:
                values[field_name] = kind(raw)
            except ValueError:
                raise ValueError(
                    f"ini perf_regression_{field_name}={raw!r} is not valid: "
                    f"expected a {getattr(kind, '__name__', kind)}"
                ) from None
    try:
        return RegressionPolicy(**values)
    except ValueError as exc:
        raise ValueError(f"ini perf_regression_*: {exc}") from None


@dataclass(frozen=True)
class Finding:
    """The comparison of one metric of one endpoint.

    ``baseline`` / ``current`` are in ``unit`` (ms, req/s, or a fraction for the
    error rate); the baseline is the geometric mean over baseline runs (pooled
    for the error rate). ``change`` is ``current / baseline - 1``: positive is
    worse for latency and error rate, negative is worse for throughput. ``ci``
    is the two-sided (1 - 2 alpha) confidence interval of the relative change
    (from the window-level test for latency and throughput: its worse end
    clears 0 exactly when the one-sided test does, before multiplicity
    correction). ``p_value`` is Benjamini-Hochberg adjusted and decides the
    tier, ``p_raw`` is not adjusted. ``mde`` is the smallest worsening this
    comparison detects with 80 % power ("this run can detect >= X %").
    """

    endpoint: str
    metric: str
    tier: Tier
    baseline: float | None
    current: float | None
    change: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    mde: float | None
    note: str = ""
    p_raw: float | None = None
    unit: str = ""
    insufficient: bool = False  # too few samples to detect the minor tier: not judged (tier "none")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict` (results travel between xdist processes as JSON)."""
        tier = data["tier"]
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        ci = data.get("ci")
        return cls(
            endpoint=str(data["endpoint"]),
            metric=str(data["metric"]),
            tier=tier,
            baseline=data.get("baseline"),
            current=data.get("current"),
            change=data.get("change"),
            ci=None if ci is None else (ci[0], ci[1]),
            p_value=data.get("p_value"),
            mde=data.get("mde"),
            note=str(data.get("note", "")),
            p_raw=data.get("p_raw"),
            unit=str(data.get("unit", "")),
            insufficient=bool(data.get("insufficient", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (non-finite numbers become null)."""
        return {
            "endpoint": self.endpoint,
            "metric": self.metric,
            "tier": self.tier,
            "baseline": _json_float(self.baseline),
            "current": _json_float(self.current),
            "change": _json_float(self.change),
            "ci": None if self.ci is None else [_json_float(self.ci[0]), _json_float(self.ci[1])],
            "p_value": _json_float(self.p_value),
            "p_raw": _json_float(self.p_raw),
            "mde": _json_float(self.mde),
            "unit": self.unit,
            "note": self.note,
            "insufficient": self.insufficient,
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`compare`: the worst tier, every finding, and notes for the reader."""

    tier: Tier
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline_runs: int = 0

    @property
    def insufficient(self) -> list[Finding]:
        """Findings whose samples were too small to detect the minor tier: not judged either way."""
        return [f for f in self.findings if f.insufficient]

    @property
    def regressions(self) -> list[Finding]:
        """Findings that are regressions (minor, major or critical), worst first."""
        failing = [f for f in self.findings if f.tier in FAILING_TIERS]
        return sorted(failing, key=lambda f: -tier_rank(f.tier))

    def failed(self, fail_on: str) -> bool:
        """Whether this verdict fails a test run with ``--perf-fail-on=fail_on``.

        "inconclusive" and "negligible" never fail: they are not evidence of a regression.
        """
        if fail_on not in FAIL_ON_CHOICES:
            raise ValueError(f"fail_on={fail_on!r}; choose one of {', '.join(FAIL_ON_CHOICES)}")
        if fail_on == "never" or self.tier not in FAILING_TIERS:
            return False
        return tier_rank(self.tier) >= tier_rank(fail_on)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for reports and the test report under xdist."""
        return {
            "tier": self.tier,
            "baseline_runs": self.baseline_runs,
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict`."""
        tier = data["tier"]
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        return cls(
            tier=tier,
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            notes=[str(n) for n in data.get("notes", [])],
            baseline_runs=int(data.get("baseline_runs", 0)),
        )


def worst_tier(tiers: Iterable[Tier]) -> Tier:
    """The most severe tier of ``tiers`` ("none" for none)."""
    return max(tiers, key=tier_rank, default="none")


# ---- the findings table ------------------------------------------------------------


def _value_cell(value: float | None, unit: str) -> str:
    return f"{value:.4g}{unit}" if value is not None else "-"


def _change_cell(finding: Finding) -> str:
    change = finding.change
    return f"{change * 100:+.1f}%" if change is not None and math.isfinite(change) else "new"


def _ci_cell(finding: Finding) -> str:
    low, high = (math.nan if v is None else v for v in finding.ci) if finding.ci else (math.nan, math.nan)
    return f"[{low * 100:+.0f}%, {high * 100:+.0f}%]" if math.isfinite(low) and math.isfinite(high) else "-"


FINDING_CELLS: Final[dict[str, Callable[[Finding], str]]] = {
    "tier": lambda f: f.tier,
    "endpoint": lambda f: f.endpoint,
    "metric": lambda f: f.metric,
    "baseline": lambda f: _value_cell(f.baseline, f.unit),
    "current": lambda f: _value_cell(f.current, f.unit),
    "change": _change_cell,
    "95% CI": _ci_cell,
    "p": lambda f: f"{f.p_value:.3g}" if f.p_value is not None else "-",
    "detectable": lambda f: f">= {f.mde * 100:.0f}%" if f.mde is not None else "-",
}
"""The columns a findings table can show (header -> cell), worded alike wherever findings are listed."""


def finding_row(finding: Finding, columns: Sequence[str]) -> tuple[str, ...]:
    """The cells of ``finding`` under ``columns`` (keys of :data:`FINDING_CELLS`), for a findings table."""
    return tuple(FINDING_CELLS[column](finding) for column in columns)


# ---- the comparison -------------------------------------------------------------


def compare(baseline: Mapping[str, Any], run: Mapping[str, Any], *, policy: RegressionPolicy | None = None) -> Verdict:
    """Compare ``run`` (a run record) with ``baseline`` (a baseline file's content).

    Raises :class:`BaselineError` when either is not a record of the expected schema.
    """
    policy = policy or RegressionPolicy()
    base = validate_baseline(baseline, "baseline")
    current = validate_run(run, "run record")
    runs: list[dict[str, Any]] = base["runs"]
    if not runs:
        return Verdict("none", [], ["the baseline holds no runs yet; nothing to compare"], 0)

    notes = _sample_size_notes(len(runs), policy)
    # The workload as the baseline recorded it (a slower service does not make the users think more).
    throughput_skipped = _throughput_not_the_services(runs[-1]) if "throughput" in policy.metrics else None
    if throughput_skipped:
        notes.append(f"throughput not compared: {throughput_skipped}")
    pending: list[Pending] = []
    for name, base_series, run_series in streams(runs, current, notes):
        for metric in policy.metrics:
            if metric in LATENCY_KEYS:
                pending.append(compare_latency(name, metric, base_series, run_series, policy))
            elif metric == "throughput":
                # An endpoint's share of the requests is the journey mix's choice, never the service's.
                if name == TOTAL and not throughput_skipped:
                    pending.append(compare_throughput(name, base_series, run_series, policy))
            else:
                pending.append(compare_error_rate(name, base_series, run_series, policy))

    findings = _finalise(pending, policy, len(runs))
    unjudged = [f for f in findings if f.insufficient]
    if unjudged:
        names = ", ".join(f"{f.endpoint} {f.metric}" for f in unjudged[:5]) + (", ..." if len(unjudged) > 5 else "")
        notes.append(f"{len(unjudged)} metric(s) with insufficient data to judge (listed with -v): {names}")
    if len(runs) < policy.min_baseline_runs and any(f.tier in FAILING_TIERS for f in findings):
        notes.append(
            f"{len(runs)} baseline run(s) cannot tell a slowdown from run-to-run noise: regressions are "
            f"reported as inconclusive until the baseline holds {policy.min_baseline_runs} runs"
        )
        findings = [_downgrade(f) for f in findings]
    mismatch = _fingerprint_mismatch(runs, current)
    if mismatch:
        notes.append(mismatch)
        findings = [_downgrade(f) for f in findings]
    busier = busier_than_baseline(runs, current) if policy.busy_machine else ""
    if busier:
        notes.append(
            f"the machine was busier than during the baseline ({busier}): a slowdown measured beside another "
            "load says nothing of the service, so regressions are reported as inconclusive; rerun on a quiet machine"
        )
        findings = [_downgrade(f, "on a machine as quiet as the baseline's") for f in findings]
    shape = _note_profile_change(runs, current, notes)
    if shape and any(f.tier in FAILING_TIERS for f in findings):
        notes.append(
            f"the load shape differs from the baseline's ({', '.join(shape)}): another load is not an A/A "
            "comparison, so regressions are reported as inconclusive; record a baseline with this profile"
        )
        findings = [_downgrade(f, "with the baseline's load profile") for f in findings]
    return Verdict(worst_tier(f.tier for f in findings), findings, notes, len(runs))


# A closed model's users busy less than this share of their time (the rest: think time) send what
# the journeys and the user count make them send; the service's speed barely moves it.
BUSY_SHARE_FOR_THROUGHPUT: Final = 0.5


def _throughput_not_the_services(run: Mapping[str, Any]) -> str:
    """Why the run's total throughput says nothing of the service ("" when it does).

    In the open model it does: arrivals are fixed, so fewer requests mean dropped
    iterations. In a closed model only when the users are busy with requests, not thinking.
    """
    profile = run.get("profile")
    profile = profile if isinstance(profile, Mapping) else {}
    if profile.get("model") == "open":
        return ""
    total = run.get("total", {})
    figures = [profile.get("users"), run.get("duration_s"), total.get("requests"), total.get("mean_ms")]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in figures):
        return "a closed model whose users' busy time is unknown (users, duration, requests or mean missing)"
    users, duration, requests, mean_ms = (float(v) for v in figures)
    busy = requests * mean_ms / 1000.0 / (users * duration)
    if busy >= BUSY_SHARE_FOR_THROUGHPUT:
        return ""
    return (
        f"a closed model whose users wait {1 - busy:.0%} of their time (think time): requests per second "
        "follow the journeys and the user count, not the service"
    )


def _sample_size_notes(k: int, policy: RegressionPolicy) -> list[str]:
    if k == 1:
        return [
            f"only 1 baseline run: run-to-run variation is assumed to be {policy.single_run_noise_floor:.0%}; "
            "record more runs (--perf-save-baseline) for a calibrated verdict"
        ]
    if k == 2:
        return [
            "only 2 baseline runs: run-to-run variation rests on one degree of freedom, so only "
            "large changes can be significant; a third run sharpens the verdict a lot"
        ]
    return []


# ---- tiers ----------------------------------------------------------------------------


def _finalise(pending: list[Pending], policy: RegressionPolicy, baseline_runs: int) -> list[Finding]:
    """Benjamini-Hochberg over all tests of the comparison, then a tier per finding."""
    import numpy as np
    from scipy.stats import false_discovery_control

    tested = [i for i, p in enumerate(pending) if p.p_raw is not None]
    adjusted: dict[int, float] = {}
    if tested:
        raw = np.clip(np.array([pending[i].p_raw for i in tested], dtype=np.float64), 0.0, 1.0)
        adjusted = dict(zip(tested, (float(p) for p in false_discovery_control(raw)), strict=True))
    findings = []
    for index, p in enumerate(pending):
        p_value = adjusted.get(index)
        tier, why, insufficient = _tier(p, p_value, policy, baseline_runs)
        note = "; ".join(n for n in (p.note, why) if n)
        findings.append(
            Finding(
                p.endpoint,
                p.metric,
                tier,
                p.baseline,
                p.current,
                p.change,
                p.ci,
                p_value,
                p.mde,
                note,
                p.p_raw,
                p.unit,
                insufficient,
            )
        )
    return findings


# The baseline runs after which another one sharpens a verdict little (between-run variance on 2 df).
_ENOUGH_BASELINE_RUNS: Final = 3
# Requests a run needs before a metric rests on enough of them: 10 beyond a percentile (p99: 1,000),
# 20 for a centre (p50, mean) or a rate. Fewer, and an underpowered test is "insufficient data"
# rather than "inconclusive": running longer, not recording more baselines, is what decides it.
_TAIL_SAMPLES: Final = 10
_NEEDED_REQUESTS: Final[dict[str, int]] = {
    "p50": 20,
    "p95": round(_TAIL_SAMPLES / 0.05),
    "p99": round(_TAIL_SAMPLES / 0.01),
    "mean": 20,
    "throughput": 20,
}


def _tier(p: Pending, p_value: float | None, policy: RegressionPolicy, baseline_runs: int) -> tuple[Tier, str, bool]:
    """The tier, why, and whether the sample was too small to judge ("insufficient data")."""
    if p.worsening is None or not p.worsening > _EPSILON:
        return "none", "", False
    # Thresholds are "more than": +50.0 % is major, not critical, whatever the rounding of a geometric mean.
    worse = p.worsening - _EPSILON
    significant = p_value is not None and p_value < policy.alpha
    if not significant:
        if not p.above_floor:
            return "none", "", False
        # Window-level tests (latency, throughput) whose detectable effect exceeds the minor tier cannot
        # tell a regression from noise: not a finding. (Error rates have their own absolute floor.)
        few = p.requests is not None and p.requests < _NEEDED_REQUESTS.get(p.metric, 0)
        if few and p.mde is not None and p.mde > policy.minor:
            why = (
                f"insufficient data: {p.requests:,} requests, this comparison detects >= {p.mde:.0%}, "
                f"the minor tier is {policy.minor:.0%}"
            )
            return "none", f"{why}; {_what_would_decide(p, policy, baseline_runs)}", True
        if worse > policy.minor:
            if p.p_raw is None:
                return "inconclusive", "a large change that could not be tested", False
            return "inconclusive", f"large but not significant; {_what_would_decide(p, policy, baseline_runs)}", False
        return "none", "", False
    if not p.above_floor:
        return "negligible", "", False
    if worse <= policy.minor:
        return "negligible", f"significant but not above the {policy.minor:.0%} minor threshold", False
    if worse > policy.critical:
        return "critical", "", False
    if worse > policy.major:
        return "major", "", False
    return "minor", "", False


def _what_would_decide(p: Pending, policy: RegressionPolicy, baseline_runs: int) -> str:
    """ "record 2 more baseline runs" and/or "run longer: ~N more requests on X" (the MDE shrinks as 1/sqrt(n))."""
    advice = []
    if baseline_runs < _ENOUGH_BASELINE_RUNS:
        advice.append(f"record {_ENOUGH_BASELINE_RUNS - baseline_runs} more baseline run(s)")
    if p.requests and p.mde is not None and p.mde > policy.minor > 0:
        more = math.ceil(p.requests * ((p.mde / policy.minor) ** 2 - 1))
        advice.append(f"run longer: ~{more:,} more requests on {p.endpoint}")
    return " or ".join(advice) or "a longer run or more baseline runs would tell"


def _fingerprint_mismatch(runs: list[dict[str, Any]], current: Mapping[str, Any]) -> str:
    env = current.get("environment")
    mine = env.get("fingerprint") if isinstance(env, Mapping) else None
    if mine is None:
        return ""
    theirs = {
        r["environment"]["fingerprint"]
        for r in runs
        if isinstance(r.get("environment"), Mapping) and "fingerprint" in r["environment"]
    }
    if not theirs or theirs == {mine}:
        return ""
    others = ", ".join(sorted(map(str, theirs)))
    return (
        f"environment differs from the baseline (fingerprint {mine} vs {others}): "
        "regressions are reported as inconclusive; record a baseline on this machine to compare"
    )


def _downgrade(finding: Finding, where: str = "on the baseline's machine") -> Finding:
    if finding.tier not in FAILING_TIERS:
        return finding
    note = "; ".join(n for n in (finding.note, f"would be {finding.tier} {where}") if n)
    return replace(finding, tier="inconclusive", note=note)


# Profile keys that change the load itself (a scaled run compresses its ramps: logins pile up).
_LOAD_SHAPE: Final = frozenset(
    {"model", "users", "duration", "ramp_up", "ramp_down", "stages", "start", "rate", "max_users", "think_time",
     "iterations", "workers", "scale"}
)  # fmt: skip


def _note_profile_change(runs: list[dict[str, Any]], current: Mapping[str, Any], notes: list[str]) -> list[str]:
    """Say when the load profile changed since the latest baseline run; return the load-shape keys that did."""
    profile = current.get("profile")
    previous = runs[-1].get("profile")
    if not (isinstance(profile, Mapping) and isinstance(previous, Mapping)) or dict(profile) == dict(previous):
        return []
    # The seed picks which products users view, not how much load there is; keys new in this version
    # of the plugin (absent from the baseline) are not a change of the test.
    changed = sorted(
        str(k) for k in (set(profile) | set(previous)) - {"seed"} if k in previous and profile.get(k) != previous.get(k)
    )
    if changed:
        notes.append(f"load profile differs from the latest baseline run ({', '.join(changed)})")
    return [key for key in changed if key in _LOAD_SHAPE]


def _json_float(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None

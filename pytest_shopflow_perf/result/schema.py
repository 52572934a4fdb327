"""The run record: the contract between engine, regression, baselines, reporters and xdist, in one place.

One copy each of what every layer must agree on: the schema names, the shape of the JSON
record (TypedDicts, so mypy checks producers and readers), the regression tiers and their
order, and the error-rate rule. Importing it loads nothing heavy.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypedDict

__all__ = [
    "BASELINE_SCHEMA",
    "FAILING_TIERS",
    "FAIL_ON_CHOICES",
    "RUN_SCHEMA",
    "SCHEMA_PREFIX",
    "TIERS",
    "CheckRecord",
    "EventRecord",
    "GeneratorRecord",
    "RunRecord",
    "RunSummary",
    "StatsRecord",
    "StatsSummary",
    "TargetRecord",
    "Tier",
    "error_percent",
    "error_rate",
    "tier_rank",
]

SCHEMA_PREFIX: Final = "shopflow-perf"
RUN_SCHEMA: Final = "shopflow-perf/run/1"
BASELINE_SCHEMA: Final = "shopflow-perf/baseline/1"

Tier = Literal["none", "negligible", "inconclusive", "minor", "major", "critical"]
TIERS: Final[tuple[Tier, ...]] = ("none", "negligible", "inconclusive", "minor", "major", "critical")
"""Regression tiers, mildest first: the order every report sorts and colours by."""
FAILING_TIERS: Final[tuple[Tier, ...]] = ("minor", "major", "critical")
FAIL_ON_CHOICES: Final = ("minor", "major", "critical", "never")
_RANK: Final[dict[str, int]] = {tier: index for index, tier in enumerate(TIERS)}


def tier_rank(tier: object) -> int:
    """Position of a tier in :data:`TIERS`; -1 for anything else (a missing verdict)."""
    return _RANK.get(str(tier), -1)


def error_rate(errors: int, requests: int) -> float:
    """Errors per request, capped at 1; errors without any request are a rate of 1.

    Errors are events: failed checks and journey exceptions count too, and have no request of
    their own, so errors can exceed requests (k6's checks vs http_req_failed).
    """
    if not requests:
        return 1.0 if errors else 0.0
    return min(1.0, errors / requests)


def error_percent(errors: int, requests: int) -> float:
    """:func:`error_rate` in percent, as every table shows it."""
    return 100.0 * error_rate(errors, requests)


class _StatsRequired(TypedDict):
    requests: int
    errors: int
    error_rate: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class StatsSummary(_StatsRequired, total=False):
    """The figures of one endpoint or of the whole run, without buckets (``Stats.summary()``)."""

    request_errors: int
    errors_by_kind: dict[str, int]
    failed: dict[str, Any]
    # connect_ms_* / wait_ms_* keys appear when the transport reported any (TypedDict cannot name a prefix)


class StatsRecord(StatsSummary, total=False):
    """:class:`StatsSummary` plus what a later comparison needs: HDR buckets and the 1-second windows."""

    hdr: str
    windows: dict[str, Any]
    uncorrected: dict[str, Any]


class GeneratorRecord(TypedDict, total=False):
    """How the generator coped (``GeneratorStats.to_dict()``): a saturated run is never judged."""

    loop_lag_p50_ms: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    cpu_percent: float
    cpu_max_percent: float
    peak_users: int
    users_target: int
    users_started: int
    users_failed_to_start: int
    iterations: int
    late_iterations: int
    dropped_iterations: int
    max_lateness_ms: float
    clamped_values: int
    saturated: bool
    reasons: list[str]
    client: str
    transport: str
    event_loop: str


class ShardRecordDict(TypedDict, total=False):
    """One shard of a run with workers or a cluster (``result.shards``)."""

    worker: str
    users: int
    requests: int
    errors: int
    generator: GeneratorRecord
    lost: bool
    lost_at_s: float | None
    note: str


class CheckRecord(TypedDict):
    passes: int
    fails: int


class EventRecord(TypedDict, total=False):
    """Errors that have no request of their own (failed checks, journey exceptions), by row name."""

    errors: int
    errors_by_kind: dict[str, int]


class TargetRecord(TypedDict):
    """What a run targeted (``LoadResult.target``): the URL, where it came from and the line reports print.

    ``source``: ``embedded`` (no target given: the reference service), ``option`` (``--perf-base-url``,
    ``SHOPFLOW_BASE_URL``, ini ``perf_base_url``), ``marker`` (``base_url=`` of the marker or ``load.run``),
    ``app`` (an in-process ASGI app). Run records written before it hold the URL as a plain string.
    """

    url: str
    source: str
    label: str


class _RunRequired(TypedDict):
    schema: str
    total: StatsRecord


class RunRecord(_RunRequired, total=False):
    """One run as JSON (``LoadResult.to_dict()``): the per-run report file and the baseline entry."""

    test: str
    started_at: str
    duration_s: float
    window_s: float
    model: str
    target: TargetRecord
    interrupted: bool
    profile: dict[str, Any]
    environment: dict[str, Any]
    generator: GeneratorRecord
    checks: dict[str, CheckRecord]
    endpoints: dict[str, StatsRecord]
    events: dict[str, EventRecord]
    extra: dict[str, Any]
    git_commit: str | None
    shards: list[ShardRecordDict]
    resources: dict[str, Any]  # Resources.to_dict(): source, notes, figures, samples


class RunSummary(TypedDict, total=False):
    """What travels on every test report (xdist) and feeds the terminal table, summary and HTML."""

    test: str
    name: str | None
    model: str
    profile: dict[str, Any]
    duration_s: float
    interrupted: bool
    target: TargetRecord
    total: StatsSummary
    endpoints: dict[str, StatsSummary]
    events: dict[str, EventRecord]
    checks: dict[str, CheckRecord]
    generator: GeneratorRecord
    extra: dict[str, Any]
    outcome: str
    shards: list[ShardRecordDict]
    resources: dict[str, Any]  # Resources.summary_dict(): the figures without the samples

"""The outcome of a load run as plain data: what assertions, regression and reports read.

Latency figures are seconds as floats (``result.percentile(95)``); the JSON
record (``to_dict``) uses milliseconds with ``_ms`` names, the baseline schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

from pytest_shopflow_perf.metrics.hdr import (
    counts_mean_us,
    counts_percentiles,
    decode_histogram,
    encode_histogram,
    mean_us,
    merge_snapshots,
    new_histogram,
    percentiles,
)
from pytest_shopflow_perf.metrics.recorder import WINDOW_S, WindowSeries
from pytest_shopflow_perf.result.resources import Resources
from pytest_shopflow_perf.result.schema import (
    RUN_SCHEMA,
    CheckRecord,
    EventRecord,
    GeneratorRecord,
    RunRecord,
    RunSummary,
    ShardRecordDict,
    StatsRecord,
    StatsSummary,
    error_rate,
)
from pytest_shopflow_perf.result.target import RunTarget

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


@dataclass(frozen=True)
class TimelineWindow:
    """One 1-second window of the run. Latencies in seconds."""

    t: float
    count: int
    errors: int
    p50: float
    p95: float
    p99: float
    mean: float
    max: float

    @property
    def error_rate(self) -> float:
        return error_rate(self.errors, self.count)


@dataclass(frozen=True)
class GeneratorStats:
    """How the load generator itself coped: a saturated generator distorts latency."""

    loop_lag_p50_ms: float = 0.0
    loop_lag_p99_ms: float = 0.0
    loop_lag_max_ms: float = 0.0
    cpu_percent: float = 0.0
    cpu_max_percent: float = 0.0
    peak_users: int = 0
    users_target: int = 0  # closed model: peak users the profile planned
    users_started: int = 0
    users_failed_to_start: int = 0  # their on_start failed: they never iterated and were not replaced
    iterations: int = 0
    late_iterations: int = 0
    dropped_iterations: int = 0
    max_lateness_ms: float = 0.0
    clamped_values: int = 0
    saturated: bool = False
    reasons: tuple[str, ...] = ()
    client: str = ""  # "httpx" or "fast": what user.client was
    transport: str = ""  # under the httpx client: "fast", "httpcore" or "custom" (a transport_factory)
    event_loop: str = ""  # "uvloop" or "asyncio"

    def to_dict(self) -> GeneratorRecord:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return cast("GeneratorRecord", data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorStats:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["reasons"] = tuple(known.get("reasons", ()))
        return cls(**known)


@dataclass(frozen=True)
class ShardRecord:
    """One shard of a run with workers (``"local:0"``) or on a cluster (the Dask worker's address)."""

    worker: str
    users: int  # peak
    requests: int
    errors: int
    generator: GeneratorStats
    lost: bool = False
    note: str = ""
    lost_at_s: float | None = None  # seconds from the start when the shard was lost

    def to_dict(self) -> ShardRecordDict:
        return {
            "worker": self.worker,
            "users": self.users,
            "requests": self.requests,
            "errors": self.errors,
            "generator": self.generator.to_dict(),
            "lost": self.lost,
            "lost_at_s": self.lost_at_s,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardRecord:
        lost_at = data.get("lost_at_s")
        return cls(
            worker=str(data["worker"]),
            users=int(data.get("users", 0)),
            requests=int(data.get("requests", 0)),
            errors=int(data.get("errors", 0)),
            generator=GeneratorStats.from_dict(data.get("generator", {})),
            lost=bool(data.get("lost", False)),
            note=str(data.get("note", "")),
            lost_at_s=None if lost_at is None else float(lost_at),
        )


@dataclass(frozen=True)
class Span:
    """Requests completed in a span of 1-second windows (a stage, the worst 10 s), exact percentiles."""

    start: float
    end: float
    requests: int
    errors: int
    counts: Any  # merged HDR buckets of the span's windows

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def error_rate(self) -> float:
        return error_rate(self.errors, self.requests)

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    def percentile(self, q: float) -> float:
        return counts_percentiles(self.counts, [q])[q] / 1_000_000 if self.counts is not None else 0.0

    @property
    def mean(self) -> float:
        return counts_mean_us(self.counts) / 1_000_000 if self.counts is not None else 0.0

    @property
    def max(self) -> float:
        return self.percentile(100)

    @property
    def min(self) -> float:
        return self.percentile(0)


class Stats:
    """Request statistics of one endpoint, or of the whole run."""

    def __init__(
        self,
        *,
        name: str,
        requests: int,
        errors: int,
        errors_by_kind: Mapping[str, int],
        histogram: HdrHistogram,
        series: WindowSeries,
        duration: float,
        uncorrected: HdrHistogram | None = None,
        failed: HdrHistogram | None = None,
        request_errors: int | None = None,
        setup: Mapping[str, float] | None = None,
    ) -> None:
        self.name = name
        # connect_ms_* / wait_ms_* figures (mean, p95, max) when the transport reported any
        self.setup: dict[str, float] = dict(setup or {})
        self.requests = requests
        self.errors = errors
        # Failed requests only (HTTP errors, transport errors); ``errors`` also counts failed checks and
        # journey exceptions, which have no request of their own (k6: http_req_failed vs checks).
        self.request_errors = min(errors, requests) if request_errors is None else request_errors
        self.errors_by_kind: dict[str, int] = dict(sorted(errors_by_kind.items(), key=lambda kv: -kv[1]))
        self.histogram = histogram
        self.uncorrected_histogram = uncorrected
        self.failed_histogram = failed
        self.series = series
        self.duration = duration

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} requests={self.requests} errors={self.errors} "
            f"p95={self.percentile(95) * 1000:.1f}ms>"
        )

    @property
    def error_rate(self) -> float:
        """Errors per request; errors are events (failed checks count too), capped at 1."""
        return error_rate(self.errors, self.requests)

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def successes(self) -> int:
        """Requests that succeeded: the ones every latency figure describes."""
        return int(self.histogram.get_total_count())

    def percentile(self, q: float) -> float:
        """Latency of successful requests at percentile ``q`` (0-100) in seconds, from the full HDR histogram."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile q={q!r} must lie between 0 and 100")
        return percentiles(self.histogram, [q])[q] / 1_000_000

    @property
    def mean(self) -> float:
        return mean_us(self.histogram) / 1_000_000

    @property
    def max(self) -> float:
        if not self.histogram.get_total_count():
            return 0.0
        return float(self.histogram.get_max_value()) / 1_000_000

    @property
    def min(self) -> float:
        if not self.histogram.get_total_count():
            return 0.0
        return float(self.histogram.get_min_value()) / 1_000_000

    @property
    def timeline(self) -> list[TimelineWindow]:
        s = self.series
        return [
            TimelineWindow(
                t=s.t_s[i],
                count=s.count[i],
                errors=s.errors[i],
                p50=s.p50_ms[i] / 1000,
                p95=s.p95_ms[i] / 1000,
                p99=s.p99_ms[i] / 1000,
                mean=s.mean_ms[i] / 1000,
                max=s.max_ms[i] / 1000,
            )
            for i in range(len(s.t_s))
        ]

    def span(self, start: float, end: float) -> Span:
        """The windows whose start lies in [start, end) seconds from the start of the run."""
        s = self.series
        chosen = [i for i in range(len(s.t_s)) if start <= s.t_s[i] < end]
        if any(s.count[i] for i in chosen) and len(s.snapshots) != len(s.t_s):
            raise ValueError("percentiles over a span need the live result of a run (JSON records keep no buckets)")
        snapshots = s.span_snapshots(start, end)
        return Span(
            start=start,
            end=min(end, max(self.duration, start + WINDOW_S)),
            requests=sum(s.count[i] for i in chosen),
            errors=sum(s.errors[i] for i in chosen),
            counts=merge_snapshots(snapshots) if snapshots else None,
        )

    def spans(self, width: float, start: float = 0.0, end: float = float("inf")) -> list[Span]:
        """Every span of ``width`` seconds (sliding by one window) within [start, end)."""
        end = min(end, self.duration)
        windows = max(1, round(width / WINDOW_S))
        first, last = int(start // WINDOW_S), max(int(start // WINDOW_S) + 1, int(-(-end // WINDOW_S)))
        starts = range(first, max(first + 1, last - windows + 1))
        return [self.span(k * WINDOW_S, min(end, (k + windows) * WINDOW_S)) for k in starts]

    @property
    def corrected(self) -> Stats:
        """Latency from the intended start (open model); the main figures already are these."""
        return self

    @property
    def uncorrected(self) -> Stats:
        """Latency from the actual send time; equal to the main figures in closed model."""
        if self.uncorrected_histogram is None:
            return self
        return Stats(
            name=self.name,
            requests=self.requests,
            errors=self.errors,
            errors_by_kind=self.errors_by_kind,
            histogram=self.uncorrected_histogram,
            series=self.series,
            duration=self.duration,
            request_errors=self.request_errors,
        )

    @property
    def failed(self) -> Stats:
        """Latency of the failed requests (how long a failure took), apart from the main figures."""
        return Stats(
            name=f"{self.name} (failed)",
            requests=self.request_errors,
            errors=self.request_errors,
            errors_by_kind={},
            histogram=self.failed_histogram if self.failed_histogram is not None else new_histogram(),
            series=WindowSeries(),
            duration=self.duration,
        )

    def summary(self) -> StatsSummary:
        """The STATS figures of the run schema, without windows and histogram."""
        values = percentiles(self.histogram, list(SUMMARY_PERCENTILES))
        data = self._summary(values)
        if self.failed_histogram is not None and self.failed_histogram.get_total_count():
            failed = percentiles(self.failed_histogram, list(SUMMARY_PERCENTILES))
            data["failed"] = {
                "requests": int(self.failed_histogram.get_total_count()),
                "mean_ms": round(mean_us(self.failed_histogram) / 1000, 3),
                **{f"p{q:g}_ms": failed[q] / 1000 for q in SUMMARY_PERCENTILES},
                "max_ms": round(self.failed_histogram.get_max_value() / 1000, 3),
            }
        return cast("StatsSummary", data)

    def _summary(self, values: Mapping[float, int]) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "request_errors": self.request_errors,
            "error_rate": round(self.error_rate, 6),
            "rps": round(self.rps, 3),
            "mean_ms": round(self.mean * 1000, 3),
            "p50_ms": values[50.0] / 1000,
            "p90_ms": values[90.0] / 1000,
            "p95_ms": values[95.0] / 1000,
            "p99_ms": values[99.0] / 1000,
            "max_ms": round(self.max * 1000, 3),
            **self.setup,
            "errors_by_kind": dict(self.errors_by_kind),
        }

    def to_dict(self) -> StatsRecord:
        data = cast("dict[str, Any]", self.summary())
        data["hdr"] = encode_histogram(self.histogram)
        data["windows"] = self.series.to_dict()
        if "failed" in data and self.failed_histogram is not None:
            data["failed"]["hdr"] = encode_histogram(self.failed_histogram)
        if self.uncorrected_histogram is not None:
            raw = self.uncorrected
            raw_summary = raw.summary()
            data["uncorrected"] = {
                key: raw_summary[key] for key in ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
            }
            data["uncorrected"]["hdr"] = encode_histogram(self.uncorrected_histogram)
        return cast("StatsRecord", data)

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any], duration: float) -> Stats:
        histogram = decode_histogram(data["hdr"]) if data.get("hdr") else new_histogram()
        raw = data.get("uncorrected")
        failed = data.get("failed")
        request_errors = data.get("request_errors")
        return cls(
            name=name,
            requests=int(data["requests"]),
            errors=int(data["errors"]),
            errors_by_kind=data.get("errors_by_kind", {}),
            histogram=histogram,
            series=WindowSeries.from_dict(data.get("windows", {})),
            duration=duration,
            uncorrected=decode_histogram(raw["hdr"]) if raw and raw.get("hdr") else None,
            failed=decode_histogram(failed["hdr"]) if failed and failed.get("hdr") else None,
            request_errors=None if request_errors is None else int(request_errors),
            setup={k: float(v) for k, v in data.items() if k.startswith(("connect_ms_", "wait_ms_"))},
        )


class EndpointMap(Mapping[str, Stats]):
    """``result.endpoints[name]``, with an error that lists the names that exist."""

    def __init__(self, endpoints: Mapping[str, Stats]) -> None:
        self._endpoints = dict(endpoints)

    def __getitem__(self, name: str) -> Stats:
        try:
            return self._endpoints[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self._endpoints) or "none"
            raise KeyError(f"no endpoint {name!r} in this run; endpoints: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._endpoints)

    def __len__(self) -> int:
        return len(self._endpoints)


@dataclass
class CheckCount:
    passes: int = 0
    fails: int = 0


class LoadResult(Stats):
    """What one ``load.run`` measured: totals, per-endpoint figures, timeline, generator health."""

    def __init__(
        self,
        *,
        total: Stats,
        endpoints: Mapping[str, Stats],
        profile: Mapping[str, Any],
        started_at: str,
        generator: GeneratorStats,
        checks: Mapping[str, CheckCount] | None = None,
        environment: Mapping[str, Any] | None = None,
        interrupted: bool = False,
        target: RunTarget | Mapping[str, Any] | str = "",
        test: str = "",
        extra: Mapping[str, Any] | None = None,
        events: Mapping[str, Mapping[str, Any]] | None = None,
        shards: Sequence[ShardRecord] = (),
        resources: Resources | None = None,
    ) -> None:
        super().__init__(
            name="total",
            requests=total.requests,
            errors=total.errors,
            errors_by_kind=total.errors_by_kind,
            histogram=total.histogram,
            series=total.series,
            duration=total.duration,
            uncorrected=total.uncorrected_histogram,
            failed=total.failed_histogram,
            request_errors=total.request_errors,
            setup=total.setup,
        )
        self.endpoints = EndpointMap(endpoints)
        # Failed checks and journey exceptions by row ("check: cart has items", "journey browse"):
        # {"errors": n, "errors_by_kind": {...}}; counted in the total, never on an HTTP endpoint.
        self.events: dict[str, dict[str, Any]] = {
            name: {"errors": int(row["errors"]), "errors_by_kind": dict(row.get("errors_by_kind", {}))}
            for name, row in (events or {}).items()
        }
        self.profile = dict(profile)
        self.started_at = started_at
        self.generator = generator
        self.checks: dict[str, CheckCount] = dict(checks or {})
        self.environment = dict(environment or {})
        self.interrupted = interrupted
        self.target: RunTarget = RunTarget.from_value(target)  # the plugin names the source once the run is done
        self.test = test
        self.extra: dict[str, Any] = dict(extra or {})
        # One record per shard of a run with workers or on a cluster; empty for one process.
        self.shards: list[ShardRecord] = list(shards)
        # The target's CPU/RSS/gauges over the run; None when nothing was sampled.
        self.resources: Resources | None = resources

    @property
    def lost_shards(self) -> list[ShardRecord]:
        """Shards that died during the run: the load offered was not the profile's."""
        return [shard for shard in self.shards if shard.lost]

    @property
    def dropped_iterations(self) -> int:
        return self.generator.dropped_iterations

    @property
    def late_iterations(self) -> int:
        return self.generator.late_iterations

    @property
    def iterations(self) -> int:
        return self.generator.iterations

    @property
    def model(self) -> str:
        return str(self.profile.get("model", "closed"))

    def to_dict(self) -> RunRecord:  # type: ignore[override]  # the result is its total (see Stats)
        """JSON-safe run record (schema ``shopflow-perf/run/1``): also the baseline entry."""
        return {
            "schema": RUN_SCHEMA,
            "test": self.test,
            "started_at": self.started_at,
            "duration_s": round(self.duration, 3),
            "window_s": WINDOW_S,
            "model": self.model,
            "target": self.target.to_dict(),
            "interrupted": self.interrupted,
            "profile": dict(self.profile),
            "environment": dict(self.environment),
            "generator": self.generator.to_dict(),
            "checks": {name: CheckRecord(passes=c.passes, fails=c.fails) for name, c in self.checks.items()},
            "total": Stats.to_dict(self),
            "endpoints": {name: stats.to_dict() for name, stats in self.endpoints.items()},
            "events": {name: cast("EventRecord", dict(row)) for name, row in self.events.items()},
            **({"extra": self.extra} if self.extra else {}),  # type: ignore[typeddict-item]
            **({"shards": [shard.to_dict() for shard in self.shards]} if self.shards else {}),  # type: ignore[typeddict-item]
            **({"resources": self.resources.to_dict()} if self.resources else {}),  # type: ignore[typeddict-item]
        }

    def summary_dict(self) -> RunSummary:
        """Small enough to travel on every test report (xdist) and feed the terminal table."""
        return {
            "test": self.test,
            "name": self.profile.get("name"),
            "model": self.model,
            "profile": dict(self.profile),
            "duration_s": round(self.duration, 3),
            "interrupted": self.interrupted,
            "target": self.target.to_dict(),
            "total": Stats.summary(self),
            "endpoints": {name: stats.summary() for name, stats in self.endpoints.items()},
            "events": {name: cast("EventRecord", dict(row)) for name, row in self.events.items()},
            "checks": {name: CheckRecord(passes=c.passes, fails=c.fails) for name, c in self.checks.items()},
            "generator": self.generator.to_dict(),
            "extra": dict(self.extra),
            **({"shards": [shard.to_dict() for shard in self.shards]} if self.shards else {}),
            **({"resources": self.resources.summary_dict()} if self.resources else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], duration: float | None = None) -> LoadResult:  # type: ignore[override]
        """Rebuild a result from its record (reports, baselines, results from xdist workers)."""
        if data.get("schema") != RUN_SCHEMA:
            raise ValueError(f"not a run record of schema {RUN_SCHEMA!r}: schema={data.get('schema')!r}")
        run_duration = float(data["duration_s"]) if duration is None else duration
        return cls(
            total=Stats.from_dict("total", data["total"], run_duration),
            endpoints={
                name: Stats.from_dict(name, stats, run_duration) for name, stats in data.get("endpoints", {}).items()
            },
            profile=data.get("profile", {}),
            started_at=str(data.get("started_at", "")),
            generator=GeneratorStats.from_dict(data.get("generator", {})),
            checks={name: CheckCount(**count) for name, count in data.get("checks", {}).items()},
            environment=data.get("environment", {}),
            interrupted=bool(data.get("interrupted", False)),
            target=RunTarget.from_value(data.get("target")),  # a dict, or the URL string of older records
            test=str(data.get("test", "")),
            extra=data.get("extra", {}),
            events=data.get("events", {}),
            shards=[ShardRecord.from_dict(shard) for shard in data.get("shards", [])],
            resources=Resources.from_dict(data.get("resources")),
        )

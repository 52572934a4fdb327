"""What the target used while it was under load: CPU, memory, threads, connections, scraped gauges.

Plain data, filled by the resource sampler (``metrics/resources.py``) and read by the SLO
metrics ``target_cpu``/``target_rss``/``gauge(NAME)``, ``assert_no_drift(metric="target_rss")``
and the reports. CPU is in percent of one core (200 % = two cores busy), memory in MB (10**6
bytes, as ``target_rss<512MB`` reads).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ResourceSample", "Resources"]

ResourceSample = dict[str, Any]
"""One sample: ``t_s`` (seconds from the run's start), ``cpu_percent``, ``rss_mb``, and when known
``threads``, ``connections``, ``gauges`` ({name: value}) and ``rates`` ({counter name: per second})."""

_MIN_GROWTH_SPAN_S = 1.0  # a growth rate over less than a second of samples is noise


@dataclass(frozen=True)
class Resources:
    """The target's resources over the run; ``result.resources`` is None when nothing was sampled."""

    samples: tuple[ResourceSample, ...]
    source: str = ""  # "pid 1234 (embedded ShopFlow service)", "http://127.0.0.1:9000/metrics"
    notes: tuple[str, ...] = field(default=())  # what could not be read ("connections: access denied")

    @property
    def cpu_percent_mean(self) -> float:
        return _mean([s.get("cpu_percent") for s in self.samples])

    @property
    def cpu_percent_max(self) -> float:
        return _max([s.get("cpu_percent") for s in self.samples])

    @property
    def rss_mb_max(self) -> float:
        return _max([s.get("rss_mb") for s in self.samples])

    @property
    def rss_mb_growth_per_h(self) -> float:
        """Least-squares slope of RSS over time, in MB per hour (0 with fewer than two samples)."""
        points = [(float(s["t_s"]), float(s["rss_mb"])) for s in self.samples if _known(s.get("rss_mb"))]
        if len(points) < 2 or points[-1][0] - points[0][0] < _MIN_GROWTH_SPAN_S:
            return 0.0
        mean_t = sum(t for t, _ in points) / len(points)
        mean_v = sum(v for _, v in points) / len(points)
        spread = sum((t - mean_t) ** 2 for t, _ in points)
        if spread == 0:
            return 0.0
        slope_per_s = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
        return slope_per_s * 3600.0

    def has(self, key: str) -> bool:
        """Whether any sample measured ``key`` (``cpu_percent``, ``rss_mb``): the mean of nothing is no 0."""
        return any(_known(s.get(key)) for s in self.samples)

    def gauge_names(self) -> list[str]:
        names: set[str] = set()
        for sample in self.samples:
            names.update(sample.get("gauges", {}))
        return sorted(names)

    def gauge_max(self, name: str) -> float | None:
        """Highest value of a scraped gauge; None when no sample had it."""
        values = [s["gauges"][name] for s in self.samples if name in s.get("gauges", {})]
        return _max(values) if values else None

    def between(self, start: float, end: float) -> Resources:
        """The samples taken in ``[start, end)`` seconds from the run's start (a stage, a worst window)."""
        return Resources(
            samples=tuple(s for s in self.samples if start <= float(s["t_s"]) < end),
            source=self.source,
            notes=self.notes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "notes": list(self.notes),
            "cpu_percent_mean": round(self.cpu_percent_mean, 2),
            "cpu_percent_max": round(self.cpu_percent_max, 2),
            "rss_mb_max": round(self.rss_mb_max, 3),
            "rss_mb_growth_per_h": round(self.rss_mb_growth_per_h, 3),
            "samples": [dict(sample) for sample in self.samples],
        }

    def summary_dict(self) -> dict[str, Any]:
        """The figures without the samples: small enough for every test report (xdist)."""
        data = self.to_dict()
        del data["samples"]
        data["samples_count"] = len(self.samples)
        data["gauges_max"] = {name: self.gauge_max(name) for name in self.gauge_names()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Resources | None:
        if not data or not data.get("samples"):
            return None
        return cls(
            samples=tuple(dict(sample) for sample in data["samples"]),
            source=str(data.get("source", "")),
            notes=tuple(str(note) for note in data.get("notes", ())),
        )


def _known(value: object) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def _mean(values: Sequence[object]) -> float:
    known = [float(v) for v in values if _known(v)]  # type: ignore[arg-type]
    return sum(known) / len(known) if known else 0.0


def _max(values: Sequence[object]) -> float:
    known = [float(v) for v in values if _known(v)]  # type: ignore[arg-type]
    return max(known) if known else 0.0

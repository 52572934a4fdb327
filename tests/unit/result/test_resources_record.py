"""Resources as plain data: the figures the SLOs and reports read, and the round trip through JSON."""

from __future__ import annotations

import json

import pytest

from pytest_shopflow_perf import Resources


def _samples(rss_per_s: float, seconds: int = 11) -> tuple[dict[str, object], ...]:
    return tuple(
        {"t_s": float(t), "cpu_percent": 10.0 + t, "rss_mb": 100.0 + rss_per_s * t, "gauges": {"db_in_use": t % 4}}
        for t in range(seconds)
    )


def test_figures_come_from_the_samples() -> None:
    resources = Resources(samples=_samples(rss_per_s=0.5), source="pid 1")
    assert resources.cpu_percent_mean == pytest.approx(15.0)
    assert resources.cpu_percent_max == pytest.approx(20.0)
    assert resources.rss_mb_max == pytest.approx(105.0)
    assert resources.rss_mb_growth_per_h == pytest.approx(0.5 * 3600)
    assert resources.gauge_max("db_in_use") == 3
    assert resources.gauge_max("absent") is None


def test_flat_memory_has_no_growth_and_one_sample_none() -> None:
    assert Resources(samples=_samples(rss_per_s=0.0)).rss_mb_growth_per_h == 0.0
    assert Resources(samples=_samples(rss_per_s=5.0, seconds=1)).rss_mb_growth_per_h == 0.0


def test_round_trip_through_json_keeps_every_sample() -> None:
    resources = Resources(samples=_samples(rss_per_s=0.25), source="http://127.0.0.1:1/metrics", notes=("x",))
    again = Resources.from_dict(json.loads(json.dumps(resources.to_dict())))
    assert again == resources
    assert Resources.from_dict(None) is None
    assert Resources.from_dict({"samples": []}) is None
    summary = resources.summary_dict()
    assert "samples" not in summary
    assert summary["samples_count"] == 11
    assert summary["gauges_max"] == {"db_in_use": 3}


def test_between_keeps_the_samples_of_a_span() -> None:
    span = Resources(samples=_samples(rss_per_s=1.0)).between(2.0, 5.0)
    assert [s["t_s"] for s in span.samples] == [2.0, 3.0, 4.0]

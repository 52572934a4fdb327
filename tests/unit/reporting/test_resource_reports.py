"""The target's resources in summary.md, the CSV and the recommendations, from run records alone."""

from __future__ import annotations

from pytest_shopflow_perf.reporting.resources import csv_rows, findings, markdown_lines, terminal_line
from pytest_shopflow_perf.reporting.summary import _table


def run_record(cpu_max=40.0, growth=0.0, in_use=1.0, size=4.0, duration=30.0, notes=()):
    return {
        "name": "peak",
        "duration_s": duration,
        "generator": {"peak_users": 200},
        "resources": {
            "source": "pid 812",
            "notes": list(notes),
            "cpu_percent_mean": cpu_max / 2,
            "cpu_percent_max": cpu_max,
            "rss_mb_max": 120.25,
            "rss_mb_growth_per_h": growth,
            "samples_count": 30,
            "gauges_max": {"shopflow_db_connections_in_use": in_use, "shopflow_db_pool_size": size},
        },
    }


def test_a_quiet_target_gives_no_recommendation() -> None:
    assert findings(run_record()) == []
    assert findings({"name": "no resources"}) == []


def test_cpu_at_the_ceiling_says_cpu_bound_with_the_users() -> None:
    (found,) = findings(run_record(cpu_max=94.0))
    assert found["title"] == "The service is CPU-bound: profile it"
    assert found["fragment"] == "94 % of one core at 200 users (mean 47 %)"
    assert "py-spy" in found["advice"]


def test_memory_growth_is_a_leak_only_over_a_long_enough_run() -> None:
    assert findings(run_record(growth=400.0, duration=20.0)) == []
    (found,) = findings(run_record(growth=400.0, duration=600.0))
    assert found["title"].startswith("The service's memory grows")
    assert "400 MB/h over 600 s" in found["fragment"]


def test_a_pool_near_exhaustion_is_found_from_its_gauges() -> None:
    (found,) = findings(run_record(in_use=4.0, size=4.0))
    assert found["subject"] == "shopflow_db connections in use reached"
    assert found["fragment"] == "4 of 4 (100 %) at 200 users"


def test_the_terminal_line_and_the_markdown_row() -> None:
    line = terminal_line(run_record(notes=["connections: access denied (not counted)"]))
    assert line == (
        "  target resources (pid 812, 30 samples): CPU mean 20 %, max 40 % of one core; RSS max 120.2 MB "
        "(growth not judged under 60 s); DB pool max 1 of 4 in use; not read: connections: access denied (not counted)"
    )
    assert "RSS max 120.2 MB (+12.5 MB/h)" in str(terminal_line(run_record(growth=12.5, duration=600.0)))
    lines = markdown_lines([run_record(), {"name": "unsampled"}], _table)
    assert lines[1] == "## Target resources"
    assert lines[-1] == "| peak | pid 812 | 20 % | 40 % | 120.2 MB | growth not judged under 60 s | 1 / 4 | - |"
    assert markdown_lines([{"name": "unsampled"}], _table) == []


def test_csv_has_a_column_per_gauge_and_rate_any_sample_had() -> None:
    rows = csv_rows(
        {
            "samples": [
                {"t_s": 1.0, "cpu_percent": None, "rss_mb": 50.0, "gauges": {"a": 1.0}},
                {"t_s": 2.0, "cpu_percent": 12.5, "rss_mb": 51.0, "threads": 4, "rates": {"hits_total": 3.0}},
            ]
        }
    )
    assert rows == [
        ["t_s", "cpu_percent", "rss_mb", "threads", "connections", "a", "rate hits_total"],
        [1.0, "", 50.0, "", "", 1.0, ""],
        [2.0, 12.5, 51.0, 4, "", "", 3.0],
    ]


def test_a_finding_is_a_ranked_recommendation_of_summary_md() -> None:
    from pytest_shopflow_perf.reporting.recommendations import recommendations

    record = run_record(cpu_max=95.0)
    record.update(
        total={"requests": 10, "errors": 0, "rps": 5.0},
        endpoints={},
        events={},
        regression={"findings": []},
        slo={"passed": 0, "failed": []},
        shards=[],
    )
    (found,) = recommendations([record])
    assert found["title"] == "The service is CPU-bound: profile it"
    assert found["detail"].startswith("the target's CPU reached 95 % of one core at 200 users (mean 48 %) in peak: ")
    assert found["scenarios"] == ["peak"]

"""A capacity search in the terminal, summary.md, the recommendations and the HTML chart, from its record alone."""

from __future__ import annotations

from typing import Any

from pytest_shopflow_perf.reporting.capacity import findings, level_text, markdown_lines, terminal_line
from pytest_shopflow_perf.reporting.summary import _table, build_summary, render_markdown

BREACH = "p(95)<60ms: measured 212.0 ms against < 60.0 ms (margin +253.3 %)"


def step(level: float, passed: bool = True, **more: Any) -> dict[str, Any]:
    record = {"level": level, "passed": passed, "saturated": False, "aborted": False, "duration_s": 10.0,
              "rps": level * 0.98, "p50_ms": 12.0, "p95_ms": 30.0, "p99_ms": 45.5, "error_rate": 0.0,
              "breaches": [], "test": "test_shop.py::test_capacity@peak"}  # fmt: skip
    record.update(more)
    return record


BROKEN = step(400.0, False, aborted=True, duration_s=2.1, p95_ms=212.0, p99_ms=300.5, breaches=[BREACH])


def capacity(limit: str = "service", best: float | None = 340.0, **more: Any) -> dict[str, Any]:
    steps = [step(50.0), step(100.0), step(200.0), BROKEN, step(300.0), step(340.0)]
    record = {"model": "rate", "unit": "arrivals/s", "slo": ["p(95)<60ms", "error_rate<1%"],
              "max_sustainable": best, "limit": limit, "breaking": BROKEN if limit == "service" else None,
              "steps": steps, "regression": None}  # fmt: skip
    record.update(more)
    return record


def generator_limited() -> dict[str, Any]:
    steps = [step(170.0), step(340.0), step(680.0, False, saturated=True, rps=510.0)]
    return capacity("generator", steps=steps)


def regression(tier: str | None, change: float | None = -0.32, baseline: float | None = 500.0, note: str = ""):
    return {"tier": tier, "change": change, "baseline_max_sustainable": baseline, "baseline_runs": 3, "note": note}


def run_of(record: dict[str, Any] | None, name: str = "peak") -> dict[str, Any]:
    return {"name": name, "extra": {"capacity": record} if record is not None else {}}


# ---- terminal -------------------------------------------------------------------------------


def test_a_service_limit_says_the_sustainable_level_the_slos_and_what_broke_the_next() -> None:
    assert terminal_line(run_of(capacity())) == (
        "  capacity: max sustainable 340 arrivals/s at p(95)<60ms, error_rate<1%; breaks at 400: "
        f"{BREACH}; aborted after 2.1 s"
    )


def test_a_generator_limit_claims_only_a_lower_bound() -> None:
    assert terminal_line(run_of(generator_limited())) == (
        "  capacity: at least 340 arrivals/s: the generator saturated at 680 before the service broke (add workers)"
    )


def test_a_passed_max_and_a_first_level_that_breaks() -> None:
    assert terminal_line(run_of(capacity("max", 1000.0))) == "  capacity: sustains the max, 1,000 arrivals/s"
    first = step(50.0, False, breaches=[BREACH])
    assert terminal_line(run_of(capacity(best=None, breaking=first, steps=[first]))) == (
        f"  capacity: below 50 arrivals/s: the first level already breaks: {BREACH}"
    )


def test_the_users_model_speaks_in_users() -> None:
    record = capacity("max", 64.0, model="users", unit="users")
    assert terminal_line(run_of(record)) == "  capacity: sustains the max, 64 users"


def test_the_regression_follows_the_finding() -> None:
    line = terminal_line(run_of(capacity(regression=regression("major"))))
    assert line is not None
    assert line.endswith("; aborted after 2.1 s; vs baseline 500: -32 % (major)")
    note = "no baseline (record one with --perf-save-baseline)"
    line = terminal_line(run_of(capacity("max", 1000.0, regression=regression(None, None, None, note))))
    assert line == f"  capacity: sustains the max, 1,000 arrivals/s; regression: {note}"
    line = terminal_line(run_of(capacity(regression=regression("inconclusive", None, note="the baseline hit max"))))
    assert line is not None
    assert line.endswith("; vs baseline 500: not compared (inconclusive: the baseline hit max)")


def test_no_search_no_line() -> None:
    assert terminal_line(run_of(None)) is None
    assert terminal_line({"name": "plain"}) is None


def test_levels_are_written_as_typed() -> None:
    assert [level_text(v) for v in (340.0, 1000.0, 12.5, 0.25, None)] == ["340", "1,000", "12.5", "0.25", "-"]


# ---- summary.md -----------------------------------------------------------------------------


def test_markdown_has_a_table_per_run_with_the_breaking_step_and_why() -> None:
    lines = markdown_lines(
        [{"name": "peak", "capacity_search": capacity(regression=regression("major"))}, {"name": "plain"}], _table
    )
    assert lines[:4] == ["", "## Capacity search", "", "### peak"]
    assert "| step | level | passed | req/s | p95 | p99 | errors | breaches / why |" in lines
    assert "| 1 | 50 arrivals/s | yes | 49.0 | 30.0 ms | 45.5 ms | 0.00 % | - |" in lines
    assert (
        f"| 4 | 400 arrivals/s | **no** | 392.0 | 212 ms | 300 ms | 0.00 % | {BREACH}; aborted after 2.1 s |" in lines
    )
    assert lines[-1] == (
        "**Max sustainable: 340 arrivals/s**; limit: the service (it breaks at 400 arrivals/s); "
        "vs baseline 500: -32 % (**major**)."
    )


def test_markdown_says_why_a_generator_limited_step_stopped() -> None:
    lines = markdown_lines([run_of(generator_limited())], _table)
    assert "| 3 | 680 arrivals/s | **no** | 510.0 | 30.0 ms | 45.5 ms | 0.00 % | the generator saturated |" in lines
    assert lines[-1] == (
        "**Max sustainable: 340 arrivals/s**; limit: the generator (it saturated at 680 arrivals/s before the "
        "service broke: add workers or --perf-cluster); no baseline to compare with."
    )


def test_no_search_no_section() -> None:
    assert markdown_lines([{"name": "plain"}, run_of(None)], _table) == []


# ---- findings -------------------------------------------------------------------------------


def test_a_generator_limit_asks_for_more_load() -> None:
    (found,) = findings(run_of(generator_limited()))
    assert found["title"] == "Find the service's real capacity: the generator saturated first"
    assert found["fragment"] == "(at least 340 arrivals/s, saturated at 680)"
    assert "--perf-cluster" in found["advice"]
    assert "--perf-workers" in found["advice"]


def test_a_major_or_critical_drop_is_a_finding_a_minor_one_is_not() -> None:
    assert findings(run_of(capacity())) == []
    assert findings(run_of(capacity(regression=regression("minor", -0.08)))) == []
    (found,) = findings(run_of(capacity(regression=regression("critical", -0.5))))
    assert found["title"].startswith("Capacity dropped")
    assert found["fragment"] == "from 500 to 340 arrivals/s (critical, -50 %)"


def summary_run(record: dict[str, Any] | None, name: str = "peak") -> dict[str, Any]:
    total = {"requests": 1000, "errors": 0, "error_rate": 0.0, "rps": 100.0, "mean_ms": 10.0, "p50_ms": 10.0,
             "p90_ms": 12.0, "p95_ms": 14.0, "p99_ms": 20.0, "max_ms": 30.0, "errors_by_kind": {}}  # fmt: skip
    return {
        "test": f"test_shop.py::{name}",
        "name": name,
        "model": "open",
        "duration_s": 10.0,
        "total": total,
        "endpoints": {"GET /": total},
        "generator": {"iterations": 1000, "peak_users": 10},
        "extra": {"capacity": record} if record is not None else {},
    }


def test_build_summary_carries_the_record_and_render_markdown_shows_it() -> None:
    record = capacity(regression=regression("major"))
    tests = [{"nodeid": "test_shop.py::peak", "outcome": "passed", "reason": None, "runs": [summary_run(record)]}]
    summary = build_summary(tests, {"target": "http://127.0.0.1:1"})
    (entry,) = summary["tests"]
    assert entry["capacity_search"] == record
    titles = [r["title"] for r in summary["recommendations"]]
    assert "Capacity dropped: find what made the service slower at load" in titles
    markdown = render_markdown(summary)
    assert "## Capacity search" in markdown
    assert "**Max sustainable: 340 arrivals/s**" in markdown
    assert "## Capacity (stress)" not in markdown  # the stress section is fed by extra["stress"] only


def test_the_stress_section_still_renders_next_to_the_search() -> None:
    run = summary_run(generator_limited())
    run["extra"]["stress"] = {
        "steps": [{"users": 10, "rps": 100.0, "p95_ms": 20.0}],
        "breaking_point": {"users": 10},
        "limit": "service",
    }
    tests = [{"nodeid": "test_shop.py::peak", "outcome": "passed", "reason": None, "runs": [run]}]
    markdown = render_markdown(build_summary(tests, {"target": "http://127.0.0.1:1"}))
    assert markdown.index("## Capacity (stress)") < markdown.index("## Capacity search")
    assert "- peak: breaking point at 10 users" in markdown
    summary = build_summary(tests, {"target": "http://127.0.0.1:1"})
    titles = [r["title"] for r in summary["recommendations"]]
    assert "Find the service's real capacity: the generator saturated first" in titles


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


def test_the_verbose_terminal_block_shows_the_line() -> None:
    from pytest_shopflow_perf.reporting.terminal import write_summary

    writer = Lines()
    write_summary(writer, [summary_run(capacity("max", 1000.0))], verbose=True)
    assert "  capacity: sustains the max, 1,000 arrivals/s" in writer.lines
    quiet = Lines()
    write_summary(quiet, [summary_run(capacity("max", 1000.0))])
    assert not any(line.startswith("  capacity:") for line in quiet.lines)


# ---- HTML -----------------------------------------------------------------------------------


def test_the_chart_is_inline_svg_with_its_title_and_the_sustainable_level() -> None:
    from pytest_shopflow_perf.reporting.html.capacity_chart import capacity_chart

    svg = capacity_chart(capacity(regression=regression("major")))
    assert svg.startswith('<svg class="sfp-svg"')
    assert "Capacity search: latency and errors by level" in svg
    assert "max sustainable 340 arrivals/s" in svg
    assert "failed" in svg
    saturated = capacity_chart(generator_limited(), title="stress search")
    assert "stress search" in saturated
    assert "generator saturated" in saturated
    nothing = capacity_chart(capacity(best=None, steps=[step(50.0, False, breaches=[BREACH], error_rate=None)]))
    assert "max sustainable" not in nothing


def test_a_run_with_a_search_gets_the_capacity_chart() -> None:
    import httpx
    from support.engine import run as run_engine

    from pytest_shopflow_perf.reporting.html.run_charts import result_charts

    async def journey(user: Any) -> None:
        await user.client.get("/x")

    result = run_engine(
        journey, users=1, duration=0.2, transport_factory=lambda: httpx.MockTransport(lambda _: httpx.Response(200))
    )
    assert "capacity" not in [chart.kind for chart in result_charts(result)]
    result.extra["capacity"] = generator_limited()
    (chart,) = [chart for chart in result_charts(result) if chart.kind == "capacity"]
    assert "Capacity search" in chart.svg
    assert chart.caption.endswith(
        "limit: the generator (it saturated at 680 arrivals/s before the service broke: add workers or --perf-cluster)."
    )
    from support.html_report import charts

    from pytest_shopflow_perf.reporting.html.render import render_run

    shown = charts(render_run(result.summary_dict(), result_charts(result)))  # each SVG parsed as XML
    assert "max sustainable 340 arrivals/s" in shown["capacity"]


def test_a_search_with_no_sustainable_level_says_which_level_already_failed() -> None:
    first = step(50.0, False, breaches=[BREACH])
    lines = markdown_lines([run_of(capacity(best=None, breaking=first, steps=[first]))], _table)
    assert lines[-1] == (
        "**Max sustainable: none: the first level (50 arrivals/s) already failed**; limit: the service (it breaks at "
        "50 arrivals/s); no baseline to compare with."
    )
    saturated = step(50.0, False, saturated=True)
    record = capacity("generator", best=None, steps=[saturated])
    assert terminal_line(run_of(record)) == (
        "  capacity: not measured: the generator saturated at 50, the first level, before the service broke "
        "(add workers)"
    )
    (found,) = findings(run_of(record))
    assert found["fragment"] == "(no level measured, saturated at 50)"


def test_a_capacity_level_that_broke_is_no_failure_of_the_session() -> None:
    """The search looks for the level that breaks: only the test's own outcome fails it."""
    from pytest_shopflow_perf.reporting._format import run_status

    broke = {
        "extra": {
            "capacity_step": True,
            "stop_reason": "aborted: 'p(95)<500ms' is breached beyond recovery after 1 s",
            "slo": [{"threshold": "p(95)<500ms", "passed": False}],
        },
        "generator": {"saturated": False},
    }
    assert run_status(broke, "passed") == (
        "PASS",
        "a capacity search level that broke its SLOs: the search's upper bound",
    )
    saturated = {"extra": {"capacity_step": True, "slo": []}, "generator": {"saturated": True}}
    assert run_status(saturated, "passed")[0] == "PASS"
    assert run_status(broke, "failed", "capacity regression: major")[0] == "ABORTED"  # as any aborted run
    plain = {"extra": {"stop_reason": "aborted: x", "slo": [{"passed": False}]}}
    assert run_status(plain, "passed")[0] == "ABORTED"

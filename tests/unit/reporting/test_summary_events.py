"""summary.md per scenario (model, load, duration planned and run), checks and journey exceptions on rows of
their own, and the same rows in the terminal's -v block and the endpoints CSV."""

from __future__ import annotations

import csv
import io

from pytest_shopflow_perf.reporting._events import event_rows
from pytest_shopflow_perf.reporting.files import _endpoint_rows
from pytest_shopflow_perf.reporting.scenarios import scenario_facts
from pytest_shopflow_perf.reporting.summary import build_summary, render_markdown
from pytest_shopflow_perf.reporting.terminal import write_summary

TRACEBACK = "Traceback (most recent call last):\n  File \"test_shop.py\", line 7, in browse\nKeyError: 'basket'\n"


def _stats(errors: int = 0) -> dict:
    return {"requests": 100, "errors": errors, "error_rate": errors / 100, "rps": 10.0, "mean_ms": 2.0,
            "p50_ms": 2.0, "p90_ms": 3.0, "p95_ms": 3.0, "p99_ms": 4.0, "max_ms": 5.0,
            "errors_by_kind": {}}  # fmt: skip


def _run(**more: object) -> dict:
    record = {
        "test": "test_shop.py::test_cart",
        "name": "cart",
        "model": "closed",
        "duration_s": 9.8,
        "interrupted": False,
        "profile": {"model": "closed", "users": 10, "duration": 10.0, "ramp_up": 2.0, "ramp_down": 0.0,
                    "stages": [[2.0, 10.0], [8.0, 10.0]], "think_time": [1, 3], "workers": 1, "scale": 1.0},
        "total": {**_stats(), "errors": 70, "error_rate": 0.7},
        "endpoints": {"GET /api/cart": _stats()},
        "events": {
            "check: cart has items": {"errors": 40, "errors_by_kind": {"check: cart has items": 40}},
            "journey browse": {"errors": 30, "errors_by_kind": {"exception KeyError": 30}},
        },
        "checks": {"cart has items": {"passes": 60, "fails": 40}, "status is 200": {"passes": 100, "fails": 0}},
        "generator": {"iterations": 100, "peak_users": 10},
        "extra": {
            "journey_runs": {"journey browse": 100, "on_start login": 10},
            "exceptions": [{"kind": "exception KeyError", "count": 30, "where": "browse", "row": "journey browse",
                            "traceback": TRACEBACK}],
        },
    }  # fmt: skip
    record.update(more)
    return record


def _markdown(run: dict) -> str:
    tests = [{"nodeid": run["test"], "outcome": "passed", "reason": None, "runs": [run]}]
    return render_markdown(build_summary(tests, {"target": "http://127.0.0.1:1"}))


def test_event_rows_divide_by_their_own_runs() -> None:
    rows = {row.name: row for row in event_rows(_run())}
    assert list(rows) == ["check: cart has items", "check: status is 200", "journey browse", "on_start login"]
    assert (rows["check: cart has items"].runs, rows["check: cart has items"].error_rate) == (100, 0.4)
    assert (rows["journey browse"].runs, rows["journey browse"].errors, rows["journey browse"].ok) == (100, 30, 70)
    assert rows["on_start login"].errors == 0
    assert [row.name for row in event_rows(_run(), passing=False)] == ["check: cart has items", "journey browse"]
    # an older record without runs: the row still shows, its rate unknown
    old = event_rows({"events": {"journey browse": {"errors": 3, "errors_by_kind": {"exception X": 3}}}})
    assert (old[0].runs, old[0].error_rate) == (None, None)


def test_summary_has_a_scenario_table_checks_journeys_and_first_tracebacks() -> None:
    markdown = _markdown(_run())
    scenarios = markdown.split("## Scenarios")[1].split("##")[0]
    assert "| cart | closed | 10 users, ramp-up 2 s, think 1-3 s | 10 s | 9.8 s | 100 | 10 |" in scenarios
    checks = markdown.split("## Checks and journeys")[1].split("## Regressions")[0]
    assert "| cart | check: cart has items | 100 | 60 | 40 | 40.00 % |  |" in checks
    assert "| cart | check: status is 200 | 100 | 100 | 0 | 0.00 % |  |" in checks
    assert "| cart | journey browse | 100 | 70 | 30 | 30.00 % | exception KeyError (30) |" in checks
    assert "**exception KeyError** in `browse` (cart): 30 time(s); the first traceback:" in checks
    assert "```text\n" + TRACEBACK + "```" in checks
    hotspots = markdown.split("Error hotspots")[1].split("##")[0]
    assert "| check: cart has items | cart | 40 | 40.00 % |  |" in hotspots
    assert "| GET /api/cart |" not in hotspots  # it answered every request
    recommendations = markdown.split("## Recommendations")[1]
    assert "Fix check: cart has items" in recommendations
    assert "Fix the errors of GET /api/cart" not in recommendations


def test_no_checks_and_no_exceptions_leave_the_section_out() -> None:
    run = _run(events={}, checks={}, extra={"journey_runs": {"journey browse": 100}})
    assert "## Checks and journeys" not in _markdown(run)
    writer = _Writer()
    write_summary(writer, [{**run, "outcome": "passed"}], verbose=True)
    assert not any("check / journey" in line or "errors not from a request" in line for line in writer.lines)


def test_scenario_facts_for_the_open_model_iterations_stages_and_scale() -> None:
    open_model = {"model": "open", "rate": 50.0, "max_users": 200, "duration": 30.0, "ramp_up": 0.0,
                  "ramp_down": 0.0, "stages": [[30.0, 50.0]], "scale": 1.0, "workers": 2}  # fmt: skip
    facts = scenario_facts({"model": "open", "profile": open_model, "duration_s": 30.02})
    assert (facts["model"], facts["load"], facts["planned"], facts["ran"]) == (
        "open",
        "50 arrivals/s, max_users 200, workers 2",
        "30 s",
        "30.0 s",
    )
    stages = {"model": "closed", "users": 20, "duration": 3.0, "stages": [[1.0, 20.0], [1.0, 5.0], [1.0, 0.0]],
              "scale": 0.1, "iterations": None}  # fmt: skip
    facts = scenario_facts({"profile": stages, "duration_s": 3.0, "interrupted": True})
    assert facts["load"] == "20 users, stages 1 s to 20 users, 1 s to 5 users, 1 s to 0 users"
    assert facts["planned"] == "3 s (scaled x0.1)"
    assert facts["ran"] == "3.0 s (interrupted)"
    iterations = {"model": "closed", "users": 2, "duration": 600.0, "stages": [[600.0, 2.0]], "iterations": 20}
    assert scenario_facts({"profile": iterations, "duration_s": 0.4})["planned"] == "20 iterations (at most 600 s)"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


def test_terminal_verbose_block_has_the_rows_and_the_first_traceback() -> None:
    writer = _Writer()
    write_summary(writer, [{**_run(), "outcome": "passed"}], verbose=True)
    text = "\n".join(writer.lines)
    assert (
        "errors not from a request (no endpoint failed for them): check: cart has items 40, journey browse 30" in text
    )
    rows = [line.split() for line in writer.lines]
    assert ["GET", "/api/cart", "100", "10.0", "2.0", "3.0", "4.0", "5.0", "0.00"] in rows
    assert ["check:", "cart", "has", "items", "100", "60", "40", "40.00"] in rows
    assert ["journey", "browse", "100", "70", "30", "30.00", "exception", "KeyError", "30"] in rows
    assert "  exception KeyError in browse: 30 time(s), first traceback:" in writer.lines
    assert "    KeyError: 'basket'" in writer.lines
    quiet = _Writer()
    write_summary(quiet, [{**_run(), "outcome": "passed"}], verbose=False)
    assert not any("Traceback" in line for line in quiet.lines)


def test_endpoints_csv_has_rows_for_checks_and_journeys_that_add_up_to_the_total() -> None:
    record = _run(total={**_stats(), "errors": 70, "error_rate": 0.7})
    text = io.StringIO()
    csv.writer(text).writerows(_endpoint_rows(record))
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert [(r["endpoint"], r["row"], r["errors"], r["error_rate"], r["runs"]) for r in rows] == [
        ("GET /api/cart", "endpoint", "0", "0.0", ""),
        ("check: cart has items", "check", "40", "0.4", "100"),
        ("journey browse", "journey", "30", "0.3", "100"),
        ("total", "total", "70", "0.7", ""),
    ]
    assert sum(int(r["errors"]) for r in rows[:-1]) == int(rows[-1]["errors"])

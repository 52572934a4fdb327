"""How thresholds and their outcomes are printed: in the grammar's own form, in the threshold's own units.

Issue 17: reports printed `p95<=500ms` (a form the grammar refuses) and breaches as `measured 0.1053`.
Every printed threshold must parse back to the threshold that was judged; every measured value is
shown in its threshold's unit, next to the threshold and the margin.
"""

from __future__ import annotations

import math
import re
from dataclasses import fields

import httpx
import pytest
from support.engine import run

from pytest_shopflow_perf import assert_error_rate, assert_latency, assert_slo, assert_throughput
from pytest_shopflow_perf.reporting._format import slo_outcome, slo_value
from pytest_shopflow_perf.reporting.summary import build_summary, render_markdown
from pytest_shopflow_perf.reporting.terminal import write_summary
from pytest_shopflow_perf.verdicts.slo import SloError, Threshold, expression, parse_threshold

EXPRESSIONS = [
    "p(95)<500ms",
    "p(99.9) <= 1.5s",
    "avg<200",
    "mean<0.3ms",
    "med<100us",
    "min>=1ms",
    "max<2s",
    "max<1m30s",
    "error_rate<1%",
    "rate<0.05",
    "error_rate<=0.1%",
    "rps>50",
    "rps>=0.5",
    "count>=10",
    "errors==0",
    "GET /api/products/{id}: p(95)<300ms",
    "error_rate<5% over any 10s",
    "p(95)<800ms during stage 2",
    "p(95)<500ms during 20s..end",
    "p(95)<500ms during 1500ms..2500ms",
    "p(95)<500ms during 2s..2.5s",
    "rps>1 over any 1500ms",
    "checkout: p(99)<1s over any 5s during 10s..30s",
    "error_rate[HTTP 5, timeout]<1%",
    'error_rate["check: cart, then pay", HTTP 503]<=2%',
    "fail: error_rate[HTTP 503]<0.5%",
]


def assert_same(judged: Threshold, printed: str) -> None:
    """``printed`` reads back as ``judged``: every field equal (the value to float precision)."""
    back = parse_threshold(printed)
    for item in fields(Threshold):
        if item.name == "text":
            continue
        mine, theirs = getattr(judged, item.name), getattr(back, item.name)
        if item.name == "value":
            assert math.isclose(mine, theirs, rel_tol=1e-9), (printed, mine, theirs)
        else:
            assert mine == theirs, (printed, item.name, mine, theirs)


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_every_expression_prints_in_a_form_the_grammar_reads_back(text) -> None:
    threshold = parse_threshold(text)
    printed = expression(threshold)
    assert_same(threshold, printed)
    assert expression(parse_threshold(printed)) == printed  # one canonical form


def test_the_canonical_form_keeps_the_units_it_was_written_in() -> None:
    assert expression(parse_threshold("p(95) < 500ms")) == "p(95)<500ms"
    assert expression(parse_threshold("avg<200")) == "avg<200ms"  # k6: a bare number is milliseconds
    assert expression(parse_threshold("p(99)<1.5s")) == "p(99)<1.5s"
    assert expression(parse_threshold("med<100us")) == "p(50)<100us"
    assert expression(parse_threshold("rate<0.05")) == "error_rate<5%"
    assert expression(parse_threshold("x: rps>50 over any 10s")) == "x: rps>50 over any 10s"


@pytest.fixture(scope="module")
def mock_result():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.path == "/fail" else 200)

    async def journey(user):
        await user.client.get("/x", extensions={"name": "GET /x"})
        await user.client.get("/fail", extensions={"name": "fail"})
        user.check(False, "cart, then pay")

    return run(journey, users=2, iterations=40, transport_factory=lambda: httpx.MockTransport(handler))


def test_helper_thresholds_print_in_the_grammar_and_read_back_as_judged(mock_result) -> None:
    """assert_latency, assert_error_rate and assert_throughput: the recorded `threshold` text is grammar."""
    result = mock_result
    result.extra["slo"] = []
    assert_latency(result, p95="500ms", p99=1, mean=0.2, max="2s", p999="900000us", p50="1m", endpoint="GET /x")
    assert_latency(result, p90=0.25)
    assert_error_rate(result, max=0.5, endpoint="GET /x")
    assert_error_rate(result, max="100%", kinds=["HTTP 5", "check: cart, then pay"])
    assert_throughput(result, min_rps=0.5)
    assert_throughput(result, min_rps=1, endpoint="fail")
    outcomes = result.extra["slo"]
    texts = [o["threshold"] for o in outcomes]
    assert texts == [
        "GET /x: p(50)<=60s",
        "GET /x: p(95)<=500ms",
        "GET /x: p(99)<=1s",
        "GET /x: p(99.9)<=900000us",  # a unit kept, a limit no loaded machine reaches
        "GET /x: max<=2s",
        "GET /x: avg<=200ms",
        "p(90)<=250ms",
        "GET /x: error_rate<=50%",
        'error_rate[HTTP 5, "check: cart, then pay"]<=100%',
        "rps>=0.5",
        "fail: rps>=1",
    ]
    for outcome in outcomes:
        back = parse_threshold(outcome["threshold"])
        assert math.isclose(back.value, outcome["limit"], rel_tol=1e-9)
        assert back.op == outcome["op"]
        assert (back.endpoint or "total") == outcome["endpoint"]
        assert back.display_unit == outcome["display_unit"]


def test_failure_tables_summary_and_terminal_print_the_threshold_as_grammar(mock_result) -> None:
    """Every place a threshold is printed: the assertion's table, summary.md, the terminal's -v lines."""
    result = mock_result
    result.extra["slo"] = []
    expressions = ["GET /x: p(95)<=0.001ms", "error_rate<1%", "fail: rps>1000000", "p(99)<0.000001s"]
    with pytest.raises(AssertionError) as failure:
        assert_slo(result, *expressions)
    table = str(failure.value).splitlines()
    judged = [parse_threshold(text) for text in expressions]
    for threshold in judged:
        assert any(threshold.text in line for line in table), (threshold.text, table)

    outcomes = result.extra["slo"]
    run_summary = {**result.summary_dict(), "extra": {"slo": outcomes}}
    markdown = render_markdown(
        build_summary([{"nodeid": result.test, "outcome": "failed", "reason": "", "runs": [run_summary]}], {})
    )
    printed = re.findall(r"^- .*?: `([^`]+)`: measured ", markdown, flags=re.MULTILINE)
    assert len(printed) == len(judged)
    for threshold, text in zip(judged, printed, strict=True):
        assert_same(threshold, text)

    class Writer:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def write_line(self, line: str, **markup: bool) -> None:
            self.lines.append(line)

    writer = Writer()
    write_summary(writer, [{**run_summary, "outcome": "failed"}], verbose=True)
    failed = [line.split("SLO failed: ", 1)[1] for line in writer.lines if "SLO failed: " in line]
    assert [text.split(": measured ")[0] for text in failed] == [t.text for t in judged]


def test_measured_values_are_shown_in_the_units_of_their_threshold(mock_result) -> None:
    result = mock_result
    result.extra["slo"] = []
    with pytest.raises(AssertionError) as failure:
        assert_slo(result, "p(95)<0.00001s", "max<1us", "avg<0.0001ms", "error_rate<0.5%", "rps>1000000")
    by_unit = {o["threshold"]: o["display_unit"] for o in result.extra["slo"]}
    assert by_unit == {
        "p(95)<0.00001s": "s",
        "max<1us": "us",
        "avg<0.0001ms": "ms",
        "error_rate<0.5%": "%",
        "rps>1000000": "req/s",
    }
    lines = str(failure.value).splitlines()
    row = next(line for line in lines if "p(95)<0.00001s" in line)
    assert re.search(r" 0\.000\d+ s ", row), row  # seconds, as the threshold
    row = next(line for line in lines if "max<1us" in line)
    assert re.search(r"\b[\d,]+ us\b", row), row
    row = next(line for line in lines if "error_rate<0.5%" in line)
    assert re.search(r"\b\d+\.\d\d %", row), row
    row = next(line for line in lines if "rps>1000000" in line)
    assert "req/s" in row


def test_an_outcome_in_words_repeats_the_threshold_with_the_margin() -> None:
    outcome = {"threshold": "p(95)<500ms", "measured": 0.6124, "limit": 0.5, "op": "<", "passed": False,
               "unit": "s", "display_unit": "ms", "scope": "whole run", "at": None, "note": ""}  # fmt: skip
    assert slo_outcome(outcome) == "p(95)<500ms: measured 612.4 ms against < 500.0 ms (margin +22.5 %)"
    assert slo_outcome({**outcome, "threshold": "p(95)<0.5s", "display_unit": "s"}) == (
        "p(95)<0.5s: measured 0.612 s against < 0.500 s (margin +22.5 %)"
    )
    rate = {**outcome, "threshold": "error_rate<1%", "measured": 0.1053, "limit": 0.01, "unit": "%",
            "display_unit": "%"}  # fmt: skip
    assert slo_outcome(rate, code=lambda t: f"`{t}`") == (
        "`error_rate<1%`: measured 10.53 % against < 1.00 % (margin +953.0 %)"
    )
    windowed = {**rate, "threshold": "error_rate<1% over any 10s", "at": 20.0}
    assert "measured 10.53 % (worst span at 20 s) against" in slo_outcome(windowed)
    assert slo_outcome({**outcome, "note": "no request was measured in the run"}) == (
        "p(95)<500ms: no request was measured in the run"
    )
    # a record written before display units: latency in ms, as before
    old = {key: value for key, value in outcome.items() if key != "display_unit"}
    assert "measured 612.4 ms" in slo_outcome(old)
    assert slo_value(1234.5, "req/s") == "1,234.5 req/s"
    assert slo_value(3, "") == "3"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("error_rate[]<1%", "needs error kinds"),
        ("error_rate[HTTP 5]<1% over any 10s", "judged on the whole run"),
        ("rps[HTTP 5]>1", "unknown metric"),
    ],
)
def test_error_kinds_in_the_grammar_are_checked(bad, message) -> None:
    with pytest.raises(SloError, match=re.escape(message)):
        parse_threshold(bad)


def test_error_kinds_cannot_abort_a_run() -> None:
    from pytest_shopflow_perf import Slo

    with pytest.raises(SloError, match="cannot abort a run"):
        Slo("error_rate[HTTP 5]<1%", abort=True)


def test_error_kinds_are_judged_from_an_expression_as_by_assert_error_rate(mock_result) -> None:
    result = mock_result
    assert_slo(result, "error_rate[timeout, connect]<1%")  # none of those
    with pytest.raises(AssertionError, match=re.escape('error_rate[HTTP 5, "check: cart, then pay"]<=10%')):
        assert_slo(result, 'error_rate[HTTP 5, "check: cart, then pay"]<=10%')

"""Mistakes a user makes, as pytest shows them: the message that names the fix, no plugin source (issue 17)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

JOURNEY = """
import pytest
from pytest_shopflow_perf import Slo, assert_error_rate, assert_latency

async def post(user):
    await user.client.post("/delay/2", extensions={"name": "POST /post"})
    await user.think(0.02)

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

QUIET = ("-p", "no:randomly", "-p", "no:cacheprovider")
# Lines of the plugin's own source in a traceback: its files, and the code of its frames.
PLUGIN_FRAMES = ["*pytest_shopflow_perf/*", "*site-packages/pytest_asyncio/*", "*contextlib.py*"]


@pytest.fixture(autouse=True)
def _quiet_pytest_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")


def _no_plugin_source(result: pytest.RunResult) -> None:
    for pattern in PLUGIN_FRAMES:
        result.stdout.no_fnmatch_line(pattern)
    for code in ("*raise pytest.UsageError*", "*raise SloError*", "*__tracebackhide__*", "*def resolve_profile*"):
        result.stdout.no_fnmatch_line(code)


def test_usage_errors_show_the_message_and_no_plugin_source(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(
        JOURNEY
        + """
@pytest.mark.load(users=1, durration="1s")
def test_marker_key(load):
    load.run(post)

@pytest.mark.load(users="lots", duration="1s")
def test_marker_value(load):
    load.run(post)

@pytest.mark.load(users=2, rate=10, duration="1s")
def test_users_and_rate(load):
    load.run(post)

@pytest.mark.load(users=1, duration="1s", slo=["p95<1s"])
def test_bad_slo(load):
    load.run(post)

@pytest.mark.load(users=1, duration="1s")
def test_run_override(load):
    load.run(post, usres=2)

@pytest.mark.anyio
@pytest.mark.load(users=1, duration="1s")
async def test_arun_override(load):
    await load.arun(post, on_strat=post)

@pytest.mark.load(users=1, duration="1s")
def test_assertion_argument(load):
    result = load.run(post)
    assert_latency(result, p95="fast")

@pytest.mark.load(users=1, duration="1s")
def test_assertion_endpoint(load):
    result = load.run(post)
    assert_error_rate(result, max="1%", endpoint="GET /post", kinds=["HTTP 5"])
"""
    )
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, *QUIET)
    result.assert_outcomes(errors=4, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_marker_key*",
            "@pytest.mark.load(users=1, durration='1s'): unknown argument(s) durration (did you mean `duration`?); "
            "accepted: users, duration, ramp_up, ramp_down, stages, rate, max_users, think_time, iterations, slo, "
            "faults, base_url, name, timeout, graceful_stop, client, workers, max_body",
            "*ERROR at setup of test_marker_value*",
            "@pytest.mark.load(users='lots', duration='1s'): users='lots' is not valid: expected a whole number >= 1*",
            "*ERROR at setup of test_users_and_rate*",
            "*users=2 with rate=10: rate= is the open model*give max_users=2*",
            "*ERROR at setup of test_bad_slo*",
            "@pytest.mark.load(slo=...): cannot read SLO expression 'p95<1s'*",
            "*_ test_run_override _*",
            ">       load.run(post, usres=2)",
            "E       pytest.UsageError: load.run(usres=2): unknown argument(s) usres (did you mean `users`?); "
            "accepted: *max_body, on_start, on_stop, app, transport_factory",
            "*_ test_arun_override _*",
            ">       await load.arun(post, on_strat=post)",
            "E       pytest.UsageError: load.run(on_strat=*): unknown argument(s) on_strat (did you mean `on_start`?)*",
            "*_ test_assertion_argument _*",
            '>       assert_latency(result, p95="fast")',
            "E       *SloError: assert_latency: p95='fast' is not a duration; use a number of seconds*",
            "*_ test_assertion_endpoint _*",
            '>       assert_error_rate(result, max="1%", endpoint="GET /post", kinds=["HTTP 5"])',
            "E       *SloError: 'GET /post: error_rate[[]HTTP 5]<=1%': no endpoint 'GET /post' in this run; "
            "did you mean 'POST /post'? endpoints: 'POST /post'*",
        ]
    )
    # the marker's mistakes are said once, with nothing around them
    result.stdout.no_fnmatch_line("*During handling of the above exception*")
    _no_plugin_source(result)


def test_a_misspelt_slo_endpoint_is_said_while_the_run_goes_and_fails_it_clearly(
    pytester: pytest.Pytester, delay_server: str
) -> None:
    pytester.makepyfile(
        JOURNEY
        + """
@pytest.mark.load(users=1, duration="2s", slo=["GET /post: p(99)<200ms", "POST /post: p(99)<1s"])
def test_marker_slo(load):
    load.run(post)

@pytest.mark.slo(Slo("GET /psot: error_rate<50%", abort=True, grace="0s"))
@pytest.mark.load(users=1, duration="2s")
def test_abort_slo(load):
    load.run(post)
"""
    )
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, *QUIET)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            # live, before either test's outcome: the first closed window showed the endpoints
            "shopflow perf: WARNING: SLO 'GET /post: p(99)<200ms': no endpoint 'GET /post' after * s of the run; "
            "did you mean 'POST /post'? endpoints: 'POST /post'*unless it shows up, the threshold fails when the run "
            "ends",
            "shopflow perf: WARNING: SLO 'GET /psot: error_rate<50%': no endpoint 'GET /psot' after * s of the run; "
            "did you mean 'POST /post'?*",
            "*_ test_marker_slo _*",
            ">       load.run(post)",
            "E       *SloError: 'GET /post: p(99)<200ms': no endpoint 'GET /post' in this run; "
            "did you mean 'POST /post'? endpoints: 'POST /post'*",
            "*_ test_abort_slo _*",
            "E       *SloError: 'GET /psot: error_rate<50%': no endpoint 'GET /psot' in this run; did you mean*",
        ]
    )
    assert result.stdout.str().count("shopflow perf: WARNING: SLO ") == 2  # once per threshold, not per window
    result.stdout.no_fnmatch_line("*KeyError*")
    _no_plugin_source(result)


def test_summary_md_shows_breaches_in_the_thresholds_units(pytester: pytest.Pytester, delay_server: str) -> None:
    """Issue 17: summary.md said `measured 0.1053` for a breach."""
    pytester.makepyfile(
        JOURNEY
        + """
async def slow(user):
    await user.client.get("/delay/30", extensions={"name": "GET /slow"})
    await user.client.get("/status/503", extensions={"name": "GET /fail"})

@pytest.mark.load(users=1, duration="1s", name="units",
                  slo=["GET /slow: p(95)<10ms", "GET /slow: avg<0.01s", "error_rate<1%"])
def test_units(load):
    load.run(slow)
"""
    )
    result = pytester.runpytest_subprocess(
        "--perf-base-url", delay_server, "--perf-report-dir", "out", "-p", "no:randomly", "-v"
    )
    result.assert_outcomes(failed=1)
    summary = (pytester.path / "out" / "summary.md").read_text()
    lines = [line for line in summary.splitlines() if line.startswith("- units: ")]
    assert len(lines) == 3, summary
    p95, avg, errors = lines
    assert p95.startswith("- units: `GET /slow: p(95)<10ms`: measured 3")  # ~30 ms, in ms as the threshold
    assert " ms against < 10.0 ms (margin +" in p95
    assert avg.startswith("- units: `GET /slow: avg<0.01s`: measured 0.03")  # in s, as the threshold
    assert " s against < 0.0100 s (margin +" in avg
    assert errors.startswith("- units: `error_rate<1%`: measured 50.00 % against < 1.00 % (margin +4900.0 %)")
    # the terminal's -v block and the assertion's table say the same
    result.stdout.fnmatch_lines(
        [
            "*GET /slow*p(95)<10ms*",
            "*SLO failed: GET /slow: p(95)<10ms: measured * ms against < 10.0 ms (margin +*",
            "*SLO failed: error_rate<1%: measured 50.00 % against < 1.00 % (margin +4900.0 %)",
        ]
    )

"""The plugin as users meet it: markers, options, fixtures, errors and output, run with pytester."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytest_plugins = ["pytester"]

JOURNEY = """
import json, pytest
from pytest_shopflow_perf import User

async def browse(user: User) -> None:
    r = await user.client.get("/api/products")
    item = user.random.choice(r.json()["items"])
    await user.client.get(f"/api/products/{item['id']}")
"""


@pytest.fixture
def target(delay_server: str) -> str:
    return delay_server


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A real load run in its own process: numpy and the event loop do not survive in-process reruns."""
    return pytester.runpytest_subprocess(*args)


@pytest.fixture(autouse=True)
def _quiet_pytest_asyncio(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs get no ini of ours: silence pytest-asyncio's loop-scope deprecation there."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")


def test_marker_and_options_are_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.load(users=10, duration='10s'*"])
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "load testing (pytest-shopflow-perf):",
            "*--perf-base-url=URL*",
            "*--perf-scale=FACTOR*",
            "*--perf-fail-on=TIER*",
            "*--perf-allow-host=HOST*",
            "*perf_base_url (string):*",
            "*perf_allow_hosts (linelist):*",
        ]
    )


def test_sync_and_async_load_tests_report_a_table(pytester: pytest.Pytester, target: str) -> None:
    pytester.makepyfile(
        JOURNEY
        + """
@pytest.mark.load(users=2, duration="1s", name="sync browse")
def test_sync(load):
    result = load.run(browse)
    assert result.requests > 10 and result.errors == 0

@pytest.mark.anyio
@pytest.mark.load(users=2, duration="1s")
async def test_anyio(load):
    result = await load.arun(browse)
    assert result.requests > 10

@pytest.mark.asyncio
@pytest.mark.load(users=2, duration="1s")
async def test_pytest_asyncio(load):
    result = await load.arun(browse)
    assert result.requests > 10

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
    )
    result = run(pytester, "--perf-base-url", target, "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= shopflow perf =*",
            "load run*requests*req/s*p50 ms*p95 ms*p99 ms*max ms*errors %*SLO*regression",
            "sync browse *0.00*no baseline",
            "test_sync_and_async_load_tests_report_a_table.py::test_anyio *no baseline",
            "test_sync_and_async_load_tests_report_a_table.py::test_pytest_asyncio *no baseline",
            # -v: a block per run with its endpoints
            "sync browse (closed model, 1.* s, 2 users peak)",
            "*endpoint*requests*req/s*p50 ms*p95 ms*p99 ms*max ms*errors %",
            "*GET /api/products/{id}*",
            "*total*0.00",
            "*regression: no baseline yet*",
            "test_sync_and_async_load_tests_report_a_table.py::test_anyio (closed model*",
        ]
    )
    # no threshold and no baseline: never a pass (inconclusive when the journey without think time saturated)
    row = next(line for line in result.outlines if line.startswith("sync browse "))
    assert re.search(r" (not judged|inconclusive)  +no baseline$", row), row


def test_load_run_inside_an_event_loop_points_to_arun(pytester: pytest.Pytester, target: str) -> None:
    pytester.makepyfile(
        JOURNEY
        + """
@pytest.mark.anyio
@pytest.mark.load(users=1, duration="1s")
async def test_wrong(load):
    load.run(browse)

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
    )
    result = run(pytester, "--perf-base-url", target)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*inside a running event loop; in an async test use `await load.arun(...)`*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('users="lots"', "*users='lots' is not valid: expected a whole number >= 1*"),
        ('duration="soon"', "*duration='soon' is not valid: expected a number of seconds*\"250ms\"*"),
        ("ramp_up=5, duration=2", "*ramp_up (5 s) + ramp_down (0 s) exceed duration (2 s)*"),
        ("userz=3", "*unknown argument(s) userz (did you mean `users`?); accepted: users, duration*"),
        ("think_time=(3, 1)", "*think_time=(3, 1) is not valid*min <= max*"),
        ('stages=[("1s", 5)], duration=3', "*give either duration*or stages, not both*"),
    ],
)
def test_bad_marker_arguments_are_clear_errors(pytester: pytest.Pytester, target: str, marker, message) -> None:
    pytester.makepyfile(
        JOURNEY
        + f"""
@pytest.mark.load({marker})
def test_x(load):
    load.run(browse)
"""
    )
    result = run(pytester, "--perf-base-url", target)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])


def test_journeys_must_be_async_functions(pytester: pytest.Pytester, target: str) -> None:
    pytester.makepyfile(
        """
import pytest
def browse(user):
    pass
@pytest.mark.load(users=1, duration="1s")
def test_x(load):
    load.run(browse)
"""
    )
    result = run(pytester, "--perf-base-url", target)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*journey browse must be an async function taking the user*"])


def test_non_loopback_targets_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        JOURNEY
        + """
@pytest.mark.load(users=1, duration="1s", base_url="http://shop.example.com")
def test_marker_target(load):
    load.run(browse)
"""
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*refusing to load-test 'http://shop.example.com'*not loopback*--perf-allow-host shop.example.com*"]
    )


PROFILE_PROBE = (
    JOURNEY
    + """
@pytest.mark.load(users=3, duration="2s", ramp_up="1s")
def test_probe(load):
    p = load.profile
    print("PROFILE", json.dumps({"users": p.users, "duration": p.duration, "ramp_up": p.ramp_up,
                                 "think_time": p.think_time, "sources": p.sources}))
"""
)


def _profile(result: pytest.RunResult) -> dict:
    line = next(line for line in result.stdout.lines if "PROFILE " in line)
    return json.loads(line.split("PROFILE ", 1)[1])


def test_precedence_is_defaults_ini_marker_env_cli(pytester: pytest.Pytester, monkeypatch, target: str) -> None:
    pytester.makepyfile(PROFILE_PROBE)
    pytester.makeini("[pytest]\nperf_users = 7\nperf_think_time = 1, 2\nperf_duration = 9s\n")
    result = run(pytester, "-s", "--perf-base-url", target)
    profile = _profile(result)
    assert profile["users"] == 3  # marker beats ini
    assert profile["think_time"] == [1.0, 2.0]  # ini fills what the marker leaves out
    assert profile["duration"] == 2.0
    monkeypatch.setenv("SHOPFLOW_PERF_USERS", "5")
    monkeypatch.setenv("SHOPFLOW_PERF_DURATION", "4s")
    profile = _profile(run(pytester, "-s", "--perf-base-url", target))
    assert (profile["users"], profile["duration"]) == (5, 4.0)  # env beats marker
    assert profile["sources"]["users"].startswith("environment")
    profile = _profile(run(pytester, "-s", "--perf-base-url", target, "--perf-users", "6"))
    assert profile["users"] == 6  # command line beats env
    monkeypatch.setenv("SHOPFLOW_PERF_SCALE", "0.5")
    profile = _profile(run(pytester, "-s", "--perf-base-url", target))
    assert (profile["duration"], profile["ramp_up"]) == (2.0, 0.5)  # scale multiplies every duration
    profile = _profile(run(pytester, "-s", "--perf-base-url", target, "--perf-scale", "0.25"))
    assert profile["duration"] == 1.0


ENGINE_PROBE = """
import pytest

async def ping(user):
    await user.client.get("/")

@pytest.mark.load(users=2, iterations=4)
def test_probe(load):
    generator = load.run(ping).generator
    print("ENGINE", generator.client, generator.transport, generator.event_loop)
"""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "ENGINE httpx fast uvloop"),
        (("--perf-transport", "httpcore", "--perf-event-loop", "asyncio"), "ENGINE httpx httpcore asyncio"),
        (("-o", "perf_transport=httpcore", "-o", "perf_event_loop=uvloop"), "ENGINE httpx httpcore uvloop"),
    ],
)
def test_client_transport_and_event_loop_are_chosen_and_reported(
    pytester: pytest.Pytester, target: str, args: tuple[str, ...], expected: str
) -> None:
    pytester.makepyfile(ENGINE_PROBE)
    result = run(pytester, "-s", "--perf-base-url", target, *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*{expected}"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-o", "perf_transport=h2"), "*ini perf_transport='h2' is not valid: expected fast or httpcore*"),
        (
            ("-o", "perf_event_loop=trio"),
            "*ini perf_event_loop='trio' is not valid: expected auto or uvloop or asyncio*",
        ),
        (("--perf-client", "requests"), '*client=\'requests\' is not valid: expected client="httpx"*or client="fast"*'),
    ],
)
def test_bad_engine_choices_are_clear_errors(pytester: pytest.Pytester, target: str, args, message) -> None:
    pytester.makepyfile(ENGINE_PROBE)
    result = run(pytester, "--perf-base-url", target, *args)
    assert result.ret != 0
    (result.stdout if result.stdout.str().strip() else result.stderr).fnmatch_lines([message])


def test_plain_pytest_does_not_run_load_tests_with_the_usual_addopts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest
@pytest.mark.load(users=1, duration="1s")
def test_load(load):
    raise AssertionError("should not run")
def test_unit():
    pass
"""
    )
    pytester.makeini('[pytest]\naddopts = -m "not load"\n')
    pytester.runpytest().assert_outcomes(passed=1, deselected=1)


@pytest.mark.parametrize("disabled", ["html", "xdist"])
def test_works_without_optional_plugins(pytester: pytest.Pytester, target: str, disabled: str) -> None:
    pytester.makepyfile(
        JOURNEY
        + """
@pytest.mark.load(users=1, duration="1s")
def test_x(load):
    assert load.run(browse).requests > 0
"""
    )
    result = run(pytester, "-p", f"no:{disabled}", "--perf-base-url", target)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= shopflow perf =*"])


def test_xdist_keeps_load_tests_off_parallel_workers(pytester: pytest.Pytester, target: str) -> None:
    """Under pytest 9.2 + xdist 3.8, loadgroup alone spread load tests over workers (pytest-xdist#1386)."""
    pytest.importorskip("xdist")
    pytester.makepyfile(
        JOURNEY
        + """
import os, pathlib

def where(name):
    pathlib.Path(name + ".worker").write_text(os.environ.get("PYTEST_XDIST_WORKER", "none"))

@pytest.mark.load(users=1, duration="1s")
def test_a(load):
    where("a")
    assert load.run(browse).requests > 0

@pytest.mark.load(users=1, duration="1s")
def test_b(load):
    where("b")
    assert load.run(browse).requests > 0

@pytest.mark.parametrize("n", range(4))
def test_plain(n):
    pass
"""
    )
    result = run(pytester, "-n", "2", "--perf-base-url", target, "-rs")
    result.assert_outcomes(skipped=2, passed=4)
    result.stdout.fnmatch_lines(["*parallel xdist workers would fight over the same cores*--dist loadgroup*"])
    result = run(pytester, "-n", "2", "--dist", "loadgroup", "--perf-base-url", target)
    result.assert_outcomes(passed=6)
    worker_a = (pytester.path / "a.worker").read_text()
    assert worker_a.startswith("gw")
    assert (pytester.path / "b.worker").read_text() == worker_a  # one worker ran both load tests
    result.stdout.fnmatch_lines(["*= shopflow perf =*", "*::test_a *no baseline", "*::test_b *no baseline"])


def test_embedded_service_is_started_and_its_log_attached_on_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        app="""
import json
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    print("serving", scope["path"], flush=True)
    body = json.dumps({"items": [{"id": 1}]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
""",
        test_embedded=JOURNEY
        + """
@pytest.mark.load(users=1, duration="1s")
def test_x(load):
    assert load.base_url.startswith("http://127.0.0.1:")
    result = load.run(browse)
    assert result.requests > 5
    assert False, "fail on purpose"
""",
    )
    result = run(pytester, "--perf-app", "app:app")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- shopflow-perf service log -*", "serving /api/products*"])


def test_an_embedded_app_that_cannot_start_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        JOURNEY
        + """
@pytest.mark.load(users=1, duration="1s")
def test_x(load):
    load.run(browse)
"""
    )
    result = run(pytester, "--perf-app", "no_such_module:app")
    result.assert_outcomes(errors=0, failed=1)
    result.stdout.fnmatch_lines(["*embedded service 'no_such_module:app' exited during start-up*"])


def test_baselines_are_saved_compared_and_never_silently_replaced(pytester: pytest.Pytester, target: str) -> None:
    pytester.makepyfile(
        test_base=JOURNEY
        + """
@pytest.mark.load(users=2, duration="1500ms", think_time=0.005)  # a saturated run is never saved
def test_x(load):
    result = load.run(browse)
    print("NOTE", result.extra.get("regression_note"), "TIER", (result.extra.get("regression") or {}).get("tier"))
"""
    )
    # Saving, comparing and keeping the file are the subject, not the verdict: sub-millisecond
    # requests against one 1.5 s baseline run swing by tens of percent when a core is busy.
    first = run(pytester, "-s", "--perf-base-url", target, "--perf-save-baseline")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*NOTE no baseline yet (baselines/test_base.py__test_x.json)*TIER None"])
    path = pytester.path / "baselines" / "test_base.py__test_x.json"
    baseline = json.loads(path.read_text())
    assert baseline["schema"] == "shopflow-perf/baseline/1"
    assert len(baseline["runs"]) == 1
    second = run(pytester, "-s", "--perf-base-url", target)
    second.assert_outcomes(passed=1)
    second.stdout.re_match_lines([r".*NOTE None TIER (none|negligible|minor|major|critical|inconclusive)$"])
    path.write_text("{not json")
    broken = run(pytester, "--perf-base-url", target, "--perf-save-baseline")
    broken.assert_outcomes(failed=1)
    broken.stdout.fnmatch_lines(["*test_base.py__test_x.json*"])
    assert path.read_text() == "{not json"  # never silently replaced


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_the_run_and_keeps_partial_results(pytester: pytest.Pytester, target: str) -> None:
    pytester.makepyfile(
        JOURNEY
        + """
@pytest.mark.load(users=2, duration="60s")
def test_long(load):
    load.run(browse)
"""
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--perf-base-url", target, "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    time.sleep(4)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output  # pytest's "interrupted"
    assert "KeyboardInterrupt" in output
    assert "INTERRUPTED: partial results" in output, output
    row = next(line for line in output.splitlines() if line.startswith("test_ctrl_c") and "::test_long " in line)
    assert int(row.split()[1].replace(",", "")) > 10


def test_declared_slos_from_marker_slo_marker_and_ini(pytester: pytest.Pytester, target: str) -> None:
    pytester.makepyfile(
        """
import pytest
from pytest_shopflow_perf import Slo

async def ok(user):
    await user.client.get("/delay/5")
    await user.client.get("/status/503", extensions={"name": "fail"})
    await user.think(0.01)

@pytest.mark.load(users=1, duration="1s", slo=["p(95)<1s"])
def test_marker_passes(load):
    result = load.run(ok)
    assert [o["threshold"] for o in result.extra["slo"]] == ["p(95)<1s"]

@pytest.mark.slo("error_rate<1%", "fail: p(99)<1s")
@pytest.mark.load(users=1, duration="1s")
def test_slo_marker_fails(load):
    load.run(ok)

@pytest.mark.load(users=1, duration="1s")
def test_ini_applies(load):
    load.run(ok)

@pytest.mark.load(users=1, duration="20s", slo=[Slo("fail: error_rate<10%", abort=True, grace="1s")])
def test_abort(load):
    load.run(ok)

@pytest.mark.load(users=1, duration="1s", slo=["p95<1s"])
def test_bad_expression(load):
    load.run(ok)
"""
    )
    pytester.makeini("[pytest]\nperf_slo =\n    error_rate<90%\n    rps>100000\n")
    started = time.monotonic()
    result = run(pytester, "--perf-base-url", target)
    assert time.monotonic() - started < 20  # the abort ended its 20 s run early
    result.assert_outcomes(passed=1, failed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_bad_expression*",
            "*@pytest.mark.load(slo=...): cannot read SLO expression 'p95<1s'*",
            "*test_slo_marker_fails*",
            "*SLO breached: 2 of 2 threshold(s) failed*",
            "*error_rate*total*50.00 %*error_rate<1%*",
            "*p99*fail*no successful request was measured in the run*",  # latency is of successes
            "*test_ini_applies*",
            "*SLO breached: 1 of 2 threshold(s) failed*",
            "*rps*total*req/s*rps>100000*",
            "*test_abort*",
            "*load aborted early: 'fail: error_rate<10%' is breached beyond recovery after *",
        ]
    )

"""``workers=N``: one load test on N shard processes, merged into one result, as a user runs it.

Each inner run is a pytest process of its own (numpy and the event loop do not survive in-process reruns).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals"),
    pytest.mark.usefixtures("inner_ini"),
]


JOURNEY = """
import os, pytest

async def browse(user):
    await user.client.get("/delay/5")
    await user.think(0, 0.02)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_two_shards_are_one_result_in_every_report(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(
        test_two=JOURNEY
        + """
@pytest.mark.load(users=5, duration="2s", workers=2)
def test_browse(load):
    result = load.run(browse)
    assert [shard.worker for shard in result.shards] == ["local:0", "local:1"]
    assert [shard.users for shard in result.shards] == [3, 2]
    assert sum(shard.requests for shard in result.shards) == result.requests > 0
    assert result.generator.users_started == 5
    assert not result.lost_shards
"""
    )
    outcome = pytester.runpytest_subprocess(
        "--perf-base-url", delay_server, "--perf-report-dir", "out", "-v", "--html=report.html", "--self-contained-html"
    )
    outcome.assert_outcomes(passed=1)
    outcome.stdout.fnmatch_lines(
        [
            "test_two.py::test_browse (closed model, *, 5 users peak, 2 shards)",
            "  2 shards, merged in the figures above:",
            "    shard *users*requests*errors*CPU %*lag p99 ms*state",
            "    local:0 * 3 * ok",
            "    local:1 * 2 * ok",
        ]
    )
    record = json.loads((pytester.path / "out" / "test_two.py__test_browse.json").read_text())
    assert [shard["worker"] for shard in record["shards"]] == ["local:0", "local:1"]
    assert record["profile"]["workers"] == 2
    summary = (pytester.path / "out" / "summary.md").read_text()
    assert "## Load generation (shards)" in summary
    assert "| test_two.py::test_browse | local:1 | 2 |" in summary
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "Load generation: 2 shards" in html
    assert "local:1" in html


def test_a_killed_shard_is_lost_and_the_test_inconclusive(pytester: pytest.Pytester, delay_server: str) -> None:
    """User 1 runs on shard 1 (shard i runs users i, i + n, ...): its process dies 1.5 s into the run."""
    pytester.makepyfile(
        test_lost=JOURNEY
        + """
import signal, time
from pytest_shopflow_perf import assert_slo

FIRST = {}

async def dies(user):
    await browse(user)
    if user.id == 1 and time.monotonic() - FIRST.setdefault("t", time.monotonic()) > 1.5:
        os.kill(os.getpid(), signal.SIGKILL)

@pytest.mark.load(users=2, duration="4s", workers=2)
def test_browse(load):
    result = load.run(dies)
    lost = result.lost_shards
    assert [shard.worker for shard in lost] == ["local:1"]
    assert lost[0].lost_at_s is not None and 1.5 < lost[0].lost_at_s < 4
    assert "SIGKILL" in lost[0].note
    assert result.duration < 5  # the run went on with shard 0 and ended on time
    assert result.shards[0].requests > result.shards[1].requests > 0  # what it measured until then is kept
    assert_slo(result, "p(95)<5s")
"""
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server, "-rs", "-v")
    outcome.assert_outcomes(skipped=1)
    outcome.stdout.fnmatch_lines(["*SHARD LOST: local:1 lost at *", "    local:1 * LOST: lost at *"])
    outcome.stdout.fnmatch_lines(["*inconclusive: shard local:1 lost at *(process killed by SIGKILL)*"])


@pytest.mark.parametrize(
    ("where", "args", "env"),
    [
        ("@pytest.mark.load", (), {}),
        ("command line", ("--perf-workers", "0"), {}),
        ("environment (SHOPFLOW_PERF_WORKERS)", (), {"SHOPFLOW_PERF_WORKERS": "some"}),
    ],
)
def test_bad_workers_name_the_accepted_forms(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str, args: tuple[str, ...], env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    marker = 'workers="many"' if where.startswith("@") else "users=1"
    pytester.makepyfile(
        test_bad=JOURNEY
        + f"""
@pytest.mark.load({marker}, duration="1s")
def test_browse(load):
    load.run(browse)
"""
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", "http://127.0.0.1:9", *args)
    outcome.assert_outcomes(errors=1)
    outcome.stdout.fnmatch_lines([f'*{where}*workers=*is not valid*whole number of processes >= 1 or "auto"*'])


def test_environment_and_command_line_override_the_marker_and_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, delay_server: str
) -> None:
    monkeypatch.setenv("SHOPFLOW_PERF_WORKERS", "2")
    pytester.makeini("[pytest]\nperf_workers = 3\n")
    pytester.makepyfile(
        test_prec=JOURNEY
        + """
@pytest.mark.load(users=3, duration="1s", workers=1)
def test_browse(load):
    result = load.run(browse)
    print("SHARDS", len(result.shards), result.profile["workers"])
"""
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server, "-s")
    outcome.stdout.fnmatch_lines(["*SHARDS 2 2"])
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server, "-s", "--perf-workers", "3")
    outcome.stdout.fnmatch_lines(["*SHARDS 3 3"])


def test_what_cannot_reach_a_shard_is_named(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(
        test_pickle="""
import threading, pytest

LOCK = threading.Lock()

async def guarded(user):
    with LOCK:
        await user.client.get("/")

@pytest.mark.load(users=2, duration="1s", workers=2)
def test_lock(load):
    load.run(guarded)

@pytest.mark.load(users=2, duration="1s", workers=2)
def test_app(load):
    load.run(guarded, app=object())
"""
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server)
    outcome.assert_outcomes(failed=2)
    outcome.stdout.fnmatch_lines(
        [
            "*journey guarded cannot be sent to a shard process*lock*",
            "*workers=2 with app=*each shard process would drive its own copy*",
        ]
    )


@pytest.fixture
def started(pytester: pytest.Pytester) -> Iterator[list[subprocess.Popen[str]]]:
    """pytest processes started by a test; killed if a test leaves them running, and their shards too."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    for pid in _shard_pids(pytester.path):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


LONG_RUN = """
import os, pytest

async def browse(user):
    marker = f"shard-{os.getpid()}.pid"
    if not os.path.exists(marker):
        open(marker, "w").close()
    await user.client.get("/delay/5")
    await user.think(0.01)

@pytest.mark.load(users=4, duration="30s", workers=2)
def test_long(load):
    load.run(browse)
"""


def _shard_pids(path: Path) -> list[int]:
    return [int(p.name.split("-")[1].split(".")[0]) for p in path.glob("shard-*.pid")]


def _start(pytester: pytest.Pytester, processes: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    pytester.makepyfile(test_long=LONG_RUN)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        *args,
    ]
    process = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    processes.append(process)
    deadline = time.monotonic() + 60
    while len(_shard_pids(pytester.path)) < 2:
        assert process.poll() is None, "pytest ended before its shards ran a journey"
        assert time.monotonic() < deadline, "the shards never ran a journey"
        time.sleep(0.1)
    time.sleep(1)
    return process


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_every_shard_and_keeps_what_was_measured(
    pytester: pytest.Pytester, started: list[subprocess.Popen[str]], delay_server: str, signum: int
) -> None:
    process = _start(pytester, started, "--perf-base-url", delay_server, "--perf-report-dir", "out")
    process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    assert "INTERRUPTED: partial results" in output, output
    record = json.loads((pytester.path / "out" / "test_long.py__test_long.json").read_text())
    assert record["interrupted"] is True
    assert record["total"]["requests"] > 0
    assert [shard["worker"] for shard in record["shards"]] == ["local:0", "local:1"]
    assert not any(shard["lost"] for shard in record["shards"])  # stopped, not lost: their figures are in
    assert _gone(_shard_pids(pytester.path), within=5)


def test_no_shard_outlives_a_killed_pytest(
    pytester: pytest.Pytester, started: list[subprocess.Popen[str]], delay_server: str
) -> None:
    process = _start(pytester, started, "--perf-base-url", delay_server)
    process.kill()
    process.communicate(timeout=30)
    assert _gone(_shard_pids(pytester.path), within=15)  # its pipe closed: the shard stops gracefully


def test_faults_and_abort_on_fail_follow_the_shards_clock(pytester: pytest.Pytester, delay_server: str) -> None:
    """The fault proxy (in the pytest process) starts on the shards' clock; an abort threshold sees the merge."""
    pytester.makepyfile(
        test_live="""
import pytest
from pytest_shopflow_perf import Slo
from pytest_shopflow_perf.faults import latency

async def browse(user):
    await user.client.get("/delay/5")
    await user.think(0.01)

async def fails(user):
    await user.client.get("/status/500")
    await user.think(0.01)

@pytest.mark.load(users=4, duration="4s", workers=2, faults=[latency("100ms", at="2s", until="3s")])
def test_fault(load):
    result = load.run(browse)
    windows = {round(w.t): w for w in result.timeline}
    assert windows[0].p50 < 0.05
    assert windows[1].p50 < 0.05
    assert windows[2].p50 >= 0.1  # the whole second of the fault, on both shards
    assert windows[3].p50 < 0.05

@pytest.mark.load(users=4, duration="30s", workers=2, slo=[Slo("error_rate<5%", abort=True)])
def test_abort(load):
    load.run(fails)
"""
    )
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-report-dir", "out")
    outcome.assert_outcomes(passed=1, failed=1)
    outcome.stdout.fnmatch_lines(["*load aborted early*error_rate<5%*"])
    record = json.loads((pytester.path / "out" / "test_live.py__test_abort.json").read_text())
    assert record["duration_s"] < 15  # aborted within seconds, not after 30 s


def test_a_shard_refuses_a_target_off_loopback_before_any_packet() -> None:
    """The rule is checked where the packets would leave (a worker process, a cluster worker), not only here.

    Either shard may be the first to say so: the message names the one that did.
    """
    from support.engine import run_sharded

    from pytest_shopflow_perf.engine.shards.wire import ShardError

    async def journey(user):
        await user.client.get("/")

    with pytest.raises(ShardError, match=r"shard local:[01] could not start .*\n.*TargetError: refusing.*10\.1\.2\.3"):
        run_sharded(journey, workers=2, base_url="http://10.1.2.3:8080", users=2, duration="1s")

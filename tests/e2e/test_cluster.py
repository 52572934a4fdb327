"""``--perf-cluster``: the shards run as tasks on a real Dask scheduler and workers started here, on loopback."""

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

pytest.importorskip("distributed")

pytest_plugins = ["pytester"]

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals"),
    pytest.mark.usefixtures("inner_ini"),
]

DASK = str(Path(sys.executable).with_name("dask"))


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, stopped whatever happens."""

    def __init__(self, directory: Path, workers: int) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []
        try:
            self._start(workers)
        except BaseException:
            self.stop()
            raise

    def _start(self, workers: int) -> None:
        directory = self.directory
        scheduler_file = directory / "scheduler.json"
        common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": directory}
        self.processes.append(
            subprocess.Popen(
                [
                    DASK,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                **common,
            )
        )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.2)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(workers):
            self.processes.append(
                subprocess.Popen(
                    [
                        DASK,
                        "worker",
                        self.address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--dashboard-address",
                        "127.0.0.1:0",
                        "--host",
                        "127.0.0.1",
                    ],
                    **common,
                )
            )
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path, workers=2)
    try:
        yield started
    finally:
        started.stop()


TEST_MODULE = """
import os, pytest, httpx
from pytest_shopflow_perf.metrics.hdr import new_histogram

TAG = "cluster-accuracy"

async def browse(user):  # defined here: the Dask workers cannot import this module, it travels by value
    marker = f"shard-{os.getpid()}.pid"
    if not os.path.exists(marker):
        open(marker, "w").close()
    await user.client.get(f"/delay/50?tag={TAG}")
    await user.think(0, 0.025)

@pytest.mark.load(users=4, duration="3s")
def test_accuracy(load):
    result = load.run(browse)
    workers = [shard.worker for shard in result.shards]
    assert len(workers) == 2 and len(set(workers)) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    told = httpx.get(f"{load.base_url}/truth?tag={TAG}").json()
    truth = new_histogram()
    for service_us in told["service_us"]:
        truth.record_value(service_us)
    assert result.requests == sum(told["statuses"].values()) >= 100
    for q in (50, 90, 99):
        true_ms = truth.get_value_at_percentile(q) / 1000
        measured_ms = result.percentile(q) * 1000
        assert true_ms - 0.1 <= measured_ms <= true_ms + 2.0 + 0.05 * true_ms, (q, measured_ms, true_ms)
"""


def test_two_shards_on_two_workers_are_accurate(pytester: pytest.Pytester, cluster: Cluster, delay_server: str) -> None:
    pytester.makepyfile(test_on_cluster=TEST_MODULE)
    outcome = pytester.runpytest_subprocess("--perf-base-url", delay_server, "--perf-cluster", cluster.address, "-v")
    outcome.assert_outcomes(passed=1)
    outcome.stdout.fnmatch_lines(["*2 shards, merged in the figures above:*", "    tcp://127.0.0.1:* ok"])
    assert len(list(cluster.directory.glob("shard-*.pid"))) == 2  # two worker processes ran it (their cwd)


def test_a_killed_worker_is_a_lost_shard_and_the_run_ends_on_time(
    pytester: pytest.Pytester, cluster: Cluster, delay_server: str
) -> None:
    pytester.makepyfile(
        test_kill="""
import os, pytest
from pytest_shopflow_perf import assert_slo

async def browse(user):
    marker = f"shard-{os.getpid()}.pid"
    if not os.path.exists(marker):
        open(marker, "w").close()
    await user.client.get("/delay/5")
    await user.think(0.01)

@pytest.mark.load(users=2, duration="8s")
def test_browse(load):
    result = load.run(browse)
    lost = result.lost_shards
    assert len(lost) == 1 and "lost" in lost[0].note
    assert result.duration < 12
    assert_slo(result, "p(95)<5s")
"""
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-rs",
        "--perf-base-url",
        delay_server,
        "--perf-cluster",
        cluster.address,
    ]
    process = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(pids := list(cluster.directory.glob("shard-*.pid"))) < 2:
            assert process.poll() is None, "pytest ended before both shards ran"
            assert time.monotonic() < deadline, "the shards never ran a journey"
            time.sleep(0.1)
        time.sleep(2)
        os.kill(int(pids[0].name.split("-")[1].split(".")[0]), signal.SIGKILL)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "inconclusive: shard tcp://127.0.0.1:" in output, output
    assert "1 skipped" in output, output


def test_an_unreachable_scheduler_is_a_clear_error_before_any_load(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_none="""
import pytest

async def browse(user):
    await user.client.get("/")

@pytest.mark.load(users=1, duration="1s")
def test_browse(load):
    load.run(browse)
"""
    )
    outcome = pytester.runpytest_subprocess(
        "--perf-base-url", "http://127.0.0.1:9", "--perf-cluster", "tcp://127.0.0.1:9"
    )
    outcome.assert_outcomes(failed=1)
    outcome.stdout.fnmatch_lines(["*the Dask scheduler at tcp://127.0.0.1:9 is unreachable*dask scheduler*"])


def test_a_local_cluster_of_processes_runs_the_shards(delay_server: str) -> None:
    """``distributed.LocalCluster`` (worker processes): the coordinator used directly, as the fixture does."""
    import anyio
    from distributed import LocalCluster
    from support.engine import profile

    from pytest_shopflow_perf.engine.shards.cluster import connect
    from pytest_shopflow_perf.engine.shards.coordinator import ShardedEngine

    async def journey(user):  # a local function: it can only reach the workers by value
        await user.client.get("/delay/20")
        await user.think(0, 0.025)

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        client = connect(local.scheduler_address)
        workers = sorted(local.scheduler_info["workers"])
        try:
            engine = ShardedEngine(
                profile(users=4, duration="2s"), journey, workers=2, base_url=delay_server, cluster=client
            )
            result = anyio.run(engine.run)
        finally:
            client.close()
    assert sorted(shard.worker for shard in result.shards) == workers
    assert sum(shard.requests for shard in result.shards) == result.requests > 50
    assert 0.020 <= result.percentile(50) <= 0.020 + 0.002 + 0.05 * 0.020


def test_faults_and_abort_on_fail_work_on_the_cluster(
    pytester: pytest.Pytester, cluster: Cluster, delay_server: str
) -> None:
    """The fault proxy starts on the shards' agreed clock; an abort threshold reads the merged windows."""
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

@pytest.mark.load(users=4, duration="4s", faults=[latency("100ms", at="2s", until="3s")])
def test_fault(load):
    result = load.run(browse)
    assert len({shard.worker for shard in result.shards}) == 2
    windows = {round(w.t): w for w in result.timeline}
    assert windows[1].p50 < 0.05
    assert windows[2].p50 >= 0.1
    assert windows[3].p50 < 0.05

@pytest.mark.load(users=4, duration="30s", slo=[Slo("error_rate<5%", abort=True)])
def test_abort(load):
    load.run(fails)
"""
    )
    outcome = pytester.runpytest_subprocess(
        "--perf-base-url", delay_server, "--perf-cluster", cluster.address, "--perf-report-dir", "out"
    )
    outcome.assert_outcomes(passed=1, failed=1)
    outcome.stdout.fnmatch_lines(["*load aborted early*error_rate<5%*"])
    record = json.loads((pytester.path / "out" / "test_live.py__test_abort.json").read_text())
    assert record["duration_s"] < 15

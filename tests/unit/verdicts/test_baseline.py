"""Baseline files: names, reading, atomic appends, environment fingerprint, git commit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_shopflow_perf.verdicts import baseline as baseline_module
from pytest_shopflow_perf.verdicts.baseline import (
    BASELINE_SCHEMA,
    RUN_SCHEMA,
    BaselineError,
    append_run,
    baseline_path,
    environment_fingerprint,
    git_commit,
    load_baseline,
)

NODE = "tests/performance/test_x.py::test_peak[a]"


def run_record(n: int) -> dict:
    stats = {
        "requests": n,
        "errors": 0,
        "rps": float(n),
        "p95_ms": 100.0,
        "windows": {"t_s": [0.0], "count": [n]},
    }
    return {
        "schema": RUN_SCHEMA,
        "started_at": f"2026-11-22T00:00:{n:02d}Z",
        "duration_s": 1.0,
        "profile": {},
        "environment": {},
        "total": stats,
        "endpoints": {"GET /x": stats},
    }


# ---- names -------------------------------------------------------------------------------


def test_baseline_path_is_readable_and_stable(tmp_path):
    path = baseline_path(tmp_path, NODE)
    assert path == tmp_path / "tests_performance_test_x.py__test_peak_a_.json"
    assert baseline_path(tmp_path, NODE) == path
    assert baseline_path(tmp_path, "tests/test_y.py::TestA::test_b") == tmp_path / "tests_test_y.py__TestA__test_b.json"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("t.py::test[a b]", "t.py::test[a?b]"),
        ("t.py::test[ä]", "t.py::test[ö]"),
        ("t.py::test[a:b]", "t.py::test[a*b]"),
        ("t.py::test[" + "x" * 300 + "1]", "t.py::test[" + "x" * 300 + "2]"),
    ],
)
def test_lossy_names_get_a_hash_and_do_not_collide(tmp_path, first, second):
    a, b = baseline_path(tmp_path, first), baseline_path(tmp_path, second)
    assert a != b
    for path in (a, b):
        assert re.fullmatch(r"[A-Za-z0-9._-]+-[0-9a-f]{8}\.json", path.name), path.name
        assert len(path.name) <= 200


def test_names_are_file_system_safe(tmp_path):
    for nodeid in ["", ".hidden", "-rf", "a/../../b", "C:\\x::y", 't.py::test[<>|"*?]']:
        path = baseline_path(tmp_path, nodeid)
        assert path.parent == tmp_path
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*\.json", path.name), path.name
        path.write_text("{}")  # creatable on this file system


# ---- reading -----------------------------------------------------------------------------


def test_missing_file_is_none(tmp_path):
    assert load_baseline(tmp_path / "nope.json") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema": "shopflow-perf/baseline/1", "runs": [', "corrupt baseline file"),
        ("\x00\xff", "corrupt baseline file"),
        ('{"schema": "shopflow-perf/baseline/7", "runs": []}', "unsupported schema version"),
        ('{"schema": "pytest-benchmark", "runs": []}', "expected 'shopflow-perf/baseline/1'"),
        ('{"schema": "shopflow-perf/baseline/1", "runs": [{"schema": "shopflow-perf/run/1"}]}', '"total"'),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_unusable_file_is_an_error_naming_the_file_and_the_fix(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(BaselineError) as excinfo:
        load_baseline(path)
    text = str(excinfo.value)
    assert str(path) in text
    assert message in text
    assert "--perf-save-baseline" in text
    assert "git checkout" in text


def test_file_of_another_test_is_refused(tmp_path):
    path = tmp_path / "b.json"
    append_run(path, "t.py::test_one", run_record(1))
    assert load_baseline(path, nodeid="t.py::test_one") is not None
    with pytest.raises(BaselineError, match=r"holds the baseline of 't\.py::test_one', not of 't\.py::test_two'"):
        load_baseline(path, nodeid="t.py::test_two")
    with pytest.raises(BaselineError, match="test_one"):
        append_run(path, "t.py::test_two", run_record(2))


# ---- writing -----------------------------------------------------------------------------


def test_append_creates_keeps_order_and_trims(tmp_path):
    path = tmp_path / "deep" / "dir" / "b.json"
    for n in range(1, 8):
        written = append_run(path, NODE, run_record(n), keep=5)
    assert [r["total"]["requests"] for r in written["runs"]] == [3, 4, 5, 6, 7]  # oldest first, newest 5
    loaded = load_baseline(path, nodeid=NODE)
    assert loaded == written
    assert loaded["schema"] == BASELINE_SCHEMA
    assert loaded["test"] == NODE


def test_file_layout_is_valid_json_with_one_line_per_run(tmp_path):
    path = tmp_path / "b.json"
    append_run(path, NODE, run_record(1))
    append_run(path, NODE, run_record(2))
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    json.loads(text)
    run_lines = [line for line in text.splitlines() if RUN_SCHEMA in line]
    assert len(run_lines) == 2
    assert all(json.loads(line.strip().rstrip(",")) for line in run_lines)


def test_append_keeps_extra_top_level_fields(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": BASELINE_SCHEMA, "test": NODE, "runs": [], "comment": "keep me"}))
    assert append_run(path, NODE, run_record(1))["comment"] == "keep me"
    assert load_baseline(path)["comment"] == "keep me"


def test_corrupt_file_is_never_overwritten(tmp_path):
    path = tmp_path / "b.json"
    path.write_text("{ not json")
    with pytest.raises(BaselineError, match="corrupt"):
        append_run(path, NODE, run_record(1))
    assert path.read_text() == "{ not json"


def test_invalid_run_record_writes_nothing(tmp_path):
    path = tmp_path / "b.json"
    with pytest.raises(BaselineError, match="run record to save"):
        append_run(path, NODE, {"schema": "shopflow-perf/run/1"})
    bad = run_record(1)
    bad["duration_s"] = float("nan")
    with pytest.raises(BaselineError, match="not JSON-safe"):
        append_run(path, NODE, bad)
    assert list(tmp_path.iterdir()) == []


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="keep"):
        append_run(tmp_path / "b.json", NODE, run_record(1), keep=0)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "b.json"
    append_run(path, NODE, run_record(1))
    before = path.read_bytes()
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    def crash(src: object, dst: object) -> None:
        assert Path(str(src)).parent == path.parent  # the temp file sits next to the target
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        append_run(path, NODE, run_record(2))
    assert path.read_bytes() == before  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # and no temp file is left behind
    assert synced  # the data was flushed to disk before the rename
    monkeypatch.undo()
    append_run(path, NODE, run_record(2))
    assert len(load_baseline(path)["runs"]) == 2


def test_new_file_mode_follows_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        path = tmp_path / "b.json"
        append_run(path, NODE, run_record(1))
        assert path.stat().st_mode & 0o777 == 0o644  # not the 0o600 of a typical temp file
    finally:
        os.umask(umask)


# ---- environment and git -----------------------------------------------------------------


def test_environment_fingerprint():
    env = environment_fingerprint()
    json.dumps(env, allow_nan=False)
    assert {"cpu_model", "cpu_count", "python", "platform", "plugin_version", "fingerprint"} <= set(env)
    assert isinstance(env["cpu_count"], int)
    assert env["cpu_count"] >= 1
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", env["fingerprint"])
    assert environment_fingerprint()["fingerprint"] == env["fingerprint"]


def test_fingerprint_covers_what_moves_latency(monkeypatch):
    before = environment_fingerprint()
    monkeypatch.setattr(baseline_module, "_cpu_model", lambda: "A completely different CPU")
    assert environment_fingerprint()["fingerprint"] != before["fingerprint"]
    monkeypatch.undo()
    monkeypatch.setattr(baseline_module, "_plugin_version", lambda: "99.0")
    assert environment_fingerprint()["fingerprint"] == before["fingerprint"]  # upgrades keep baselines


def test_plugin_version_falls_back(monkeypatch):
    import importlib.metadata

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert environment_fingerprint()["plugin_version"] == "unknown"


def test_git_commit_outside_a_repository_or_without_git(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_commit(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))
    assert git_commit() is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_in_a_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    assert git_commit(tmp_path) is None  # no commit yet
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    commit = git_commit(tmp_path)
    assert commit is not None
    assert re.fullmatch(r"[0-9a-f]{40}", commit)


# ---- data safety -------------------------------------------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "-Infinity", "Infinity"])
def test_non_finite_numbers_are_rejected_on_load(tmp_path, constant):
    path = tmp_path / "b.json"
    append_run(path, NODE, run_record(1))
    path.write_text(path.read_text().replace('"p95_ms": 100.0', f'"p95_ms": {constant}'))
    with pytest.raises(BaselineError, match=rf"{path}.*{constant}"):
        load_baseline(path)


@pytest.mark.parametrize(
    ("total", "message"),
    [({}, 'run 1 total: "requests"'), ({"requests": 3}, 'run 1 total: "errors"'),
     ({"requests": "3", "errors": 0}, 'runs[1].total.requests: expected a whole number >= 0, got "3"'),
     ({"requests": 3, "errors": 0, "p95_ms": "fast"}, 'runs[1].total.p95_ms: expected a number, got "fast"')],
)  # fmt: skip
def test_empty_or_mistyped_statistics_are_rejected_naming_file_run_and_field(tmp_path, total, message):
    path = tmp_path / "b.json"
    append_run(path, NODE, run_record(1))
    data = json.loads(path.read_text())
    data["runs"].append({**run_record(2), "total": total})
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError) as error:
        load_baseline(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def _edited(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["runs"][1]["endpoints"]["GET /x"].update(p95_ms="fast"),
         'runs[1].endpoints["GET /x"].p95_ms: expected a number, got "fast"'),
        (lambda d: d["runs"][0].update(duration_s="long"), 'runs[0].duration_s: expected a number, got "long"'),
        (lambda d: d["runs"][0].update(environment=["x"]), "runs[0].environment: expected an object, got a list"),
        (lambda d: d["runs"][1]["endpoints"].update({"GET /y": [1, 2]}),
         'runs[1].endpoints["GET /y"]: expected an object, got a list'),
        (lambda d: d["runs"][0]["environment"].update(git_commit=42),
         "runs[0].environment.git_commit: expected a string, got 42"),
        (lambda d: d["runs"][0]["total"]["windows"].update(count=[1, "2"]),
         'runs[0].total.windows.count[1]: expected a whole number >= 0, got "2"'),
        (lambda d: d["runs"][0]["total"]["windows"].update(count=[1]),
         "runs[0].total.windows: the per-window lists differ in length (t_s 2, count 1"),
        (lambda d: d["runs"][0]["generator"].update(saturated="no"),
         'runs[0].generator.saturated: expected true or false, got "no"'),
        (lambda d: d["runs"][0]["profile"].update(stages="fast"),
         'runs[0].profile.stages: expected a list, got "fast"'),
        (lambda d: d.update(runs={"0": {}}), "runs: expected a list, got an object"),
    ],
)  # fmt: skip
def test_wrong_field_types_are_refused_on_load_naming_the_field_path_and_the_fix(tmp_path, edit, message):
    path = tmp_path / "b.json"
    for n in (1, 2):
        record = run_record(n)
        record["endpoints"] = {"GET /x": dict(record["total"])}
        record["environment"] = {"fingerprint": "sha256:x", "git_commit": "a" * 40}
        record["generator"] = {"saturated": False, "reasons": []}
        record["profile"] = {"users": 1, "stages": [[1.0, 1.0]]}
        record["total"]["windows"] = {"t_s": [0.0, 1.0], "count": [1, 1], "errors": [0, 0]}
        append_run(path, NODE, record)
    load_baseline(path)  # the file as written is fine
    _edited(path, edit)
    with pytest.raises(BaselineError) as error:
        load_baseline(path)
    text = str(error.value)
    assert text.startswith(f"{path}: 1 field(s) of the baseline have the wrong type: ")
    assert message in text
    assert "correct them by hand, or restore it from version control" in text


def test_every_type_problem_is_counted_and_the_first_three_named(tmp_path):
    path = tmp_path / "b.json"
    append_run(path, NODE, run_record(1))
    _edited(path, lambda d: d["runs"][0]["total"].update(rps="a", mean_ms="b", p50_ms="c", p90_ms="d"))
    with pytest.raises(BaselineError, match=r"4 field\(s\) .*: runs\[0\]\.total\.rps: .*\(and 1 more\)"):
        load_baseline(path)


def test_committed_baselines_pass_the_type_checks():
    directory = Path(__file__).parents[3] / "baselines"
    files = sorted(directory.glob("*.json"))
    assert files
    for path in files:
        assert load_baseline(path) is not None


def _save_five(path: str, barrier: object, worker: int) -> None:
    for round_ in range(5):
        barrier.wait()  # type: ignore[attr-defined]
        append_run(Path(path), NODE, run_record(10 * worker + round_), keep=100)


def test_concurrent_saves_keep_every_run_and_leave_no_lock_in_the_directory(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    path = tmp_path / "b.json"
    barrier = context.Barrier(2)
    workers = [context.Process(target=_save_five, args=(str(path), barrier, w)) for w in (1, 2)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join(timeout=60)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
    assert len(load_baseline(path)["runs"]) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


def test_a_comparison_error_names_the_baseline_file(tmp_path):
    from types import SimpleNamespace

    from pytest_shopflow_perf.plugin.session import PerfSession

    path = tmp_path / "b.json"
    bad = run_record(1)
    bad["total"] = {**bad["total"], "windows": "none"}
    path.write_text(json.dumps({"schema": "shopflow-perf/baseline/1", "test": NODE, "runs": [bad]}))
    session = SimpleNamespace(
        settings=SimpleNamespace(fail_on="major", no_compare=False),
        baseline_file=lambda test: path,
        policy=None,
        config=SimpleNamespace(rootpath=tmp_path),
    )
    result = SimpleNamespace(test=NODE, extra={}, to_dict=lambda: run_record(2))
    with pytest.raises(BaselineError, match=rf"^{path}: .*windows"):
        PerfSession.compare_with_baseline(session, result)  # type: ignore[arg-type]


def test_saturated_baseline_runs_are_left_out_of_the_comparison(tmp_path):
    from types import SimpleNamespace

    from pytest_shopflow_perf.plugin.session import PerfSession

    path = tmp_path / "b.json"
    append_run(path, NODE, run_record(5))
    append_run(path, NODE, {**run_record(6), "generator": {"saturated": True}})
    session = SimpleNamespace(
        settings=SimpleNamespace(fail_on="major", no_compare=False),
        baseline_file=lambda test: path,
        policy=None,
        config=SimpleNamespace(rootpath=tmp_path),
    )
    result = SimpleNamespace(test=NODE, extra={}, to_dict=lambda: run_record(5))
    PerfSession.compare_with_baseline(session, result)  # type: ignore[arg-type]
    verdict = result.extra["regression"]
    assert verdict["baseline_runs"] == 1
    assert any("saturated generator were left out" in note for note in verdict["notes"])


def test_no_regression_verdict_on_a_saturated_run():
    from types import SimpleNamespace

    from pytest_shopflow_perf import assert_no_regression

    result = SimpleNamespace(
        test=NODE,
        generator=SimpleNamespace(saturated=True, reasons=("generator CPU 99 %",)),
        extra={"regression": {"tier": "critical", "findings": [], "notes": [], "baseline_runs": 3}},
        lost_shards=[],
    )
    with pytest.raises(pytest.skip.Exception, match="inconclusive"):
        assert_no_regression(result)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", [{"users": 2, "iterations": 20}, {"rate": 50, "duration": "300ms", "max_users": 5}])
def test_the_records_the_plugin_writes_pass_its_own_type_checks(model):
    """The type table follows the run record: a field whose form changes must change there too."""
    import httpx
    from support.engine import run

    from pytest_shopflow_perf.result.record_types import RUN_TYPES, type_problems

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.path == "/fail" else 200)

    async def journey(user):
        await user.client.get("/x")
        await user.client.get("/fail")
        user.check(False, "cart has items")

    result = run(journey, transport_factory=lambda: httpx.MockTransport(handler), **model)
    record = result.to_dict()
    assert isinstance(record["target"], dict)
    assert type_problems(record, RUN_TYPES) == []
    assert type_problems({**record, "target": "http://127.0.0.1:1"}, RUN_TYPES) == []  # records before targets
    assert type_problems({**record, "target": 7}, RUN_TYPES) == [
        "target: expected a URL or an object of url, source and label, got 7"
    ]

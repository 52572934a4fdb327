"""Per-session state of the plugin, kept in one object in ``config.stash``.

Created on the first load test (:func:`perf_session`), as xdist creates its ``DSession`` only when it
distributes: a pytest run without load tests never builds it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf._errors import hide_own_errors
from pytest_shopflow_perf.plugin.keys import perf_session_key, settings_key
from pytest_shopflow_perf.plugin.options import regression_policy
from pytest_shopflow_perf.plugin.reports import collected_runs, reason_of
from pytest_shopflow_perf.profile.resolve import LoadProfile, ProfileError, Source, env_source, resolve_profile
from pytest_shopflow_perf.target.embedded import DEFAULT_APP, EmbeddedServer
from pytest_shopflow_perf.target.policy import TargetError, TargetPolicy

if TYPE_CHECKING:
    from pytest_shopflow_perf.faults.run import FaultPlan
    from pytest_shopflow_perf.result.model import LoadResult
    from pytest_shopflow_perf.result.target import RunTarget
    from pytest_shopflow_perf.verdicts.assertions import Slo


class PerfSession:
    """Settings, the embedded target, and the results of every load test of this session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = config.stash[settings_key]
        self.results: dict[str, list[LoadResult]] = {}
        self.orphan_results: list[LoadResult] = []  # from tests interrupted before they had a report
        self.interrupted_reported: set[str] = set()  # tests whose reports plugin/interrupted.py sent
        self.server: EmbeddedServer | None = None
        self._cluster_client: Any = None  # a distributed.Client once a load test ran on --perf-cluster
        self._server_lock = threading.Lock()
        self._environment: dict[str, Any] | None = None
        # one policy for the session: its verdicts and resolutions are cached across runs
        self.target_policy = TargetPolicy(self.settings.allowed_hosts)
        self.policy = regression_policy(config)
        self._previous_sigterm: Any = None
        self.warnings: list[str] = []  # shown at the end of the terminal summary

    # ---- profile and target ----------------------------------------------------

    def resolve_profile(self, marker_kwargs: dict[str, Any], label: str) -> LoadProfile:
        __tracebackhide__ = hide_own_errors
        settings = self.settings
        cli_values = {
            "users": settings.cli_users,
            "duration": settings.cli_duration,
            "client": settings.cli_client,
            "workers": settings.cli_workers,
            "base_url": settings.base_url,
        }
        try:
            return resolve_profile(
                ini=Source("ini", settings.ini_profile),
                marker=Source(label, marker_kwargs),
                env=env_source(os.environ),
                cli=Source("command line", {k: v for k, v in cli_values.items() if v is not None}),
                scale=settings.scale,
                seed=settings.seed,
            )
        except ProfileError as exc:
            raise pytest.UsageError(str(exc)) from None

    def declared_slos(self, marker_slo: object, slo_markers: Iterable[pytest.Mark]) -> list[Slo]:
        """The test's SLOs (marker ``slo=``, ``@pytest.mark.slo``), else the suite's (ini ``perf_slo``)."""
        from pytest_shopflow_perf.verdicts.assertions import SloError, as_slos

        try:
            declared: list[Slo] = []
            if marker_slo is not None:
                items = [marker_slo] if isinstance(marker_slo, str) else marker_slo
                if not isinstance(items, Iterable):
                    raise SloError(f"slo={marker_slo!r} must be a list of expressions such as ['p(95)<500ms']")
                declared += as_slos(items, "@pytest.mark.load(slo=...)")
            has_marker = False
            for mark in slo_markers:
                has_marker = True
                declared += as_slos(mark.args, "@pytest.mark.slo")
            if marker_slo is not None or has_marker:
                return declared
            return as_slos(self.config.getini("perf_slo"), "ini perf_slo")
        except SloError as exc:
            raise pytest.UsageError(str(exc)) from None

    def declared_faults(self, marker_faults: object) -> FaultPlan:
        from pytest_shopflow_perf.faults.run import FaultPlan

        if marker_faults is None:
            return FaultPlan()
        if not isinstance(marker_faults, (list, tuple)):
            raise pytest.UsageError(
                f"@pytest.mark.load(faults={marker_faults!r}): expected a list, e.g. "
                'faults=[latency("300ms", at="10s", until="20s"), outage(at="30s", duration="5s")]'
            )
        try:
            return FaultPlan(marker_faults)
        except TypeError as exc:
            raise pytest.UsageError(f"@pytest.mark.load(faults=...): {exc}") from None

    def base_url_for(self, profile: LoadProfile) -> str:
        """The profile's target URL, or the embedded service's, started on first use."""
        __tracebackhide__ = hide_own_errors
        return self.target_for(profile).url

    def target_for(self, profile: LoadProfile, *, from_run: bool = False, test: str = "") -> RunTarget:
        """The profile's target and why (``--perf-base-url``, a marker...), or the embedded service.

        With ini ``perf_embedded = false`` and no target given, a usage error naming the ways to give one.
        """
        __tracebackhide__ = hide_own_errors
        from pytest_shopflow_perf.plugin import targets

        target = targets.of_profile(profile, self.config, from_run=from_run)
        if target is None:
            if not self.settings.embedded and not self.settings.app:
                raise pytest.UsageError(targets.EMBEDDED_REFUSED.format(test=test or "this load test"))
            target = targets.embedded(self.start_embedded(), self.settings.app)
        try:
            self.target_policy.check_url(target.url)
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None
        return target

    def start_embedded(self) -> str:
        __tracebackhide__ = hide_own_errors
        with self._server_lock:
            if self.server is None or not self.server.running:
                self.server = EmbeddedServer(self.settings.app or DEFAULT_APP)
                try:
                    self.server.start()
                except TargetError as exc:
                    raise pytest.UsageError(
                        f"{exc}\nSet a target with --perf-base-url / SHOPFLOW_BASE_URL, or an app with --perf-app."
                    ) from None
                from pytest_shopflow_perf.plugin.progress import announce
                from pytest_shopflow_perf.plugin.targets import embedded

                announce(self.config, f"shopflow perf: started the {embedded(self.server.base_url, self.settings.app)}")
            return self.server.base_url

    def cluster_client(self) -> Any:
        """The Dask client of ``--perf-cluster``, connected on first use (versions checked) and kept for the session."""
        __tracebackhide__ = hide_own_errors
        if self._cluster_client is None:
            from pytest_shopflow_perf.engine.shards.cluster import connect
            from pytest_shopflow_perf.engine.shards.wire import ShardError

            assert self.settings.cluster is not None
            try:
                self._cluster_client = connect(self.settings.cluster)
            except ShardError as exc:
                raise pytest.UsageError(str(exc)) from None
        return self._cluster_client

    def stop(self) -> None:
        if self._cluster_client is not None:
            self._cluster_client.close()
            self._cluster_client = None
        if self.server is not None:
            self.server.stop()
        if self._previous_sigterm is not None:
            import signal

            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def install_sigterm(self) -> None:
        """Once the session has load tests, SIGTERM (a cancelled CI job) ends pytest like Ctrl-C.

        pytest then still writes its reports and stops the embedded service; without
        this, SIGTERM kills the process with nothing written and the service orphaned.
        """
        import signal

        if self._previous_sigterm is not None or threading.current_thread() is not threading.main_thread():
            return
        if not hasattr(signal, "SIGTERM"):
            return

        def handler(signum: int, frame: object) -> None:
            raise KeyboardInterrupt("SIGTERM")

        self._previous_sigterm = signal.signal(signal.SIGTERM, handler)

    def environment(self) -> dict[str, Any]:
        if self._environment is None:
            from pytest_shopflow_perf.verdicts.baseline import environment_fingerprint, git_commit

            self._environment = {**environment_fingerprint(), "git_commit": git_commit(self.config.rootpath)}
        return self._environment

    # ---- baselines ---------------------------------------------------------------

    def baseline_file(self, test: str) -> Path:
        from pytest_shopflow_perf.verdicts.baseline import baseline_path

        directory = Path(self.settings.baseline_dir)
        if not directory.is_absolute():
            directory = self.config.rootpath / directory
        return baseline_path(directory, test)

    def baseline_runs(self, test: str) -> tuple[str, list[dict[str, Any]]] | None:
        """The baseline ``test`` was compared with, as it was used (saturated runs left out), for the HTML overlays."""
        from pytest_shopflow_perf.verdicts.baseline import BaselineError, load_baseline

        path = self.baseline_file(test)
        try:
            baseline = load_baseline(path, nodeid=test)
        except BaselineError:
            return None
        if baseline is None:
            return None
        shown = path.relative_to(self.config.rootpath) if path.is_relative_to(self.config.rootpath) else path
        usable = [run for run in baseline["runs"] if not (run.get("generator") or {}).get("saturated")]
        return (str(shown), usable) if usable else None

    def compare_with_baseline(self, result: LoadResult) -> None:
        """Attach the regression verdict (or why there is none) for ``assert_no_regression`` and reports."""
        from pytest_shopflow_perf.verdicts.baseline import BaselineError, load_baseline
        from pytest_shopflow_perf.verdicts.regression import compare

        result.extra["regression_fail_on"] = self.settings.fail_on
        if self.settings.no_compare:
            result.extra["regression_note"] = "comparison disabled (--perf-no-compare)"
            return
        path = self.baseline_file(result.test)
        baseline = load_baseline(path, nodeid=result.test)  # BaselineError names the file
        shown = path.relative_to(self.config.rootpath) if path.is_relative_to(self.config.rootpath) else path
        if baseline is None:
            result.extra["regression_note"] = f"no baseline yet ({shown}); record one with --perf-save-baseline"
            return
        result.extra["baseline_file"] = str(shown)  # the reports name the file the run was judged against
        runs = baseline["runs"]
        usable = [run for run in runs if not (run.get("generator") or {}).get("saturated")]
        left_out = len(runs) - len(usable)
        if runs and not usable:
            result.extra["regression_note"] = (
                f"every run of the baseline {path} was measured by a saturated generator; nothing to compare"
            )
            return
        try:
            verdict = compare({**baseline, "runs": usable}, result.to_dict(), policy=self.policy).to_dict()
        except BaselineError as exc:
            raise BaselineError(f"{path}: {exc}") from exc
        if left_out:
            verdict.setdefault("notes", []).append(
                f"{left_out} baseline run(s) measured by a saturated generator were left out"
            )
        result.extra["regression"] = verdict

    def capacity_file(self, nodeid: str) -> Path:
        from pytest_shopflow_perf.verdicts.capacity.baseline import capacity_path

        return capacity_path(self.baseline_file(nodeid).parent, nodeid)

    def compare_capacity(self, nodeid: str, capacity: dict[str, Any]) -> dict[str, Any]:
        """A capacity search against the searches stored for the test (``Capacity.regression``)."""
        from pytest_shopflow_perf.verdicts.capacity.baseline import compare_capacity, load_capacity

        verdict: dict[str, Any] = {"fail_on": self.settings.fail_on}
        if self.settings.no_compare:
            return {**verdict, "tier": None, "note": "comparison disabled (--perf-no-compare)"}
        path = self.capacity_file(nodeid)
        stored = load_capacity(path, nodeid=nodeid)  # BaselineError names the file
        if stored is None:
            return {**verdict, "tier": None, "note": f"no stored capacity yet ({path.name}); record one with "
                    "--perf-save-baseline"}  # fmt: skip
        policy = self.policy
        found = compare_capacity(
            stored["runs"], capacity, minor=policy.minor, major=policy.major, critical=policy.critical
        )
        return {**verdict, **found, "file": path.name}

    def save_baseline(self, result: LoadResult) -> Path | None:
        """Append a finished run to its baseline (atomic, locked); never an interrupted or saturated run,
        nor one that lost a shard."""
        from pytest_shopflow_perf.verdicts.baseline import append_run

        if not self.settings.save_baseline or result.interrupted:
            return None
        if result.extra.get("capacity_step"):
            return self._save_capacity(result)  # a level of a search has no baseline of its own
        if result.lost_shards:
            lost = ", ".join(shard.worker for shard in result.lost_shards)
            result.extra["baseline_note"] = f"not saved: shard(s) {lost} were lost during the run"
            return None
        if result.generator.saturated:
            result.extra["baseline_note"] = (
                f"not saved: the generator was saturated ({'; '.join(result.generator.reasons)})"
            )
            return None
        path = self.baseline_file(result.test)
        append_run(path, result.test, result.to_dict(), keep=self.settings.baseline_keep)
        return path

    def _save_capacity(self, result: LoadResult) -> Path | None:
        """The search's answer, carried by its last step, next to the test's baseline."""
        from pytest_shopflow_perf.verdicts.capacity.baseline import append_capacity

        capacity, nodeid = result.extra.get("capacity"), result.extra.get("capacity_test")
        if not capacity or not isinstance(nodeid, str):
            return None
        path = self.capacity_file(nodeid)
        if not append_capacity(path, nodeid, capacity, keep=self.settings.baseline_keep):
            result.extra["baseline_note"] = "capacity not saved: the generator saturated before the service broke"
            return None
        return path

    def finish_test(self, results: list[LoadResult], passed: bool) -> None:
        """Save baselines and write report files after the test: a file-system error fails this test only."""
        from pytest_shopflow_perf.verdicts.baseline import BaselineError

        problems: list[str] = []
        for result in results:
            if passed:
                try:
                    saved = self.save_baseline(result)
                except (OSError, BaselineError) as exc:
                    problems.append(f"could not save the baseline of {result.test}: {exc}")
                    result.extra["baseline_note"] = f"not saved: {exc}"
                else:
                    if saved is not None:
                        result.extra["baseline_saved"] = str(saved)
            if result in self.orphan_results:
                continue  # written when the run was interrupted
            try:
                self.write_result_files(result)
            except (OSError, ValueError) as exc:
                problems.append(f"could not write the report files of {result.test} to {self.report_dir()}: {exc}")
        if problems:
            pytest.fail("shopflow perf: " + "\n".join(problems), pytrace=False)

    # ---- report files --------------------------------------------------------------

    def report_dir(self) -> Path | None:
        if not self.settings.report_dir:
            return None
        directory = Path(self.settings.report_dir)
        return directory if directory.is_absolute() else self.config.rootpath / directory

    def write_result_files(self, result: LoadResult) -> None:
        directory = self.report_dir()
        if directory is not None:
            from pytest_shopflow_perf.reporting.files import write_result

            write_result(directory, result)

    def write_session_summary(self, stats: dict[str, list[Any]]) -> Path | None:
        """``summary.json`` / ``summary.md`` from the reports (xdist-safe), plus interrupted runs."""
        directory = self.report_dir()
        if directory is None or hasattr(self.config, "workerinput"):
            return None
        from pytest_shopflow_perf.reporting.files import write_summary

        tests: list[dict[str, Any]] = [
            {"nodeid": report.nodeid, "outcome": report.outcome, "reason": reason_of(report), "runs": runs}
            for report, runs in collected_runs(stats)
        ]
        if self.orphan_results:
            runs = [result.summary_dict() for result in self.orphan_results]
            tests.append({"nodeid": runs[0]["test"], "outcome": "interrupted", "reason": "Ctrl-C", "runs": runs})
        if not tests:
            return None
        environment = self._environment or {}
        from pytest_shopflow_perf.plugin.title import report_title

        context = {
            "title": report_title(self.config),
            "target": self._target_shown(tests),
            "targets": self._targets(tests),
            "commit": environment.get("git_commit"),
            "machine": f"{environment.get('cpu_model', '?')}, {environment.get('cpu_count', '?')} cores",
            "fail_on": self.settings.fail_on,
        }
        write_summary(directory, tests, context, self.warnings)
        return directory

    @staticmethod
    def _targets(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The distinct targets of the runs ({url, source, label}), in collection order."""
        seen: dict[str, dict[str, Any]] = {}
        for run in (run for t in tests for run in t["runs"] if run.get("target")):
            seen.setdefault(str(run["target"].get("label") or run["target"].get("url")), dict(run["target"]))
        return list(seen.values())

    def _target_shown(self, tests: list[dict[str, Any]]) -> str:
        """What the runs targeted, in words (the embedded service says so); older records give their URL."""
        from pytest_shopflow_perf.plugin.targets import labels

        shown = labels(run for t in tests for run in t["runs"])
        if shown:
            return "; ".join(shown)
        if self.server is not None and self.server.base_url:
            return self.server.base_url
        targets = sorted(
            {str((run.get("profile") or {}).get("base_url")) for t in tests for run in t["runs"]} - {"None", ""}
        )
        return ", ".join(targets) or self.settings.base_url or "-"


def perf_session(config: pytest.Config) -> PerfSession:
    """The session's :class:`PerfSession`, created on first use."""
    session = config.stash.get(perf_session_key, None)
    if session is None:
        session = config.stash[perf_session_key] = PerfSession(config)
    return session

"""Per-session state of the plugin, kept in one object in ``config.stash``."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .profile import (
    ENV_VARS,
    INI_KEYS,
    LoadProfile,
    ProfileError,
    Source,
    env_source,
    parse_scale,
    resolve_profile,
)
from .target import DEFAULT_APP, EmbeddedServer, TargetError, TargetPolicy

if TYPE_CHECKING:
    from .assertions import Slo
    from .engine import Progress
    from .regression import RegressionPolicy
    from .resilience import FaultPlan
    from .result import LoadResult

NON_TTY_PROGRESS_EVERY_S = 5
# ini perf_regression_<name> -> RegressionPolicy field
REGRESSION_INI: dict[str, type] = {
    "alpha": float,
    "minor": float,
    "major": float,
    "critical": float,
    "error_rate_floor": float,
    "noise_floor": float,
    "single_run_noise_floor": float,
    "min_baseline_runs": int,
}


@dataclass
class Settings:
    """The session-wide settings, read once from the command line, ini and environment."""

    base_url: str | None
    app: str
    scale: float
    seed: int
    allowed_hosts: list[str]
    cli_users: str | None
    cli_duration: str | None
    baseline_dir: str
    save_baseline: bool
    no_compare: bool
    fail_on: str
    report_dir: str | None
    ini_profile: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        def cli(name: str) -> Any:
            return config.getoption(name, default=None)

        def ini(name: str) -> Any:
            return config.getini(name)

        scale_raw = cli("perf_scale") or os.environ.get(ENV_VARS["scale"]) or ini("perf_scale") or "1"
        scale_label = (
            "--perf-scale"
            if cli("perf_scale")
            else (ENV_VARS["scale"] if os.environ.get(ENV_VARS["scale"]) else "ini perf_scale")
        )
        try:
            scale = parse_scale(scale_label, scale_raw)
        except ProfileError as exc:
            raise pytest.UsageError(str(exc)) from None
        seed_raw = cli("perf_seed") or ini("perf_seed")
        try:
            seed = int(seed_raw) if seed_raw not in (None, "") else random.SystemRandom().randrange(2**31)
        except ValueError:
            raise pytest.UsageError(f"--perf-seed={seed_raw!r} is not valid: expected a whole number") from None
        fail_on = cli("perf_fail_on") or ini("perf_fail_on") or "major"
        if fail_on not in ("minor", "major", "critical", "never"):
            raise pytest.UsageError(
                f"--perf-fail-on={fail_on!r} is not valid: expected minor, major, critical or never"
            )
        return cls(
            base_url=cli("perf_base_url") or None,
            app=cli("perf_app") or ini("perf_app") or DEFAULT_APP,
            scale=scale,
            seed=seed,
            allowed_hosts=[*(cli("perf_allow_host") or []), *ini("perf_allow_hosts")],
            cli_users=cli("perf_users"),
            cli_duration=cli("perf_duration"),
            baseline_dir=cli("perf_baseline_dir") or ini("perf_baseline_dir") or "baselines",
            save_baseline=bool(cli("perf_save_baseline") or ini("perf_save_baseline")),
            no_compare=bool(cli("perf_no_compare") or ini("perf_no_compare")),
            fail_on=fail_on,
            report_dir=cli("perf_report_dir") or ini("perf_report_dir") or None,
            ini_profile={key: ini(f"perf_{key}") for key in INI_KEYS if ini(f"perf_{key}")},
        )


class PerfSession:
    """Settings, the embedded target, and the results of every load test of this session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = Settings.from_config(config)
        self.results: dict[str, list[LoadResult]] = {}
        self.orphan_results: list[LoadResult] = []  # from tests interrupted before they had a report
        self.server: EmbeddedServer | None = None
        self._server_lock = threading.Lock()
        self._environment: dict[str, Any] | None = None
        # one policy for the session: its verdicts and resolutions are cached across runs
        self.target_policy = TargetPolicy(self.settings.allowed_hosts)

    # ---- profile and target ----------------------------------------------------

    def resolve_profile(self, marker_kwargs: dict[str, Any], label: str) -> LoadProfile:
        settings = self.settings
        cli_values = {
            "users": settings.cli_users,
            "duration": settings.cli_duration,
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
        from .assertions import SloError, as_slos

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
        from .resilience import FaultPlan

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
        """The profile's target, or the embedded service started on first use."""
        base_url = profile.base_url or self.config.getini("perf_base_url") or None
        if base_url is None:
            base_url = self.start_embedded()
        try:
            self.target_policy.check_url(base_url)
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None
        return base_url

    def start_embedded(self) -> str:
        with self._server_lock:
            if self.server is None or not self.server.running:
                self.server = EmbeddedServer(self.settings.app)
                try:
                    self.server.start()
                except TargetError as exc:
                    raise pytest.UsageError(
                        f"{exc}\nSet a target with --perf-base-url / SHOPFLOW_BASE_URL, or an app with --perf-app."
                    ) from None
            return self.server.base_url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def environment(self) -> dict[str, Any]:
        if self._environment is None:
            from .baseline import environment_fingerprint, git_commit

            self._environment = {**environment_fingerprint(), "git_commit": git_commit(self.config.rootpath)}
        return self._environment

    # ---- baselines ---------------------------------------------------------------

    def baseline_file(self, test: str) -> Path:
        from .baseline import baseline_path

        directory = Path(self.settings.baseline_dir)
        if not directory.is_absolute():
            directory = self.config.rootpath / directory
        return baseline_path(directory, test)

    def compare_with_baseline(self, result: LoadResult) -> None:
        """Attach the regression verdict (or why there is none) for ``assert_no_regression`` and reports."""
        from .baseline import BaselineError, load_baseline
        from .regression import compare

        result.extra["regression_fail_on"] = self.settings.fail_on
        if self.settings.no_compare:
            result.extra["regression_note"] = "comparison disabled (--perf-no-compare)"
            return
        path = self.baseline_file(result.test)
        try:
            baseline = load_baseline(path, nodeid=result.test)
        except BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
        if baseline is None:
            shown = path.relative_to(self.config.rootpath) if path.is_relative_to(self.config.rootpath) else path
            result.extra["regression_note"] = f"no baseline yet ({shown}); record one with --perf-save-baseline"
            return
        result.extra["regression"] = compare(baseline, result.to_dict(), policy=self.regression_policy()).to_dict()

    def regression_policy(self) -> RegressionPolicy:
        """Tier thresholds and significance from ini (``perf_regression_*``), defaults otherwise."""
        from .regression import RegressionPolicy

        values: dict[str, Any] = {}
        for field_name, kind in REGRESSION_INI.items():
            raw = self.config.getini(f"perf_regression_{field_name}")
            if raw:
                try:
                    values[field_name] = kind(raw)
                except ValueError:
                    raise pytest.UsageError(
                        f"ini perf_regression_{field_name}={raw!r} is not valid: expected a {kind.__name__}"
                    ) from None
        try:
            return RegressionPolicy(**values)
        except ValueError as exc:
            raise pytest.UsageError(f"ini perf_regression_*: {exc}") from None

    def save_baseline(self, result: LoadResult) -> Path | None:
        """Append a finished run to its baseline (atomic write); interrupted runs are never saved."""
        from .baseline import DEFAULT_KEEP, append_run

        if not self.settings.save_baseline or result.interrupted:
            return None
        path = self.baseline_file(result.test)
        keep = int(self.config.getini("perf_baseline_keep") or DEFAULT_KEEP)
        append_run(path, result.test, result.to_dict(), keep=keep)
        return path

    # ---- report files --------------------------------------------------------------

    def report_dir(self) -> Path | None:
        if not self.settings.report_dir:
            return None
        directory = Path(self.settings.report_dir)
        return directory if directory.is_absolute() else self.config.rootpath / directory

    def write_result_files(self, result: LoadResult) -> None:
        directory = self.report_dir()
        if directory is not None:
            from .reporting.files import write_result

            write_result(directory, result)

    def write_session_summary(self, stats: dict[str, list[Any]]) -> Path | None:
        """``summary.json`` / ``summary.md`` from the reports (xdist-safe), plus interrupted runs."""
        directory = self.report_dir()
        if directory is None or hasattr(self.config, "workerinput"):
            return None
        from .reporting.files import write_summary

        tests: list[dict[str, Any]] = []
        for reports in stats.values():
            for report in reports:
                runs = getattr(report, "shopflow_perf", None)
                if not runs or getattr(report, "when", None) != "call":
                    continue
                tests.append(
                    {"nodeid": report.nodeid, "outcome": report.outcome, "reason": _reason(report), "runs": runs}
                )
        if self.orphan_results:
            runs = [result.summary_dict() for result in self.orphan_results]
            tests.append({"nodeid": runs[0]["test"], "outcome": "interrupted", "reason": "Ctrl-C", "runs": runs})
        if not tests:
            return None
        environment = self._environment or {}
        context = {
            "target": self.server.base_url if self.server is not None else (self.settings.base_url or "-"),
            "commit": environment.get("git_commit"),
            "machine": f"{environment.get('cpu_model', '?')}, {environment.get('cpu_count', '?')} cores",
            "fail_on": self.settings.fail_on,
        }
        write_summary(directory, tests, context)
        return directory

    # ---- progress ----------------------------------------------------------------

    def progress_printer(self, label: str) -> Callable[[Progress], None] | None:
        config = self.config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or config.get_verbosity() < 0 or hasattr(config, "workerinput"):
            return None
        capture = config.pluginmanager.get_plugin("capturemanager")
        tty = bool(getattr(reporter, "isatty", False))

        def show(progress: Progress) -> None:
            second = round(progress.elapsed)
            if not tty and second % NON_TTY_PROGRESS_EVERY_S:
                return
            error_pct = 100.0 * progress.errors / progress.requests if progress.requests else 0.0
            line = (
                f"  {label}  {progress.elapsed:5.1f}/{progress.duration:.0f}s  users {progress.users:>4}  "
                f"req/s {progress.rps:>7.0f}  p95 {progress.p95 * 1000:7.1f} ms  "
                f"errors {progress.errors} ({error_pct:.2f}%)"
            )
            disabled = getattr(capture, "global_and_fixture_disabled", None)
            if disabled is None:
                return
            with disabled():
                if tty:
                    reporter.rewrite(line, erase=True)
                else:
                    reporter.write_line(line)

        return show

    def end_progress(self) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        disabled = getattr(capture, "global_and_fixture_disabled", None)
        if reporter is not None and getattr(reporter, "isatty", False) and disabled is not None:
            with disabled():
                reporter.rewrite("", erase=True)


def _reason(report: Any) -> str | None:
    """One line on why a test did not pass: the skip reason or the failure's message."""
    if report.outcome == "passed":
        return None
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None) or str(longrepr)
    return message.splitlines()[0][:300] if message else None


perf_session_key = pytest.StashKey[PerfSession]()

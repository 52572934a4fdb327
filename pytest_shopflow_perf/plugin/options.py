"""The plugin's options, ini keys and marker help, and the session-wide settings read from them.

Cheap on purpose: this is all a pytest run without load tests pays for.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf.profile.resolve import ENV_VARS, INI_KEYS, ProfileError, parse_scale
from pytest_shopflow_perf.result.schema import FAIL_ON_CHOICES

if TYPE_CHECKING:
    from pytest_shopflow_perf.verdicts.regression import RegressionPolicy

NON_TTY_PROGRESS_EVERY_S = 5
HTTP_TRANSPORTS = ("fast", "httpcore")  # as engine.clients.HTTP_TRANSPORTS (not imported: httpx is heavy)
EVENT_LOOPS = ("auto", "uvloop", "asyncio")

MARKER_HELP = (
    "load(users=10, duration='10s', ramp_up=0, ramp_down=0, stages=None, rate=None, max_users=1000, "
    "think_time=None, iterations=None, base_url=None, name=None, timeout='30s', graceful_stop='5s', slo=None, "
    "faults=None, client='httpx', workers=1, max_body='16MiB'): run this test as a load test; "
    "the `load` fixture runs journeys with this profile. rate= switches to the open model (arrivals/s, "
    "capped by max_users). "
    "slo=['p(95)<500ms', ...] declares thresholds checked after every run."
)
SLO_MARKER_HELP = (
    "slo(*expressions): thresholds checked after every load.run of this test, e.g. "
    "@pytest.mark.slo('p(95)<500ms', 'error_rate<1%', Slo('error_rate<5%', abort=True)); replaces ini perf_slo."
)


REGRESSION_INI: tuple[tuple[str, str], ...] = (
    ("alpha", "significance level of the regression tests (default 0.05)"),
    ("minor", "relative slowdown that is a minor regression (default 0.10)"),
    ("major", "relative slowdown that is a major regression (default 0.25)"),
    ("critical", "relative slowdown that is a critical regression (default 0.50)"),
    ("error_rate_floor", "smallest absolute error-rate increase that counts (default 0.001)"),
    ("noise_floor", "run-to-run noise assumed on top of what baselines show (default 0.03)"),
    ("single_run_noise_floor", "run-to-run noise assumed when a baseline has one run (default 0.10)"),
    ("min_baseline_runs", "baseline runs needed before a regression can fail a test (default 1)"),
    ("latency_floor_ms", "smallest absolute latency increase in ms that counts (default 1.0)"),
    ("busy_machine", "a regression measured on a busier machine than the baseline's is inconclusive (default true)"),
)
"""The ``perf_regression_*`` ini keys (the policy fields) and their help."""


def add_options(parser: pytest.Parser) -> None:
    """Every --perf-* option and perf_* ini key: the one table the help, the session and the docs read."""
    group = parser.getgroup("shopflow-perf", "load testing (pytest-shopflow-perf)")

    def option(flag: str, ini_help: str, ini_type: Any = "string", ini_default: Any = None, **kwargs: Any) -> None:
        dest = flag.lstrip("-").replace("-", "_")
        group.addoption(flag, dest=dest, default=None, **kwargs)
        parser.addini(dest if ini_type != "linelist" else dest + "s", ini_help, type=ini_type, default=ini_default)

    option(
        "--perf-base-url",
        "target base URL (default: the embedded ShopFlow service)",
        metavar="URL",
        help="target of load tests (env SHOPFLOW_BASE_URL); default: the embedded ShopFlow service",
    )
    option(
        "--perf-app",
        "module:app of the embedded service (trailing () = factory)",
        metavar="MODULE:APP",
        help="ASGI app to start under uvicorn when no base URL is set (default: the ShopFlow reference service)",
    )
    parser.addini(
        "perf_embedded",
        "start the embedded ShopFlow reference service when a load test names no target (default true); "
        "false: such a test is a usage error",
        type="bool",
        default=True,
    )
    option(
        "--perf-title",
        "title of summary.md and the pytest-html report (default: '<project name> performance summary')",
        metavar="TEXT",
        help="title of summary.md and the HTML report; default: the project's name (pyproject.toml) "
        "+ ' performance summary'",
    )
    option(
        "--perf-scale",
        "multiply every duration and stage",
        metavar="FACTOR",
        help="multiply every duration and stage, e.g. 0.1 for pre-merge CI (env SHOPFLOW_PERF_SCALE)",
    )
    option(
        "--perf-users",
        "default number of virtual users",
        metavar="N",
        help="override the users of every load test (env SHOPFLOW_PERF_USERS)",
    )
    option(
        "--perf-duration",
        "default run duration",
        metavar="DURATION",
        help="override the duration of every load test, e.g. 30s (env SHOPFLOW_PERF_DURATION)",
    )
    option(
        "--perf-client",
        "client of the virtual users: httpx (default) or fast",
        metavar="httpx|fast",
        help="httpx: user.client is a real httpx.AsyncClient (default); fast: the lean client, more load per core "
        "(env SHOPFLOW_PERF_CLIENT)",
    )
    option(
        "--perf-workers",
        "processes that generate the load of each test: N or auto (default 1)",
        metavar="N|auto",
        help="split each load test over N shard processes (auto: one per core, minus one when the target runs "
        "here); results are merged into one (env SHOPFLOW_PERF_WORKERS)",
    )
    option(
        "--perf-cluster",
        "Dask scheduler whose workers generate the load, e.g. tcp://10.0.0.5:8786",
        metavar="ADDRESS",
        help="run each load test's shards as tasks on this Dask cluster, one per worker unless workers= says "
        "(env SHOPFLOW_PERF_CLUSTER; needs pytest-shopflow-perf[distributed] here and on the workers)",
    )
    option(
        "--perf-target-pid",
        "PID of the service under test on this machine: its CPU, RSS, threads and connections are sampled",
        metavar="PID",
        help="sample this local process (and its children) with psutil during each run: result.resources, "
        "target_cpu/target_rss SLOs (the embedded service is sampled without it)",
    )
    option(
        "--perf-metrics-url",
        "Prometheus text endpoint of the service under test, scraped every second during each run",
        metavar="URL",
        help="scrape this Prometheus /metrics (loopback or an --perf-allow-host host) during each run: "
        "process CPU/RSS, every gauge (gauge(NAME) SLOs), counters as rates",
    )
    option(
        "--perf-transport",
        "HTTP transport under the httpx client: fast (default) or httpcore",
        metavar="fast|httpcore",
        choices=HTTP_TRANSPORTS,
        help="fast: the engine's HTTP/1.1 transport, httpcore for what it does not handle (default); "
        "httpcore: httpx's own transport for every request",
    )
    option(
        "--perf-event-loop",
        "event loop of load.run: auto (uvloop when installed), uvloop or asyncio",
        metavar="auto|uvloop|asyncio",
        choices=EVENT_LOOPS,
        help="event loop of load.run (auto: uvloop when installed); async tests keep their own loop",
    )
    option(
        "--perf-baseline-dir",
        "where baselines are kept",
        metavar="DIR",
        help="directory of the JSON baselines (default: baselines/)",
    )
    option(
        "--perf-save-baseline",
        "append each run to its baseline",
        ini_type="bool",
        ini_default=False,
        action="store_true",
        help="append this run to the baseline of each load test",
    )
    option(
        "--perf-no-compare",
        "skip baseline comparison",
        ini_type="bool",
        ini_default=False,
        action="store_true",
        help="do not compare runs with their baselines",
    )
    option(
        "--perf-fail-on",
        "lowest regression tier that fails a test",
        metavar="TIER",
        choices=("minor", "major", "critical", "never"),
        help="fail on regressions of this tier or worse: minor|major|critical|never (default: major)",
    )
    option(
        "--perf-report-dir",
        "directory for JSON/CSV results and summary.md",
        metavar="DIR",
        help="write per-test JSON and CSV results and summary.md here",
    )
    option(
        "--perf-seed",
        "seed of the virtual users' random choices",
        metavar="N",
        help="seed the virtual users' random choices for a reproducible run",
    )
    option(
        "--perf-allow-host",
        "non-loopback hosts that may be load-tested",
        ini_type="linelist",
        ini_default=[],
        metavar="HOST",
        action="append",
        help="allow load against this non-loopback host (repeatable); loopback only otherwise",
    )
    parser.addini(
        "perf_slo",
        "SLO expressions checked after every load run (unless a test declares its own)",
        type="linelist",
        default=[],
    )
    for name, text in REGRESSION_INI:
        parser.addini(f"perf_regression_{name}", text, type="string", default="")
    parser.addini("perf_baseline_keep", "how many recent runs a baseline keeps (default 5)", type="string", default="")
    for key, text in (
        ("ramp_up", "default ramp-up"),
        ("ramp_down", "default ramp-down"),
        ("think_time", "default think time between iterations, e.g. 1, 3"),
        ("max_users", "default cap of open-model users"),
        ("timeout", "default request timeout"),
        ("graceful_stop", "time in-flight iterations get at the end of a run"),
        ("max_body", "bytes of a response body kept in memory (default 16MiB)"),
    ):
        parser.addini(f"perf_{key}", text, type="string", default="")


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
    cli_client: str | None
    baseline_dir: str
    save_baseline: bool
    no_compare: bool
    fail_on: str
    report_dir: str | None
    ini_profile: dict[str, str] = field(default_factory=dict)
    baseline_keep: int = 5
    http_transport: str = "fast"
    event_loop: str = "auto"
    cli_workers: str | None = None
    cluster: str | None = None
    embedded: bool = True  # ini perf_embedded: fall back to the reference service when no target is given
    title: str | None = None  # --perf-title / ini perf_title; None: from the project's name
    target_pid: int | None = None  # --perf-target-pid / ini perf_target_pid: sampled with psutil
    metrics_url: str | None = None  # --perf-metrics-url / ini perf_metrics_url: scraped Prometheus text

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
        if fail_on not in FAIL_ON_CHOICES:
            raise pytest.UsageError(
                f"--perf-fail-on={fail_on!r} is not valid: expected minor, major, critical or never"
            )
        keep_raw = ini("perf_baseline_keep") or "5"
        try:
            baseline_keep = int(keep_raw)
        except ValueError:
            baseline_keep = 0
        if baseline_keep < 1:
            raise pytest.UsageError(
                f"ini perf_baseline_keep={keep_raw!r} is not valid: expected a whole number of runs >= 1"
            )
        http_transport = cli("perf_transport") or ini("perf_transport") or "fast"
        event_loop = cli("perf_event_loop") or ini("perf_event_loop") or "auto"
        for key, value, accepted in (
            ("perf_transport", http_transport, HTTP_TRANSPORTS),
            ("perf_event_loop", event_loop, EVENT_LOOPS),
        ):
            if value not in accepted:
                raise pytest.UsageError(f"ini {key}={value!r} is not valid: expected {' or '.join(accepted)}")
        return cls(
            http_transport=http_transport,
            event_loop=event_loop,
            baseline_keep=baseline_keep,
            base_url=cli("perf_base_url") or None,
            app=cli("perf_app") or ini("perf_app") or "",  # empty: the ShopFlow reference service
            scale=scale,
            seed=seed,
            allowed_hosts=[*(cli("perf_allow_host") or []), *ini("perf_allow_hosts")],
            cli_users=cli("perf_users"),
            cli_duration=cli("perf_duration"),
            cli_client=cli("perf_client"),
            cli_workers=cli("perf_workers"),
            cluster=cli("perf_cluster") or os.environ.get("SHOPFLOW_PERF_CLUSTER") or ini("perf_cluster") or None,
            baseline_dir=cli("perf_baseline_dir") or ini("perf_baseline_dir") or "baselines",
            save_baseline=bool(cli("perf_save_baseline") or ini("perf_save_baseline")),
            no_compare=bool(cli("perf_no_compare") or ini("perf_no_compare")),
            fail_on=fail_on,
            report_dir=cli("perf_report_dir") or ini("perf_report_dir") or None,
            ini_profile={key: ini(f"perf_{key}") for key in INI_KEYS if ini(f"perf_{key}")},
            embedded=bool(ini("perf_embedded")),
            title=cli("perf_title") or ini("perf_title") or None,
            target_pid=_target_pid(cli("perf_target_pid") or ini("perf_target_pid") or None),
            metrics_url=cli("perf_metrics_url") or ini("perf_metrics_url") or None,
        )

    @classmethod
    def validate(cls, config: pytest.Config) -> Settings:
        """The session's settings, read once at configure: a bad option or ini value is a usage error there.

        The regression ini is parsed now only when it is set (the defaults are valid): the statistics
        module then loads with the first comparison, not in every pytest run.
        """
        settings = cls.from_config(config)
        from pytest_shopflow_perf.plugin.resources import check_settings

        check_settings(settings)
        if any(config.getini(f"perf_regression_{name}") for name, _ in REGRESSION_INI):
            regression_policy(config)
        return settings


def regression_policy(config: pytest.Config) -> RegressionPolicy:
    """Tier thresholds and significance from ini (``perf_regression_*``), defaults otherwise."""
    from pytest_shopflow_perf.verdicts.regression import policy_from_ini

    try:
        return policy_from_ini(lambda name: str(config.getini(name) or ""))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _target_pid(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        pid = int(raw)
    except ValueError:
        pid = 0
    if pid < 1:
        raise pytest.UsageError(
            f"--perf-target-pid={raw!r} is not valid: expected the process id of the service under test "
            "(a whole number, e.g. --perf-target-pid $(pgrep -f uvicorn))"
        )
    return pid

#!/usr/bin/env python3
"""Memory and completion of the engine at 10,000 virtual users in one process (issue 13).

One invocation:

1. starts nginx on 127.0.0.1 with a temp config (``throughput.py``'s, with room for
   10,000+ connections), pinned to core 1, or the builtin asyncio server;
2. runs the engine in its own subprocess, pinned to core 0, ``--runs`` times per client:
   closed model, every user planned at t=0 (no ramp; the engine paces starts at
   ``SPAWN_RATE_PER_S``), constant think time, one ``GET /`` per iteration;
3. prints, per run and as medians: peak RSS of the engine process (its ``VmHWM``), its
   RSS after the imports (before the run) and the increment per user, requests done
   against offered, errors by kind, the generator's saturation figures and the time it
   took to start every user.

Offered requests: ``users x duration / think`` (each user sends one request per think
period; the response time on loopback is negligible next to the think time). The goal of
issue 13: >= 90 % of it done, no errors, peak RSS <= 256 MB with the httpx client (the
default) and <= 128 MB with ``client="fast"``.

Every request goes to the target this script starts on 127.0.0.1. The script also runs
its own subprocesses (``--worker ...``, not for direct use).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput
from throughput import GENERATOR_CPU, RESULT_PREFIX, TARGET_CPU, clean_env, log, pin_prefix

GOAL_MB = {"httpx": 256.0, "fast": 128.0}
GOAL_DONE_PERCENT = 90.0
WORKER_SLACK_S = 90.0  # start-up (warm-up, 10,000 clients), graceful stop and exit beyond --duration
NGINX_CONNECTIONS = 30000  # worker_connections for 10,000+ keep-alive connections
RSS_SAMPLE_S = 0.1


def parse_seconds(text: str) -> float:
    """As ``throughput.parse_seconds`` (``10``, ``10s``, ``500ms``), any positive value."""
    return throughput.parse_seconds(text)


def _status_kb(field: str) -> int:
    """A ``kB`` figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``), 0 if unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak RSS of this process: ``VmHWM``, else ``ru_maxrss`` (kB on Linux)."""
    hwm = _status_kb("VmHWM")
    return (hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def _raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        want = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# ---- the worker (a subprocess: its peak RSS is the engine's alone) ---------------------


class _RssSampler(threading.Thread):
    """RSS every 0.1 s, so the RSS when every user had started can be read after the run."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(RSS_SAMPLE_S):
            self.samples.append((time.perf_counter(), rss_mb()))

    def timeline(self, t0: float) -> list[float]:
        """RSS at each whole second of the run (MB), for where the peak comes."""
        out: list[float] = []
        for t, mb in self.samples:
            if t >= t0 + len(out):
                out.append(round(mb, 1))
        return out

    def at(self, when: float) -> float | None:
        after = [mb for t, mb in self.samples if t >= when]
        return after[0] if after else None


def probe_worker(url: str, client: str) -> dict[str, Any]:
    """Does this branch's engine run ``client``? One user, one second, the class of ``user.client``."""
    import anyio

    from pytest_shopflow_perf.engine.engine import Engine
    from pytest_shopflow_perf.profile.resolve import Source, resolve_profile

    seen: list[str] = []

    async def journey(user: Any) -> None:
        seen.append(f"{type(user.client).__module__}.{type(user.client).__qualname__}")
        await user.client.get("/")

    try:
        empty = Source("none", {})
        marker = Source("bench", {"users": 1, "duration": "1s", "think_time": "100ms", "client": client})
        profile = resolve_profile(ini=empty, marker=marker, env=empty, cli=empty)
        result = anyio.run(Engine(profile, journey, base_url=url).run)
    except Exception as exc:  # rejected by the profile or the engine
        return {"client": client, "supported": False, "why": f"{type(exc).__name__}: {exc}"}
    kind = seen[0] if seen else "(no iteration ran)"
    if client == "fast" and kind == "httpx.AsyncClient":
        return {
            "client": client,
            "supported": False,
            "why": 'the engine accepts client="fast" but gives users an httpx.AsyncClient (not built on this branch)',
        }
    return {"client": client, "supported": bool(seen) and not result.errors, "why": kind, "errors": result.errors}


def backend_options(event_loop: str) -> dict[str, Any]:
    """As ``load.run``: uvloop when installed unless ``asyncio`` is asked for."""
    import importlib.util

    wants = event_loop == "uvloop" or (event_loop == "auto" and importlib.util.find_spec("uvloop") is not None)
    return {"use_uvloop": True} if wants else {}


def scale_worker(
    url: str, users: int, think: float, duration: float, client: str, event_loop: str = "auto"
) -> dict[str, Any]:
    import anyio

    from pytest_shopflow_perf.engine.engine import SPAWN_RATE_PER_S, Engine
    from pytest_shopflow_perf.profile.resolve import Source, resolve_profile

    _raise_nofile(users + 1000)
    rss_before = rss_mb()  # after the imports, before anything of the run exists
    empty = Source("none", {})
    marker = Source("bench", {"users": users, "duration": f"{duration}s", "think_time": f"{think}s", "client": client})
    profile = resolve_profile(ini=empty, marker=marker, env=empty, cli=empty)
    clock: dict[str, float] = {}
    counts = {"started": 0, "answered": 0}

    def on_clock_start(t0: float) -> None:
        clock["t0"] = t0

    async def journey(user: Any) -> None:
        first = user.iteration == 1
        if first:
            counts["started"] += 1
            if counts["started"] == users:
                clock["all_started"] = time.perf_counter()
        await user.client.get("/")
        if first:
            counts["answered"] += 1
            if counts["answered"] == users:
                clock["all_answered"] = time.perf_counter()

    sampler = _RssSampler()
    sampler.start()
    engine = Engine(profile, journey, base_url=url, on_clock_start=on_clock_start)
    result = anyio.run(engine.run, backend_options=backend_options(event_loop))
    sampler.halt.set()
    sampler.join()
    peak = peak_rss_mb()
    t0 = clock.get("t0", 0.0)
    all_started = clock.get("all_started")
    generator = result.generator
    offered = users * duration / think
    done = result.requests - result.errors
    errors_by_kind = dict(result.errors_by_kind)
    return {
        "client": client,
        "users": users,
        "think_s": think,
        "duration_s": duration,
        "seconds": round(result.duration, 3),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_all_started_mb": None if all_started is None else sampler.at(all_started),
        "per_user_kb": round((peak - rss_before) * 1024 / users, 2),
        "offered": offered,
        "requests": result.requests,
        "errors": result.errors,
        "done": done,
        "done_percent": round(100.0 * done / offered, 1) if offered else 0.0,
        "errors_by_kind": errors_by_kind,
        "unfinished": result.extra.get("unfinished_requests", 0),
        "users_started": generator.users_started,
        "users_first_iteration": counts["started"],
        "start_all_s": None if all_started is None else round(all_started - t0, 3),
        "first_answer_all_s": None if "all_answered" not in clock else round(clock["all_answered"] - t0, 3),
        "spawn_rate_per_s": SPAWN_RATE_PER_S,
        "cpu_percent": generator.cpu_percent,
        "cpu_max_percent": generator.cpu_max_percent,
        "loop_lag_p99_ms": generator.loop_lag_p99_ms,
        "loop_lag_max_ms": generator.loop_lag_max_ms,
        "saturated": generator.saturated,
        "reasons": list(generator.reasons),
        "p50_ms": round(result.percentile(50) * 1000, 2) if result.requests > result.errors else None,
        "p99_ms": round(result.percentile(99) * 1000, 2) if result.requests > result.errors else None,
        "rss_timeline_mb": sampler.timeline(t0),
        "transport": generator.transport,
        "event_loop": generator.event_loop,
    }


# ---- orchestration ---------------------------------------------------------------------


@contextlib.contextmanager
def _nginx_with_room(nginx: str, pin: bool) -> Iterator[throughput.Target]:
    """throughput.py's nginx, its config given room for 10,000+ connections (restored afterwards)."""
    original = throughput.NGINX_CONF
    roomy = original.replace("worker_connections 4096;", f"worker_connections {NGINX_CONNECTIONS};")
    roomy = roomy.replace("worker_processes 1;", f"worker_processes 1;\nworker_rlimit_nofile {NGINX_CONNECTIONS};")
    throughput.NGINX_CONF = roomy
    try:
        with throughput.nginx_target(nginx, pin) as target:
            yield target
    finally:
        throughput.NGINX_CONF = original


def open_target(kind: str, pin: bool) -> contextlib.AbstractContextManager[throughput.Target]:
    nginx = throughput.find_nginx()
    if kind == "nginx":
        if nginx is None:
            raise SystemExit("--target nginx: nginx not found on PATH (apt-get install -y nginx)")
        return _nginx_with_room(nginx, pin)
    return throughput.builtin_target(pin)


def _run_subprocess(worker_args: list[str], pin: bool, timeout: float) -> tuple[dict[str, Any] | None, str]:
    script = str(Path(__file__).resolve())
    command = [*pin_prefix(GENERATOR_CPU, pin), sys.executable, script, *worker_args]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=clean_env(), check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {timeout:.0f} s"
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-15:])
        return None, f"exit code {completed.returncode}\n{tail}"
    return json.loads(lines[-1][len(RESULT_PREFIX) :]), ""


def run_once(target: throughput.Target, args: argparse.Namespace, client: str, pin: bool) -> dict[str, Any]:
    worker_args = [
        "--worker", "engine", "--url", target.url, "--users", str(args.users),
        "--think", f"{args.think}s", "--duration", f"{args.duration}s", "--client", client,
        "--event-loop", args.event_loop,
    ]  # fmt: skip
    watch = throughput.CpuWatch(target)
    record, failure = _run_subprocess(worker_args, pin, args.duration + WORKER_SLACK_S)
    if record is None:
        return {"client": client, "failed": failure}
    cpu = throughput.Measurement(generator=client, seconds=record["seconds"], cpu_percent=record["cpu_percent"])
    watch.finish(cpu)
    record["target_cpu_percent"] = cpu.target_cpu_percent
    record["others_cpu_percent"] = cpu.others_cpu_percent
    return record


MEDIAN_KEYS = (
    "rss_before_mb",
    "peak_rss_mb",
    "rss_all_started_mb",
    "per_user_kb",
    "done",
    "done_percent",
    "errors",
    "unfinished",
    "start_all_s",
    "first_answer_all_s",
    "cpu_percent",
    "loop_lag_p99_ms",
    "loop_lag_max_ms",
    "p50_ms",
    "p99_ms",
    "target_cpu_percent",
    "others_cpu_percent",
)


def medians(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if "failed" not in r]
    out: dict[str, Any] = {"runs": len(records), "failed_runs": len(records) - len(ok)}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in ok if r.get(key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    kinds: dict[str, list[int]] = {}
    for r in ok:
        for kind in r["errors_by_kind"]:
            kinds.setdefault(kind, [])
    for kind in kinds:
        out.setdefault("errors_by_kind", {})[kind] = statistics.median(r["errors_by_kind"].get(kind, 0) for r in ok)
    out["saturated_runs"] = sum(1 for r in ok if r["saturated"])
    return out


def _f(value: Any, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def render(records: list[dict[str, Any]], summary: dict[str, dict[str, Any]], offered: float) -> str:
    header = (
        "client", "run", "peak MB", "before MB", "KB/user", "done", "done %", "errors", "start all s",
        "gen CPU %", "lag p99 ms", "p50 ms", "p99 ms",
    )  # fmt: skip
    rows = [header]
    for index, r in enumerate(records):
        if "failed" in r:
            rows.append((r["client"], str(index + 1), "failed", *[""] * (len(header) - 3)))
            continue
        rows.append(
            (
                r["client"], str(r.get("run", index + 1)), _f(r["peak_rss_mb"], ".0f"), _f(r["rss_before_mb"], ".0f"),
                _f(r["per_user_kb"], ".1f"), f"{r['done']:,}", _f(r["done_percent"], ".1f"), f"{r['errors']:,}",
                _f(r["start_all_s"], ".2f"), _f(r["cpu_percent"], ".0f"), _f(r["loop_lag_p99_ms"], ".1f"),
                _f(r["p50_ms"], ".1f"), _f(r["p99_ms"], ".1f"),
            )
        )  # fmt: skip
    for client, m in summary.items():
        rows.append(
            (
                client, "median", _f(m["peak_rss_mb"], ".0f"), _f(m["rss_before_mb"], ".0f"),
                _f(m["per_user_kb"], ".1f"), _f(m["done"], ",.0f"), _f(m["done_percent"], ".1f"),
                _f(m["errors"], ",.0f"), _f(m["start_all_s"], ".2f"), _f(m["cpu_percent"], ".0f"),
                _f(m["loop_lag_p99_ms"], ".1f"), _f(m["p50_ms"], ".1f"), _f(m["p99_ms"], ".1f"),
            )
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.append(f"offered = users x duration / think = {offered:,.0f} requests")
    return "\n".join(lines)


def verdict(client: str, m: dict[str, Any]) -> str:
    goal = GOAL_MB[client]
    parts = [
        f"peak {_f(m['peak_rss_mb'], '.0f')} MB {'<=' if (m['peak_rss_mb'] or 1e9) <= goal else '>'} {goal:.0f} MB",
        f"done {_f(m['done_percent'], '.1f')} % {'>=' if (m['done_percent'] or 0) >= GOAL_DONE_PERCENT else '<'} "
        f"{GOAL_DONE_PERCENT:.0f} %",
        f"errors {_f(m['errors'], ',.0f')}" + (f" {m['errors_by_kind']}" if m.get("errors_by_kind") else ""),
    ]
    met = (
        (m["peak_rss_mb"] or 1e9) <= goal
        and (m["done_percent"] or 0) >= GOAL_DONE_PERCENT
        and not m["errors"]
        and not m["failed_runs"]
    )
    return f"{client}: {'MET' if met else 'NOT MET'}: " + "; ".join(parts)


def run_worker(args: argparse.Namespace) -> int:
    if args.worker == "server":
        throughput.serve_builtin()
        return 0
    if args.worker == "probe":
        record = probe_worker(args.url, args.client)
    else:
        record = scale_worker(args.url, args.users, args.think, args.duration, args.client, args.event_loop)
    print(RESULT_PREFIX + json.dumps(record), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Peak RSS and completion of the engine at many users (closed model, all at t=0, "
        "constant think time), each run in its own pinned subprocess against a local target.",
    )
    parser.add_argument("--users", type=throughput.positive_int, default=10000, help="virtual users (default 10000)")
    parser.add_argument("--think", type=parse_seconds, default=10.0, help="constant think time (default 10s)")
    parser.add_argument("--duration", type=parse_seconds, default=30.0, help="per run (default 30s)")
    parser.add_argument(
        "--client", choices=("httpx", "fast", "both"), default="httpx",
        help='profile client: httpx (default), fast (skipped with a note if the engine does not build it), both',
    )  # fmt: skip
    parser.add_argument("--runs", type=throughput.positive_int, default=3, help="runs per client (default 3)")
    parser.add_argument(
        "--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
        help="loop of the engine, as --perf-event-loop (auto: uvloop when installed, as load.run)",
    )  # fmt: skip
    parser.add_argument(
        "--target", choices=("nginx", "builtin"), default=None,
        help="nginx (default when installed) or the builtin raw-asyncio server",
    )  # fmt: skip
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=True,
        help=f"taskset: target on core {TARGET_CPU}, engine on core {GENERATOR_CPU} (default on)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout (the table goes to stderr)")
    parser.add_argument("--worker", choices=("engine", "probe", "server"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)

    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the target
    out = sys.stderr if args.json else sys.stdout
    kind = args.target or ("nginx" if throughput.find_nginx() else "builtin")
    pin = args.pin and throughput.cpus_for_pinning()
    if args.pin and not pin:
        log(f"note: pinning needs taskset and cores {GENERATOR_CPU} and {TARGET_CPU}; running unpinned")
    clients = ["httpx", "fast"] if args.client == "both" else [args.client]
    offered = args.users * args.duration / args.think
    load_before = os.getloadavg()[0]
    records: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    summary: dict[str, dict[str, Any]] = {}
    with open_target(kind, pin) as target:
        log(f"target: {target.description} on {target.url}" + (f" (core {TARGET_CPU})" if pin else ""))
        for client in clients:
            if client != "httpx":
                probe, failure = _run_subprocess(
                    ["--worker", "probe", "--url", target.url, "--client", client], pin, 60
                )
                if probe is None or not probe["supported"]:
                    skipped[client] = failure if probe is None else probe["why"]
                    log(f"  skipping client={client}: {skipped[client]}")
                    continue
            runs = []
            for run in range(1, args.runs + 1):
                log(f"  client={client} run {run}/{args.runs}: {args.users} users, think {args.think:g} s, "
                    f"{args.duration:g} s ...")  # fmt: skip
                record = run_once(target, args, client, pin)
                record["run"] = run
                runs.append(record)
            records += runs
            summary[client] = medians(runs)
    load_after = os.getloadavg()[0]

    print(
        f"\nshopflow-perf scale, {datetime.date.today().isoformat()}: {args.users:,} users, think {args.think:g} s, "
        f"{args.duration:g} s, all users at t=0, target {target.description}"
        + (f", pinned (engine core {GENERATOR_CPU}, target core {TARGET_CPU})" if pin else ", unpinned"),
        file=out,
    )
    print(render(records, summary, offered), file=out)
    for client, m in summary.items():
        print(verdict(client, m), file=out)
        if m["saturated_runs"]:
            reasons = sorted({reason for r in records if r.get("client") == client for reason in r.get("reasons", [])})
            print(
                f"note: {client}: generator saturated in {m['saturated_runs']} run(s): {'; '.join(reasons)}", file=out
            )
    for r in records:
        if "failed" in r:
            print(f"note: {r['client']} run {r['run']} failed: {r['failed']}", file=out)
    for client, why in skipped.items():
        print(f"note: client={client} skipped: {why}", file=out)
    print(f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}", file=out)
    if args.json:
        print(
            json.dumps(
                {
                    "date": datetime.date.today().isoformat(),
                    "target": kind,
                    "users": args.users,
                    "think_s": args.think,
                    "duration_s": args.duration,
                    "offered": offered,
                    "offered_formula": "users * duration / think",
                    "pinned": pin,
                    "load_average_before": load_before,
                    "load_average_after": load_after,
                    "runs": records,
                    "medians": summary,
                    "skipped": skipped,
                }
            ),
            flush=True,
        )
    return 1 if any("failed" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())

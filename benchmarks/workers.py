#!/usr/bin/env python3
"""Requests/s of the engine with ``workers=2`` (two shard processes) against ``workers=1``, in one run.

One invocation starts nginx on 127.0.0.1 (``throughput.py``'s config, a fresh nginx per row),
then, for each client (httpx, the default, and ``client="fast"``), runs in its own subprocess:

- ``workers=1`` pinned: ``Engine`` on core 0, nginx on core 1 (as ``throughput.py``);
- ``workers=1`` unpinned: the same, every process free to use both cores;
- ``workers=2`` unpinned: ``ShardedEngine(workers=2)``, the coordinator and its two shard
  processes (which inherit its affinity) and nginx share the two cores.

It prints req/s (``result.requests / result.duration``), the shards' own CPU figures and the CPU
split of the measured window from ``/proc``: each shard process, the coordinator, nginx, the
rest of the machine and idle, in % of one core (the machine has 200 % on 2 cores). The ratio to
track is workers=2 / workers=1 unpinned (same conditions, same run). Every request goes to the
nginx this script starts; nothing else is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import (  # the sibling benchmark: nginx config, /proc readers, options
    _CLOCK_TICKS,
    BODY,
    NGINX_CONF,
    _read,
    _stat_fields,
    clean_env,
    cpus_for_pinning,
    find_nginx,
    free_port,
    log,
    parse_seconds,
    positive_int,
    stop_process,
    wait_for_port,
)

RESULT_PREFIX = "WORKERS-RESULT "
GENERATOR_CPU, TARGET_CPU = 0, 1
OTHERS_NOTE_PERCENT = 15.0  # other processes busier than this during a row: say so
WORKER_SLACK_S = 90.0  # start-up (two shard interpreters importing the plugin) and shutdown beyond --duration
# (label, workers, pinned): the rows of one run, for each client
ROWS = (("workers=1 pinned", 1, True), ("workers=1", 1, False), ("workers=2", 2, False))


# ---- nginx ------------------------------------------------------------------------


@contextlib.contextmanager
def nginx(binary: str, worker_processes: int, cpu: int | None) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """nginx in the foreground on a free port, pinned to ``cpu`` if given; stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="shopflow-bench-workers-") as tmp:
        port = free_port()
        conf = NGINX_CONF.format(tmp=tmp, port=port, body=BODY.decode())
        conf = conf.replace("worker_processes 1;", f"worker_processes {worker_processes};")
        (Path(tmp) / "nginx.conf").write_text(conf)
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        command = [*pin, binary, "-p", tmp, "-e", f"{tmp}/error.log", "-c", f"{tmp}/nginx.conf"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            try:
                wait_for_port(port, process)
            except RuntimeError as exc:
                raise RuntimeError(f"nginx did not start: {exc}\n{_read(Path(tmp) / 'error.log')}") from None
            yield port, process
        finally:
            stop_process(process, signal.SIGQUIT)


def processes() -> dict[int, tuple[int, float, float]]:
    """pid -> (ppid, user + system CPU s of its threads, the same plus its reaped children's), every process.

    The reaped children's part catches processes that other work starts and ends within a row.
    """
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            own = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
            found[int(entry.name)] = (int(fields[1]), own, own + (int(fields[13]) + int(fields[14])) / _CLOCK_TICKS)
    return found


def tree_pids(root: int) -> list[int]:
    """``root`` and its direct children (nginx master and workers)."""
    return [pid for pid, (ppid, _, _) in processes().items() if root in (pid, ppid)]


def machine_seconds() -> tuple[float, float, float] | None:
    """The whole machine from ``/proc/stat``: (busy incl. irq and softirq, of which irq + softirq, idle + iowait)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy / _CLOCK_TICKS, (irq + softirq) / _CLOCK_TICKS, (idle + iowait) / _CLOCK_TICKS


# ---- the measured subprocess ------------------------------------------------------------


class Window:
    """CPU of every part over [t0, t0 + duration], sampled by a thread of the generator process."""

    def __init__(self, duration: float, target_pids: list[int]) -> None:
        self.duration = duration
        self.target_pids = target_pids
        self.samples: list[dict[str, Any]] = []
        self.thread: threading.Thread | None = None

    def clock_started(self, t0: float) -> None:  # Engine: t0 is now; ShardedEngine: 0.2 s ahead
        self.thread = threading.Thread(target=self._watch, args=(t0,), daemon=True)
        self.thread.start()

    def _watch(self, t0: float) -> None:
        for at in (t0, t0 + self.duration):
            time.sleep(max(0.0, at - time.perf_counter()))
            sample = {"procs": processes(), "machine": machine_seconds(), "self": time.process_time()}
            self.samples.append(sample | {"wall": time.perf_counter()})

    def split(self) -> dict[str, Any]:
        """% of one core over the window: this process, each child (shard), the target, the rest of the
        machine's busy time (/proc/stat: other processes, kernel time charged to none of ours), idle."""
        if self.thread is not None:
            self.thread.join(timeout=self.duration + 5)
        if len(self.samples) < 2:
            return {}
        a, b = self.samples
        wall = float(b["wall"] - a["wall"])
        me = os.getpid()

        def used(pid: int, field: int = 1) -> float:
            return float(b["procs"][pid][field] - a["procs"].get(pid, (0, 0.0, 0.0))[field])

        def pct(seconds: float) -> float:
            return round(100.0 * seconds / wall, 1)

        kids = sorted(pid for pid, (ppid, _, _) in b["procs"].items() if ppid == me)
        ours = {me, *kids, *self.target_pids}
        children = [pct(used(pid)) for pid in kids]
        own = pct(b["self"] - a["self"])
        target = pct(sum(used(pid) for pid in self.target_pids if pid in b["procs"]))
        others = pct(sum(used(pid, 2) for pid in b["procs"] if pid not in ours))
        figures = {"window_s": round(wall, 3), "process": own, "children": children, "target": target}
        figures["other_processes"] = others
        if a["machine"] is None or b["machine"] is None:
            return figures
        busy, irq, idle = (pct(after - before) for before, after in zip(a["machine"], b["machine"], strict=True))
        other = round(busy - own - sum(children) - target, 1)  # other processes, kernel time charged to none
        return figures | {"machine": busy, "softirq": irq, "other": other, "idle": idle}


def worker_main(args: argparse.Namespace) -> int:
    import anyio

    from pytest_shopflow_perf.engine.engine import Engine
    from pytest_shopflow_perf.engine.shards.coordinator import ShardedEngine
    from pytest_shopflow_perf.profile.resolve import Source, resolve_profile

    empty = Source("none", {})
    marker = Source("bench", {"users": args.users, "duration": f"{args.duration}s", "client": args.client})
    profile = resolve_profile(ini=empty, marker=marker, env=empty, cli=empty)

    async def journey(user: Any) -> None:
        await user.client.get("/")

    window = Window(args.duration, [int(pid) for pid in args.target_pids.split(",") if pid])
    kwargs: dict[str, Any] = {"base_url": args.url, "on_clock_start": window.clock_started}
    engine: Engine | ShardedEngine
    if args.workers == 1:
        engine = Engine(profile, journey, **kwargs)
    else:
        engine = ShardedEngine(profile, journey, workers=args.workers, **kwargs)
    use_uvloop = importlib.util.find_spec("uvloop") is not None  # as load.run, and as the shards do
    result = anyio.run(engine.run, backend_options={"use_uvloop": True} if use_uvloop else {})
    generator = result.generator
    shards = [{"requests": s.requests, "cpu_percent": s.generator.cpu_percent, "lost": s.lost} for s in result.shards]
    record = {
        "requests": result.requests,
        "errors": result.errors,
        "duration_s": round(result.duration, 4),
        "rps": round(result.requests / result.duration, 1) if result.duration else 0.0,
        "cpu_percent": generator.cpu_percent,
        "saturated": generator.saturated,
        "loop_lag_p99_ms": generator.loop_lag_p99_ms,
        "event_loop": generator.event_loop,
        "shards": shards,
        "split": window.split(),
    }
    print(RESULT_PREFIX + json.dumps(record), flush=True)
    return 0


# ---- orchestration ---------------------------------------------------------------


def wait_quiet(limit_s: float) -> float:
    """Wait (up to ``limit_s``) for a second in which the machine is busy < ``OTHERS_NOTE_PERCENT`` of a core."""
    deadline, busy = time.monotonic() + limit_s, 0.0
    while True:
        before, wall = machine_seconds(), time.perf_counter()
        time.sleep(1.0)
        after = machine_seconds()
        if before is None or after is None:
            return 0.0
        busy = 100.0 * (after[0] - before[0]) / (time.perf_counter() - wall)
        if busy < OTHERS_NOTE_PERCENT or time.monotonic() > deadline:
            return round(busy, 1)


def run_row(args: argparse.Namespace, binary: str, client: str, label: str, workers: int, pin: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"client": client, "row": label, "workers": workers, "pinned": pin}
    if args.wait_quiet:
        row["busy_before"] = wait_quiet(args.wait_quiet)
    with nginx(binary, args.nginx_workers, TARGET_CPU if pin else None) as (port, process):
        deadline = time.monotonic() + 2.0  # the master forks its workers once it listens
        while len(pids := tree_pids(process.pid)) <= args.nginx_workers and time.monotonic() < deadline:
            time.sleep(0.02)
        script = str(Path(__file__).resolve())
        command = ["taskset", "-c", str(GENERATOR_CPU)] if pin else []
        command += [sys.executable, script, "--worker", "--workers", str(workers), "--client", client]
        command += ["--url", f"http://127.0.0.1:{port}", "--users", str(args.users), "--duration", f"{args.duration}s"]
        command += ["--target-pids", ",".join(str(pid) for pid in pids)]
        log(f"  {client} client, {label} ({args.users} users, {args.duration:g} s) ...")
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=args.duration + WORKER_SLACK_S,
                env=clean_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            return row | {"failed": f"did not finish within {args.duration + WORKER_SLACK_S:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        return row | {"failed": f"exit code {done.returncode}\n{tail}"}
    row |= json.loads(lines[-1][len(RESULT_PREFIX) :])
    if not row["requests"]:
        row["failed"] = "no request completed (is nginx answering?)"
    return row


def ratios(rows: list[dict[str, Any]], client: str) -> dict[str, float | None]:
    by_row = {r["row"]: r for r in rows if r["client"] == client and not r.get("failed")}
    two = by_row.get("workers=2")
    out: dict[str, float | None] = {}
    for key, reference in (("vs_unpinned", "workers=1"), ("vs_pinned", "workers=1 pinned")):
        one = by_row.get(reference)
        out[key] = round(two["rps"] / one["rps"], 3) if two and one and one["rps"] else None
    return out


def _f(value: float | None, pattern: str = ".0f") -> str:
    return "-" if value is None else format(value, pattern)


def cpu_cells(row: dict[str, Any]) -> tuple[str, ...]:
    """shards (engine's own), shards (/proc), coordinator, nginx, other, idle; % of one core."""
    split = row.get("split") or {}
    if row["workers"] == 1:
        own, procs, coordinator = _f(row["cpu_percent"]), _f(split.get("process")), "-"
    else:
        own = " / ".join(_f(s["cpu_percent"]) for s in row["shards"])
        procs, coordinator = " / ".join(_f(c) for c in split.get("children", [])), _f(split.get("process"), ".1f")
    rest = (_f(split.get(key)) for key in ("target", "other", "idle"))
    return own, procs, coordinator, *rest


def render(rows: list[dict[str, Any]]) -> str:
    header = ("client", "row", "req/s", "gen CPU % (own)", "gen CPU % (/proc)", "coord %", "nginx %", "other %")
    table = [(*header, "idle %")]
    for r in rows:
        if r.get("failed"):
            table.append((r["client"], r["row"], "failed", *[""] * 7))
        else:
            table.append((r["client"], r["row"], f"{r['rps']:,.0f}", *cpu_cells(r)))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    out = []
    for index, line in enumerate(table):
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(line[2:], widths[2:], strict=True)]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="workers=2 vs workers=1 req/s against a local nginx, in one run.")
    parser.add_argument("--duration", type=parse_seconds, default=5.0, help="per row (default 5s)")
    parser.add_argument("--users", type=positive_int, default=50, help="closed-model users (default 50)")
    parser.add_argument("--runs", type=positive_int, default=1, help="runs of every row; medians printed (default 1)")
    parser.add_argument("--client", choices=("httpx", "fast", "both"), default="both", help="default both")
    parser.add_argument("--nginx-workers", type=int, choices=(1, 2), default=1, help="worker_processes (default 1)")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="SECONDS",
        help=f"before each row, wait up to SECONDS for the machine to be busy < {OTHERS_NOTE_PERCENT:g} %% (default 0)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout (the tables go to stderr)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=positive_int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--target-pids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop nginx
    binary = find_nginx()
    if binary is None:
        raise SystemExit("nginx not found on PATH (apt-get install -y nginx)")
    out = sys.stderr if args.json else sys.stdout
    clients = ["httpx", "fast"] if args.client == "both" else [args.client]
    pinnable = cpus_for_pinning()
    if not pinnable:
        log(f"note: pinning needs taskset and cores {GENERATOR_CPU} and {TARGET_CPU}: no workers=1 pinned row")
    load_before = os.getloadavg()[0]
    runs: list[list[dict[str, Any]]] = []
    for number in range(1, args.runs + 1):
        log(f"run {number} of {args.runs}")
        rows = [run_row(args, binary, client, *spec) for client in clients for spec in ROWS if pinnable or not spec[2]]
        runs.append(rows)
        print(f"\nrun {number}:", file=out)
        print(render(rows), file=out)
        for client in clients:
            r = ratios(rows, client)
            print(f"  {client}: workers=2 / workers=1 {_f(r['vs_unpinned'], '.2f')}x "
                  f"(/ workers=1 pinned {_f(r['vs_pinned'], '.2f')}x)", file=out)  # fmt: skip

    summary: dict[str, Any] = {}
    print(
        f"\n{datetime.date.today().isoformat()}: {args.users} users, {args.duration:g} s per row, {args.runs} run(s), "
        f"nginx worker_processes {args.nginx_workers}; CPU in % of one core (the machine: {os.cpu_count()} cores); "
        f"load average before/after {load_before:.2f} / {os.getloadavg()[0]:.2f}",
        file=out,
    )
    for client in clients:
        figures: dict[str, Any] = {}
        for label, _, _ in ROWS:
            done = [r for rows in runs for r in rows if r["client"] == client and r["row"] == label]
            good = [r for r in done if not r.get("failed")]
            figures[label] = {"rps_median": median([r["rps"] for r in good]), "failed": len(done) - len(good)}
        for key in ("vs_unpinned", "vs_pinned"):
            values = [v for rows in runs if (v := ratios(rows, client)[key]) is not None]
            figures[f"ratio_{key}_median"] = median(values)
        summary[client] = figures
        medians = ", ".join(f"{label} {_f(figures[label]['rps_median'], ',.0f')}" for label, _, _ in ROWS)
        print(f"{client} client, median req/s: {medians}", file=out)
    print(
        "workers=2 / workers=1: "
        + ", ".join(f"{_f(summary[c]['ratio_vs_unpinned_median'], '.2f')}x ({c} client)" for c in clients)
        + " (same-run ratios, median); against workers=1 pinned: "
        + ", ".join(f"{_f(summary[c]['ratio_vs_pinned_median'], '.2f')}x ({c})" for c in clients),
        file=out,
    )
    failures = [r for rows in runs for r in rows if r.get("failed")]
    for r in failures:
        print(f"note: {r['client']} {r['row']} failed: {r['failed']}", file=out)
    others = [(r["split"].get("other_processes", 0.0), r) for rows in runs for r in rows if r.get("split")]
    busy = [(share, r) for share, r in others if share > OTHERS_NOTE_PERCENT]
    if busy:
        share, worst = max(busy, key=lambda item: item[0])
        print(
            f"note: other processes used > {OTHERS_NOTE_PERCENT:g} % of a core in {len(busy)} row(s) (up to "
            f"{share:.0f} %, {worst['client']} {worst['row']}): those figures are low and noisy",
            file=out,
        )
    for r in (r for rows in runs for r in rows if r.get("errors")):
        print(f"note: {r['client']} {r['row']}: {r['errors']} of {r['requests']} requests failed", file=out)
    if args.json:
        record = {"date": datetime.date.today().isoformat(), "users": args.users, "duration_s": args.duration}
        record |= {"nginx_worker_processes": args.nginx_workers, "runs": runs, "summary": summary}
        print(json.dumps(record), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # nginx and the row's subprocess are stopped on the way out
        log("interrupted")
        sys.exit(130)

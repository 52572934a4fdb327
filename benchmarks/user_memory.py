#!/usr/bin/env python3
"""What one virtual user costs in memory, part by part (issue 13; the table in benchmarks/README.md).

Two measurements, both with ``tracemalloc`` (Python allocations, exact) and RSS deltas
(what the kernel charges, allocator overhead and C libraries included):

``parts``: each part built ``--count`` times in isolation and kept alive; the bytes
per instance are the traced growth divided by the count. Parts that need a network
(the keep-alive connection) talk to a local nginx (``throughput.py``'s) on 127.0.0.1.

``engine``: the real ``Engine`` with ``--count`` users, think time 60 s, against the same
nginx; a snapshot is taken once every user has had its first answer and thinks, and the
growth since the clock started is grouped by source file (per user).

Run ``python benchmarks/user_memory.py --help``; a run takes ~30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput
from scale import _nginx_with_room, _raise_nofile, rss_mb

from pytest_shopflow_perf.engine.engine import Engine, _Slot
from pytest_shopflow_perf.engine.transport import RecordingTransport, TransportCounters
from pytest_shopflow_perf.engine.user import User, UserContext
from pytest_shopflow_perf.metrics.recorder import Recorder
from pytest_shopflow_perf.profile.resolve import Source, resolve_profile


def _profile(users: int, think: str, duration: str, client: str = "httpx") -> Any:
    empty = Source("none", {})
    marker = Source("bench", {"users": users, "duration": duration, "think_time": think, "client": client})
    return resolve_profile(ini=empty, marker=marker, env=empty, cli=empty)


def _measure(count: int, build: Callable[[int], Any]) -> tuple[float, float]:
    """Bytes per instance (traced, RSS) of ``build(i)`` kept alive ``count`` times."""
    gc.collect()
    keep: list[Any] = []
    base, _ = tracemalloc.get_traced_memory()
    rss0 = rss_mb()
    for i in range(count):
        keep.append(build(i))
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    rss1 = rss_mb()
    per = (traced - base) / count
    del keep
    gc.collect()
    return per, (rss1 - rss0) * 1024 * 1024 / count


async def measure_parts(url: str, count: int) -> list[dict[str, Any]]:
    import anyio
    import httptools

    from pytest_shopflow_perf.engine.fast_transport import FastTransport, _Connection

    profile = _profile(count, "10s", "30s")

    async def journey(user: Any) -> None:
        await asyncio.sleep(0)

    engine = Engine(profile, journey, base_url=url)
    recorder = Recorder(open_model=False, start=time.perf_counter())
    checks: dict[str, list[int]] = {}
    counters = TransportCounters()
    shared_context = UserContext(recorder, checks, counters)
    dummy = httpx_dummy_transport()
    loop = asyncio.get_running_loop()
    rows: list[dict[str, Any]] = []

    def row(part: str, how: str, build: Callable[[int], Any]) -> None:
        traced, rss = _measure(count, build)
        rows.append({"part": part, "traced_bytes": round(traced), "rss_bytes": round(rss), "how": how})

    import httpx

    row("engine client (EngineClient + RecordingTransport + FastTransport), as Engine.clients builds it",
        "clients.new(context)", lambda i: engine.clients.new(UserContext(recorder, checks, counters)))  # fmt: skip
    row("httpx.AsyncClient alone (transport given)", "httpx.AsyncClient(base_url=..., transport=shared, ...)",
        lambda i: httpx.AsyncClient(base_url=url, transport=dummy, timeout=30.0, follow_redirects=True,
                                    trust_env=False))  # fmt: skip
    row("RecordingTransport", "RecordingTransport(shared inner, context, policy)",
        lambda i: RecordingTransport(dummy, shared_context, engine.target_policy))  # fmt: skip
    row("FastTransport (empty pool)", "FastTransport(lambda: ..., policy, counters=...)",
        lambda i: FastTransport(lambda: dummy, engine.target_policy, counters=counters))  # fmt: skip
    row("random.Random(f'{seed}:{id}')", "random.Random(str)",
        lambda i: __import__("random").Random(f"0:{i}"))  # fmt: skip
    row("UserContext", "UserContext(recorder, checks, counters)", lambda i: UserContext(recorder, checks, counters))
    row("User (no rng, shared client)", "User(id, client=shared, context=shared)",
        lambda i: _user(i, None, shared_context))  # fmt: skip
    row("_Slot (its anyio.Event included, if any)", "_Slot(id, shared context)", lambda i: _Slot(i, shared_context))
    row("anyio.Event", "anyio.Event()", lambda i: anyio.Event())
    closed_over = _Slot(0, shared_context)
    row("should_stop closure (lambda over slot and engine)", "lambda: slot.stop or engine._stopping",
        lambda i: (lambda: closed_over.stop or engine._stopping))  # fmt: skip
    row("_slots dict entry", "dict of count ids -> shared slot (amortized)", _slots_dict_entry(count))
    row("httptools.HttpResponseParser", "httptools.HttpResponseParser(protocol)",
        lambda i: httptools.HttpResponseParser(shared_context))  # fmt: skip
    row("_Connection protocol (parser included, no socket)", "_Connection(loop, live)",
        lambda i: _Connection(loop, set()))  # fmt: skip

    # One keep-alive connection: socket, selector key, asyncio transport, protocol, parser.
    transports = [FastTransport(lambda: dummy, engine.target_policy, counters=counters) for _ in range(count)]
    gc.collect()
    base, _ = tracemalloc.get_traced_memory()
    rss0 = rss_mb()
    for transport in transports:
        request = httpx.Request("GET", url + "/")
        await transport.handle_async_request(request)
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    rows.append(
        {
            "part": "one idle keep-alive connection (socket, asyncio transport, selector key, _Connection, parser)",
            "traced_bytes": round((traced - base) / count),
            "rss_bytes": round((rss_mb() - rss0) * 1024 * 1024 / count),
            "how": "FastTransport.handle_async_request(GET /) on nginx, connection kept idle",
        }
    )
    for transport in transports:
        await transport.aclose()

    # A task parked as a thinking user: task, coroutine frames of the engine's call chain.
    stop = anyio.Event()

    async def think_like_user() -> None:
        with anyio.move_on_after(60):
            await stop.wait()

    gc.collect()
    base, _ = tracemalloc.get_traced_memory()
    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(think_like_user, name=f"shopflow-perf user {i}")
        await anyio.sleep(0.5)
        traced, _ = tracemalloc.get_traced_memory()
        stop.set()
    rows.append(
        {
            "part": "a parked anyio task (task, its name, TaskState, cancel scope, timer, 2 coroutine frames)",
            "traced_bytes": round((traced - base) / count),
            "rss_bytes": None,
            "how": "task group start_soon of a coroutine waiting in move_on_after(60) on a shared Event",
        }
    )
    return rows


def _user(i: int, client: Any, context: UserContext) -> User:
    import random

    try:
        return User(id=i, client=client, context=context)  # type: ignore[call-arg]
    except TypeError:  # before the lazy rng: an rng was required
        return User(id=i, client=client, rng=random.Random(0), context=context)


def _slots_dict_entry(count: int) -> Callable[[int], Any]:
    table: dict[int, Any] = {}
    marker = object()

    def build(i: int) -> None:
        table[i] = marker

    return build


def httpx_dummy_transport() -> Any:
    import httpx

    return httpx.MockTransport(lambda request: httpx.Response(200))


async def measure_engine(url: str, count: int, client: str = "httpx") -> dict[str, Any]:
    """The real engine: growth per user by file once every user thinks after its first answer."""
    profile = _profile(count, "60s", "30s", client)
    state: dict[str, Any] = {"answered": 0}
    done = asyncio.Event()

    def on_clock_start(_t0: float) -> None:
        gc.collect()
        state["base"] = tracemalloc.take_snapshot()
        state["rss0"] = rss_mb()

    async def journey(user: Any) -> None:
        await user.client.get("/")
        state["answered"] += 1
        if state["answered"] == count:
            done.set()

    engine = Engine(profile, journey, base_url=url, on_clock_start=on_clock_start)

    async def snap() -> None:
        await done.wait()
        await asyncio.sleep(0.5)  # every user is in its think time now
        gc.collect()
        state["snap"] = tracemalloc.take_snapshot()
        state["rss1"] = rss_mb()
        engine.request_stop("measured")

    task = asyncio.ensure_future(snap())
    await engine.run()
    task.cancel()
    stats = state["snap"].compare_to(state["base"], "filename")
    by_file = [
        {"file": _short(s.traceback[0].filename), "bytes_per_user": round(s.size_diff / count)}
        for s in stats
        if abs(s.size_diff) / count >= 16
    ]
    lines = state["snap"].compare_to(state["base"], "lineno")[:25]
    return {
        "users": count,
        "traced_per_user": round(sum(s.size_diff for s in stats) / count),
        "rss_per_user": round((state["rss1"] - state["rss0"]) * 1024 * 1024 / count),
        "by_file": by_file,
        "top_lines": [
            {
                "line": f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                "bytes_per_user": s.size_diff // count,
            }
            for s in lines
        ],
    }


def _short(filename: str) -> str:
    for marker in ("site-packages/", "pytest_shopflow_perf/", "python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> int:
    parser = argparse.ArgumentParser(description="Memory per virtual user, part by part (tracemalloc and RSS).")
    parser.add_argument("--count", type=throughput.positive_int, default=2000, help="instances / users (default 2000)")
    parser.add_argument("--mode", choices=("parts", "engine", "both"), default="both")
    parser.add_argument("--client", choices=("httpx", "fast"), default="httpx", help="the engine mode's client")
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout")
    args = parser.parse_args()
    _raise_nofile(2 * args.count + 1000)
    nginx = throughput.find_nginx()
    if nginx is None:
        raise SystemExit("nginx is needed (apt-get install -y nginx)")
    out: dict[str, Any] = {"count": args.count}
    with _nginx_with_room(nginx, pin=False) as target:
        if args.mode in ("parts", "both"):
            tracemalloc.start(1)
            out["parts"] = asyncio.run(measure_parts(target.url, args.count))
            tracemalloc.stop()
        if args.mode in ("engine", "both"):
            tracemalloc.start(1)
            out["engine"] = asyncio.run(measure_engine(target.url, args.count, args.client))
            tracemalloc.stop()
    if args.json:
        print(json.dumps(out))
        return 0
    for item in out.get("parts", []):
        rss = "-" if item["rss_bytes"] is None else f"{item['rss_bytes']:,}"
        print(f"{item['traced_bytes']:>8,} B traced  {rss:>8} B RSS  {item['part']}")
    if "engine" in out:
        e = out["engine"]
        print(f"\nengine, {e['users']} users thinking: {e['traced_per_user']:,} B/user traced, "
              f"{e['rss_per_user']:,} B/user RSS")  # fmt: skip
        for item in e["by_file"]:
            print(f"{item['bytes_per_user']:>8,}  {item['file']}")
        print("top lines:")
        for item in e["top_lines"]:
            print(f"{item['bytes_per_user']:>8,}  {item['line']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

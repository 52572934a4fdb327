"""A tiny HTTP/1.1 server with known latency, for accuracy tests of the engine.

Raw asyncio, no framework, so its own overhead stays far below the delays it
injects. Run as a script: it prints its port on the first line of stdout. Each response
carries ``X-Service-Time-Us``: how long the server really held the request
(asyncio timers fire up to ~1 ms late), the true value accuracy tests compare to.

Paths:
  /delay/<ms>                        every response after <ms>
  /mixed/<fast_ms>/<slow_ms>/<every> every <every>-th request slow, the rest fast
  /stall-after/<n>/<ms>              request number <n> starts a stall of <ms>: every
                                     request arriving until it ends waits for its end
  /status/<code>                     answers with that status
  /hang                              never answers (within an hour)
  /flaky/<ms>/<percent>               after <ms>, 500 with probability <percent> %, else 200
  /truth?tag=<tag>                   JSON of what the server did for requests carrying ?tag=<tag>:
                                     {"service_us": [...], "statuses": {"200": n, ...}} (the truth
                                     of a run whose journeys ran in other processes: shards)
  /burst/<after_s>/<for_s>/<code>    <code> from <after_s> to <after_s> + <for_s> seconds after the
                                     first request to this path, 200 otherwise
  /grow/<base_ms>/<ms_per_s>         after <base_ms> + <ms_per_s> x the seconds since the server started:
                                     latency that drifts upward (assert_no_drift)
  /slots/<n>/<ms>                    at most <n> requests in service at once, each holding its slot <ms>;
                                     the others queue (first come, first served): a known capacity of
                                     <n> x 1000 / <ms> requests/s (find_capacity). X-Service-Time-Us
                                     includes the wait for a slot
  anything else                      200 with a small JSON body
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import defaultdict

counters: defaultdict[str, int] = defaultdict(int)
truth: defaultdict[str, dict] = defaultdict(lambda: {"service_us": [], "statuses": defaultdict(int)})
flaky_random = random.Random(7)
first_seen: dict[str, float] = {}
stall_until = 0.0
started_at = time.monotonic()
slots: dict[tuple[int, float], asyncio.Semaphore] = {}


async def hold_slot(n: int, ms: float) -> None:
    """Wait for one of the ``n`` slots of ``(n, ms)`` (created on first use), then hold it ``ms``."""
    semaphore = slots.setdefault((n, ms), asyncio.Semaphore(n))
    async with semaphore:
        await asyncio.sleep(ms / 1000)


async def delay_for(path: str) -> tuple[int, float]:
    global stall_until
    parts = path.split("?")[0].strip("/").split("/")
    head = parts[0]
    if head == "delay":
        return 200, float(parts[1]) / 1000
    if head == "mixed":
        counters[path] += 1
        fast, slow, every = float(parts[1]), float(parts[2]), int(parts[3])
        return 200, (slow if counters[path] % every == 0 else fast) / 1000
    if head == "stall-after":
        counters[path] += 1
        now = time.monotonic()
        if counters[path] == int(parts[1]):
            stall_until = now + float(parts[2]) / 1000
        return 200, max(0.0, stall_until - now)
    if head == "burst":
        # the first request to this path starts its clock
        started = first_seen.setdefault(path, time.monotonic())
        elapsed = time.monotonic() - started
        return (int(parts[3]) if float(parts[1]) <= elapsed < float(parts[1]) + float(parts[2]) else 200), 0.0
    if head == "slots":
        await hold_slot(int(parts[1]), float(parts[2]))
        return 200, 0.0
    if head == "grow":
        return 200, (float(parts[1]) + float(parts[2]) * (time.monotonic() - started_at)) / 1000
    if head == "flaky":
        return (500 if flaky_random.random() * 100 < float(parts[2]) else 200), float(parts[1]) / 1000
    if head == "hang":
        return 200, 3600.0
    if head == "status":
        return int(parts[1]), 0.0
    return 200, 0.0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if length:
                await reader.readexactly(length)
            started = time.perf_counter()
            tag = path.partition("tag=")[2].partition("&")[0]
            if path.startswith("/truth"):
                record = truth[tag]
                body = json.dumps({"service_us": record["service_us"], "statuses": record["statuses"]}).encode()
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
                continue
            status, delay = await delay_for(path)
            if delay > 0:
                await asyncio.sleep(delay)
            body = json.dumps({"items": [{"id": 1}, {"id": 2}], "path": path}).encode()
            service_us = int((time.perf_counter() - started) * 1_000_000)
            if tag:
                truth[tag]["service_us"].append(service_us)
                truth[tag]["statuses"][str(status)] += 1
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"X-Service-Time-Us: {service_us}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))

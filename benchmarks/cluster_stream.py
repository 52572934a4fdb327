"""How fast a Dask cluster carries shard windows back: a ``distributed.Queue`` against structured events.

(Dask's Pub/Sub is gone from distributed 2026.x; its structured events, ``log_event`` on a worker
and ``Client.subscribe_topic``, are what replaced it.)

A shard sends one window batch a second; this measures how many the transport carries and how
late they arrive, so the choice in ``engine/shards/cluster.py`` rests on a figure. Run:
``python benchmarks/cluster_stream.py`` (a LocalCluster of 2 worker processes on 127.0.0.1).
"""

from __future__ import annotations

import statistics
import sys
import time

BATCH_BYTES = 8_000  # a window of ~10 endpoints: their non-zero buckets and counts
MESSAGES = 400


def produce_queue(name: str, count: int, size: int) -> int:
    from distributed import Queue

    queue = Queue(name)
    for _ in range(count):
        queue.put((time.time(), b"x" * size))
    return count


def produce_events(name: str, count: int, size: int) -> int:
    from distributed import get_worker

    worker = get_worker()
    for _ in range(count):
        worker.log_event(name, {"sent": time.time(), "body": "x" * size})
    return count


def measure(client, workers, transport: str) -> tuple[float, float, float]:
    import queue as local_queue

    from distributed import Queue

    name = f"bench-{transport}-{time.time_ns()}"
    expected = MESSAGES * len(workers)
    arrived: local_queue.Queue[tuple[float, str]] = local_queue.Queue()
    queue = Queue(name, client=client) if transport == "queue" else None
    if transport == "events":
        client.subscribe_topic(name, lambda event: arrived.put((event[1]["sent"], event[1]["body"])))
    produce = produce_events if transport == "events" else produce_queue
    futures = [client.submit(produce, name, MESSAGES, BATCH_BYTES, workers=[w], pure=False) for w in workers]
    delays: list[float] = []
    start = time.perf_counter()
    while len(delays) < expected:
        items = (queue.get(batch=True) or [queue.get(timeout=10)]) if queue is not None else [arrived.get(timeout=10)]
        now = time.time()
        delays += [now - sent for sent, _ in items]
        if time.perf_counter() - start > 60:
            break
    elapsed = time.perf_counter() - start
    client.gather(futures)
    return len(delays) / elapsed, statistics.median(delays) * 1000, max(delays) * 1000


def main() -> int:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        workers = sorted(client.scheduler_info()["workers"])
        print(f"{len(workers)} workers, {MESSAGES} messages of {BATCH_BYTES:,} bytes each, as fast as they go")
        for transport in ("queue", "events", "queue", "events"):
            rate, median_ms, max_ms = measure(client, workers, transport)
            print(f"{transport:5}  {rate:8,.0f} messages/s  delay median {median_ms:6.1f} ms  max {max_ms:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The analytics event pipeline under load: Redis streams as the broker, timed with ``user.measure``.

The analytics guide's KPIs (producer throughput > 1000 events/s, consumer latency < 100 ms
average and < 1 s p99) as assertable figures of an ordinary load test: producers ``XADD`` order
events, each publish timed as the row ``XADD order-events``; consumers of one consumer group read
them with ``XREADGROUP`` and ``user.record`` the time from publish (carried in the message) to
consume as the row ``consume order-events``. The broker is a real redis-server the test starts on
loopback and stops (skipped, with the reason, where redis-server is not installed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pytest_shopflow_perf import assert_slo, assert_throughput

pytestmark = pytest.mark.load

STREAM = "order-events"
GROUP = "analytics"
CONSUMERS_EVERY = 5  # users 0, 5, 10, ... consume; the others produce
EVENTS_PER_ITERATION = 10


@pytest.fixture
def broker() -> Iterator[str]:
    from support.redis import REDIS_SERVER, RedisProcess

    if REDIS_SERVER is None:
        pytest.skip("the event-pipeline scenario needs redis-server (apt-get install redis-server)")
    redis = RedisProcess()
    redis.start()
    try:
        import redis as redis_client

        with redis_client.Redis.from_url(redis.url) as admin:
            admin.xgroup_create(STREAM, GROUP, id="$", mkstream=True)
        yield redis.url
    finally:
        redis.stop()


def pipeline(url: str):
    async def connect(user) -> None:
        import redis.asyncio as aioredis

        user.state["redis"] = aioredis.Redis.from_url(url)

    async def disconnect(user) -> None:
        await user.state["redis"].aclose()

    async def journey(user) -> None:
        redis = user.state["redis"]
        if user.id % CONSUMERS_EVERY == 0:
            await consume(user, redis)
            return
        for n in range(EVENTS_PER_ITERATION):
            event = {"sent_ns": time.time_ns(), "order": f"ord_{user.id}_{user.iteration}_{n}", "total": "42.50"}
            async with user.measure("XADD order-events"):
                await redis.xadd(STREAM, event)
        await user.think("20ms", "40ms")

    async def consume(user, redis) -> None:
        replies = await redis.xreadgroup(GROUP, f"consumer-{user.id}", {STREAM: ">"}, count=200, block=100)
        received_ns = time.time_ns()
        for _stream, messages in replies:
            for _message_id, fields in messages:
                user.record("consume order-events", (received_ns - int(fields[b"sent_ns"])) / 1e9)
            if messages:
                await redis.xack(STREAM, GROUP, *(message_id for message_id, _ in messages))

    return journey, connect, disconnect


@pytest.mark.load(users=10, duration="16s", ramp_up="2s", name="analytics: order events through Redis streams")
def test_event_pipeline_throughput_and_consumer_latency(load, broker):
    """Producers publish > 1000 events/s; consumers see each event < 100 ms later on average, < 1 s at p99."""
    journey, connect, disconnect = pipeline(broker)
    result = load.run(journey, on_start=connect, on_stop=disconnect)
    assert result.endpoints["consume order-events"].requests > 0
    assert_throughput(result, min_rps=1000, endpoint="XADD order-events")
    assert_slo(
        result,
        "XADD order-events: error_rate<1%",
        "XADD order-events: p(99)<50ms",
        "consume order-events: avg<100ms",
        "consume order-events: p(99)<1s",
    )

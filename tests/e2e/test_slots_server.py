"""The delay server's ``/slots/<n>/<ms>``: a known capacity of n x 1000 / ms requests/s for capacity search.

Only facts that hold however the machine is loaded (lower bounds): every request holds a slot for its
ms, and every client clock starts before the first slot is taken (all sends start in one loop turn),
so the k-th answer comes at least ceil(k / n) holds after the client started.
"""

from __future__ import annotations

import asyncio
import time

import httpx


async def _concurrently(base_url: str, path: str, count: int) -> tuple[list[float], list[float]]:
    """(wall seconds, server-side seconds) of ``count`` requests sent at once, each on its own connection."""
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=30.0) as client:

        async def one() -> tuple[float, float]:
            started = time.perf_counter()
            response = await client.get(path)
            assert response.status_code == 200
            return time.perf_counter() - started, int(response.headers["X-Service-Time-Us"]) / 1e6

        timings = await asyncio.gather(*(one() for _ in range(count)))
    return sorted(t for t, _ in timings), sorted(s for _, s in timings)


def test_two_slots_of_50_ms_make_the_last_two_of_four_wait_for_one(delay_server: str) -> None:
    wall, service = asyncio.run(_concurrently(delay_server, "/slots/2/50", 4))
    tolerance = 0.003  # the event loop's clock resolution: a timer may fire a hair early
    assert wall[0] >= 0.050 - tolerance  # everyone holds a slot for its 50 ms
    assert service[0] >= 0.050 - tolerance
    # two slots, four requests: the last two answers waited for a slot to free, then held it 50 ms
    assert wall[-2] >= 2 * 0.050 - tolerance
    assert wall[-1] >= 2 * 0.050 - tolerance


def test_n_slots_take_n_requests_at_once_and_the_n_plus_first_waits(delay_server: str) -> None:
    # three slots of 60 ms, seven requests: waves of 3, 3 and 1, so the last waits for two holds
    wall, service = asyncio.run(_concurrently(delay_server, "/slots/3/60", 7))
    tolerance = 0.003
    assert service[0] >= 0.060 - tolerance
    assert wall[2] >= 0.060 - tolerance
    assert wall[-4] >= 2 * 0.060 - tolerance  # the last four came after the first wave
    assert wall[-1] >= 3 * 0.060 - tolerance
    assert len(wall) == 7

"""In-process targets: an ASGI app driven through httpx's ASGITransport, with its lifespan run.

httpx's ASGITransport sends requests only; an app that opens its database or
cache at start-up (lifespan) would answer them unprepared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from pytest_shopflow_perf._errors import ShopflowPerfError

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class LifespanError(ShopflowPerfError, RuntimeError):
    """The app reported that its start-up or shutdown failed."""


@asynccontextmanager
async def lifespan(app: ASGIApp, timeout: float = 30.0) -> AsyncIterator[None]:
    """Run the ASGI lifespan protocol around the block; apps without lifespan support are fine."""
    to_app_send, to_app_receive = anyio.create_memory_object_stream[Message](2)
    from_app_send, from_app_receive = anyio.create_memory_object_stream[Message](2)
    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    supported = True

    async def run_app() -> None:
        nonlocal supported
        try:
            await app(scope, to_app_receive.receive, from_app_send.send)
        except Exception:
            supported = False  # the app does not speak lifespan: run without it
        finally:
            from_app_send.close()

    async with anyio.create_task_group() as task_group, to_app_send, to_app_receive, from_app_receive:
        task_group.start_soon(run_app)
        await _exchange(to_app_send, from_app_receive, "startup", timeout)
        try:
            yield
        finally:
            if supported:
                with anyio.CancelScope(shield=True):
                    await _exchange(to_app_send, from_app_receive, "shutdown", timeout)
            task_group.cancel_scope.cancel()


async def _exchange(
    send: anyio.abc.ObjectSendStream[Message],
    receive: anyio.abc.ObjectReceiveStream[Message],
    phase: str,
    timeout: float,
) -> None:
    try:
        await send.send({"type": f"lifespan.{phase}"})
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        return
    with anyio.fail_after(timeout):
        try:
            message = await receive.receive()
        except anyio.EndOfStream:
            return  # the app returned without answering: no lifespan support
    if message["type"] == f"lifespan.{phase}.failed":
        raise LifespanError(f"the ASGI app's {phase} failed: {message.get('message', '')}")

"""Raw asyncio servers on 127.0.0.1 that misbehave in time (trickle, never end), for the engine's deadline tests.

Each runs its own event loop in a daemon thread, so the engine under test (``anyio.run`` in the
main thread) never shares a loop with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


@contextlib.contextmanager
def serve(handler: Handler, *, backlog: int = 100, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """``with serve(handler) as url:`` runs ``handler`` for every connection until the block ends.

    With ``tls`` (a server context, e.g. from trustme) it serves https.
    """
    ready = threading.Event()
    state: dict[str, object] = {}

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        stop = asyncio.Event()
        server = await asyncio.start_server(guarded, "127.0.0.1", 0, backlog=backlog, ssl=tls)
        state.update(port=server.sockets[0].getsockname()[1], loop=asyncio.get_running_loop(), stop=stop)
        ready.set()
        async with server:
            await stop.wait()
            server.close()
            # Every handler ends (and closes its writer) before the loop closes: a transport left
            # for the garbage collector is a ResourceWarning, an error in a later test's teardown.
            handlers = asyncio.all_tasks() - {asyncio.current_task()}
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await asyncio.sleep(0)  # the writers' close callbacks

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"{'https' if tls is not None else 'http'}://127.0.0.1:{state['port']}"
    finally:
        loop = state["loop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        stop = state["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


async def trickle_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the status line and headers one byte every 0.2 s (slowloris response)."""
    await read_head(reader)
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


async def trickle_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Headers at once, then a 1 GB Content-Length fed one byte every 0.2 s."""
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
    while True:
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.2)


async def endless_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An endless chunked body: 64 KiB chunks as fast as the client reads them."""
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    while True:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0)


def fixed_body(size: int, delay: float = 0.0) -> Handler:
    """A keep-alive server answering every request with ``size`` bytes after ``delay`` seconds."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            if delay:
                await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
            await writer.drain()

    return handler

"""The virtual users' tasks: bare asyncio tasks on asyncio loops, the run's task group elsewhere.

A child of an anyio task group costs ~4 KB (its ``TaskHandle``, a cancel scope, an ``Event``,
weak references); a bare asyncio task ~1.3 KB (tracemalloc, 5,000 parked tasks): 27 MB of
10,000 users. What the task group gave them is kept here: the engine cancels what is left at the
end of the run and waits for it, and an exception that escapes a user (an engine bug: journeys'
own errors are recorded where they happen) is raised by the run, not lost.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc


class UserTasks:
    """Starts, tracks and stops the users' tasks of one run."""

    __slots__ = ("_context", "_group", "_loop", "_tasks", "crash")

    def __init__(self, group: anyio.abc.TaskGroup) -> None:
        self._group = group
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # trio: its task group it is
            self._loop = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._context = contextvars.copy_context()  # of the done callbacks: one, not a copy per user
        self.crash: BaseException | None = None  # the first exception that escaped a user's task

    def start(self, function: Callable[..., Coroutine[Any, Any, None]], *args: Any, name: str) -> None:
        if self._loop is None:
            self._group.start_soon(function, *args, name=name)
            return
        task: asyncio.Task[None] = self._loop.create_task(function(*args), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done, context=self._context)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self.crash is not None:
            return
        self.crash = task.exception()
        if self.crash is not None:
            self._group.cancel_scope.cancel()  # as a task group does: the run ends now, and raises it

    async def cancel_all(self) -> None:
        """Cancel the tasks still running and wait until they ended (their cleanup included)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)

    def cancel_nowait(self) -> None:
        """On the way out of a run that failed: cancel, the loop finishes them."""
        for task in list(self._tasks):
            task.cancel()

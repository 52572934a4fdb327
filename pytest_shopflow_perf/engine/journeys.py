"""What a load test runs: journeys (async functions taking the user), alone, listed or weighted.

``normalize_journeys`` checks a journey spec and turns it into the journeys and
their cumulative weights the engine draws from.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pytest_shopflow_perf.engine.user import User

Journey = Callable[[User], Awaitable[Any]]
JourneySpec = Journey | Mapping[Journey, float] | Sequence[Journey]


def is_async_callable(obj: object) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(getattr(obj, "__call__", None))  # noqa: B004


def check_hooks(**hooks: object) -> None:
    """``on_start`` / ``on_stop`` must be async functions taking the user: a TypeError names the wrong one."""
    for hook_name, hook in hooks.items():
        if hook is not None and not is_async_callable(hook):
            raise TypeError(f"{hook_name} must be an async function taking the user, not {hook!r}")


def callable_name(obj: object) -> str:
    """How a journey or hook is named in errors and reports: its qualified name, else its repr."""
    return str(getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj))


def normalize_journeys(spec: JourneySpec) -> tuple[list[Journey], list[float]]:
    """``browse``, ``[browse, checkout]`` or ``{browse: 3, checkout: 1}`` -> journeys and cumulative weights."""
    if isinstance(spec, Mapping):
        pairs = list(spec.items())
    elif callable(spec):
        pairs = [(spec, 1.0)]
    elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        pairs = [(journey, 1.0) for journey in spec]
    else:
        raise TypeError(
            f"journeys must be an async function, a list of them or a {{journey: weight}} dict, not {spec!r}"
        )
    if not pairs:
        raise TypeError("load.run() needs at least one journey: load.run(browse) or load.run({browse: 3, checkout: 1})")
    journeys: list[Journey] = []
    cumulative: list[float] = []
    total = 0.0
    for journey, weight in pairs:
        if not is_async_callable(journey):
            raise TypeError(
                f"journey {callable_name(journey)} must be an async function taking the user, e.g. "
                "`async def browse(user): await user.client.get('/')`"
            )
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise TypeError(f"weight of journey {callable_name(journey)} must be a positive number, not {weight!r}")
        total += float(weight)
        journeys.append(journey)
        cumulative.append(total)
    return journeys, cumulative

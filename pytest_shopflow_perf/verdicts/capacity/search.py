"""The search for the highest level a service sustains, as a pure function of "run this level".

Geometric steps from ``start`` (times ``factor``, capped at ``max``) until a level fails, then
``refine`` bisections between the last level that passed and the first that failed: after
them the answer lies within ``(first failing - last passing) / 2**refine`` of the truth. A
step whose generator saturated ends the search with ``limit="generator"``: it never claims a
service limit it did not see. Levels of ``model="users"`` are whole numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pytest_shopflow_perf._errors import ShopflowPerfError
from pytest_shopflow_perf.result.capacity import Capacity, CapacityStep

__all__ = ["CapacityError", "check_search", "search"]

MODELS = ("rate", "users")


class CapacityError(ShopflowPerfError, ValueError):
    """``find_capacity`` was given a search it cannot run; the message says what to give instead."""


def check_search(*, model: str, start: float, max: float, factor: float, refine: int) -> None:
    if model not in MODELS:
        raise CapacityError(f"find_capacity(model={model!r}): expected 'rate' (arrivals per second) or 'users'")
    for name, value in (("start", start), ("max", max), ("factor", factor)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CapacityError(f"find_capacity({name}={value!r}): expected a finite number")
    if start <= 0:
        raise CapacityError(f"find_capacity(start={start!r}): the first level must be above 0")
    if max < start:
        raise CapacityError(f"find_capacity(max={max!r}): must be at least start={start!r}")
    if factor <= 1:
        raise CapacityError(f"find_capacity(factor={factor!r}): each level multiplies the last, so factor > 1")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise CapacityError(f"find_capacity(refine={refine!r}): the number of bisections, a whole number >= 0")
    if model == "users" and start < 1:
        raise CapacityError(f"find_capacity(model='users', start={start!r}): at least one user")


def _level(value: float, model: str) -> float:
    return float(math.floor(value)) if model == "users" else round(value, 6)


def search(
    run_level: Callable[[float], CapacityStep],
    *,
    model: str,
    start: float,
    max: float,
    factor: float = 2.0,
    refine: int = 2,
    slo: tuple[str, ...] = (),
) -> Capacity:
    """Run levels through ``run_level`` (one full run each) and say what the service sustains."""
    check_search(model=model, start=start, max=max, factor=factor, refine=refine)
    steps: list[CapacityStep] = []
    passing: float | None = None
    failing: float | None = None
    limit = "service"
    level = _level(start, model)
    while True:
        step = run_level(level)
        steps.append(step)
        if step.saturated:
            limit = "generator"
            break
        if not step.passed:
            failing = level
            break
        passing = level
        if level >= max:
            limit = "max"
            break
        level = _level(min(level * factor, max), model)
        if level <= passing:  # users: factor too small to reach the next whole user
            level = passing + 1
    if limit == "service" and passing is not None and failing is not None:
        for _ in range(refine):
            middle = _level((passing + failing) / 2, model)
            if middle <= passing or middle >= failing:
                break  # no level between them (whole users)
            step = run_level(middle)
            steps.append(step)
            if step.saturated:
                break  # the service already broke above: that stands; this level says nothing more
            if step.passed:
                passing = middle
            else:
                failing = middle
    return Capacity(model=model, slo=slo, max_sustainable=passing, limit=limit, steps=tuple(steps))

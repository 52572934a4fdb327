"""What a capacity search found: the highest level the SLOs held at, why it stopped, and every step.

Plain data: the search (``verdicts/capacity/search.py``) fills it, the reports and the capacity
baseline read its ``to_dict()`` (a run's ``extra["capacity"]``). A level is an arrival rate
(iterations started per second, ``model="rate"``) or a number of users (``model="users"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pytest_shopflow_perf.result.model import LoadResult

__all__ = ["LIMITS", "UNITS", "Capacity", "CapacityStep"]

Limit = Literal["service", "generator", "max"]
LIMITS: tuple[str, ...] = ("service", "generator", "max")
UNITS = {"rate": "arrivals/s", "users": "users"}


@dataclass(frozen=True)
class CapacityStep:
    """One level of the search: a full run with its own SLO verdict.

    ``passed`` only when every threshold held and the run was not aborted; a step whose generator
    saturated (or that lost a shard) says nothing of the service, whatever its thresholds said.
    """

    level: float
    passed: bool
    result: LoadResult | None = field(default=None, compare=False, repr=False)
    breaches: tuple[str, ...] = ()
    saturated: bool = False
    aborted: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "level": self.level,
            "passed": self.passed,
            "saturated": self.saturated,
            "aborted": self.aborted,
            "breaches": list(self.breaches),
        }
        result = self.result
        if result is not None:
            data.update(
                test=result.test,
                duration_s=round(result.duration, 3),
                rps=round(result.rps, 2),
                p50_ms=round(result.percentile(50) * 1000, 2),
                p95_ms=round(result.percentile(95) * 1000, 2),
                p99_ms=round(result.percentile(99) * 1000, 2),
                error_rate=round(result.error_rate, 6),
            )
        return data


@dataclass(frozen=True)
class Capacity:
    """``load.find_capacity``'s answer.

    :param max_sustainable: the highest level that passed (None: the first level already failed).
    :param limit: ``"service"`` (an SLO broke), ``"generator"`` (the generator saturated before any
        SLO broke: the service's limit is higher than anything measured), ``"max"`` (``max`` passed).
    """

    model: str
    slo: tuple[str, ...]
    max_sustainable: float | None
    limit: str
    steps: tuple[CapacityStep, ...]
    regression: Mapping[str, Any] | None = None
    # what a stored capacity must share to be compared: the machine's fingerprint, the length of a step
    conditions: Mapping[str, Any] | None = None

    @property
    def unit(self) -> str:
        return UNITS.get(self.model, "")

    @property
    def breaking(self) -> CapacityStep | None:
        """The lowest level that failed on the service's account (not a saturated generator)."""
        failed = [s for s in self.steps if not s.passed and not s.saturated]
        return min(failed, key=lambda s: s.level) if failed else None

    def to_dict(self) -> dict[str, Any]:
        breaking = self.breaking
        return {
            "model": self.model,
            "unit": self.unit,
            "slo": list(self.slo),
            "max_sustainable": self.max_sustainable,
            "limit": self.limit,
            "breaking": breaking.to_dict() if breaking is not None else None,
            "steps": [step.to_dict() for step in self.steps],
            "regression": dict(self.regression) if self.regression is not None else None,
            "conditions": dict(self.conditions) if self.conditions is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capacity:
        """A record read back (a baseline, a report file): the steps without their results."""
        steps = tuple(
            CapacityStep(
                level=float(step["level"]),
                passed=bool(step["passed"]),
                breaches=tuple(str(b) for b in step.get("breaches", ())),
                saturated=bool(step.get("saturated")),
                aborted=bool(step.get("aborted")),
            )
            for step in data.get("steps", ())
        )
        sustainable = data.get("max_sustainable")
        return cls(
            model=str(data.get("model", "rate")),
            slo=tuple(str(s) for s in data.get("slo", ())),
            max_sustainable=None if sustainable is None else float(sustainable),
            limit=str(data.get("limit", "service")),
            steps=steps,
            regression=data.get("regression"),
            conditions=data.get("conditions"),
        )

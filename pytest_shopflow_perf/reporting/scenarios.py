"""What each scenario asked for and what it got: model, users or rate, duration planned and run.

Read from the run's ``profile`` (the resolved marker values, durations already scaled) and
its generator figures, so a reader of summary.md knows what load the figures are under.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["scenario_facts"]


def _seconds(value: float) -> str:
    """A planned duration as given: ``2 s``, ``0.5 s``, ``600 s``."""
    return f"{value:.3g} s" if value < 10 else f"{value:,.0f} s"


def _measured(value: float) -> str:
    """A measured duration, always with its decimals: ``2.0 s``, ``0.05 s``, ``600.3 s``."""
    return f"{value:.2f} s" if value < 1 else f"{value:,.1f} s"


def _stages_differ(profile: Mapping[str, Any], level: float) -> bool:
    """Whether the stages were given (not the shape users/rate, ramp_up and ramp_down make)."""
    stages: Sequence[Sequence[float]] = profile.get("stages") or []
    duration = float(profile.get("duration") or 0.0)
    up, down = float(profile.get("ramp_up") or 0.0), float(profile.get("ramp_down") or 0.0)
    derived = [(up, level), (duration - up - down, level), (down, 0.0)]
    shape = [(round(d, 6), t) for d, t in derived if d > 0] or [(round(duration, 6), level)]
    return [(round(float(d), 6), float(t)) for d, t in stages] != shape


def _load(profile: Mapping[str, Any], model: str) -> str:
    stages: Sequence[Sequence[float]] = profile.get("stages") or []
    if model == "open":
        rate = float(profile.get("rate") or 0.0)
        parts = [f"{rate:g} arrivals/s", f"max_users {int(profile.get('max_users') or 0):,}"]
        unit = "/s"
        level = rate
    else:
        level = float(profile.get("users") or 0)
        parts = [f"{int(level):,} users"]
        unit = " users"
    if stages and _stages_differ(profile, level):
        parts.insert(1, "stages " + ", ".join(f"{_seconds(float(d))} to {float(t):g}{unit}" for d, t in stages))
    else:
        for key, label in (("ramp_up", "ramp-up"), ("ramp_down", "ramp-down")):
            if profile.get(key):
                parts.append(f"{label} {_seconds(float(profile[key]))}")
    think = profile.get("think_time")
    if think:
        parts.append(f"think {think[0]:g}-{think[1]:g} s")
    workers = profile.get("workers")
    if workers not in (None, 1):
        parts.append(f"workers {workers}")
    return ", ".join(parts)


def _planned(profile: Mapping[str, Any]) -> str:
    duration = float(profile.get("duration") or 0.0)
    scale = float(profile.get("scale") or 1.0)
    text = _seconds(duration)
    if profile.get("iterations"):
        text = f"{int(profile['iterations']):,} iterations (at most {text})"
    if scale != 1.0:
        text += f" (scaled x{scale:g})"
    return text


def scenario_facts(run: Mapping[str, Any]) -> dict[str, Any]:
    """Model, load (users or rate, max_users, stages, think time), planned and actual duration, iterations."""
    profile: Mapping[str, Any] = run.get("profile") or {}
    generator: Mapping[str, Any] = run.get("generator") or {}
    model = str(run.get("model") or profile.get("model") or "closed")
    ran = float(run.get("duration_s") or 0.0)
    stop = str((run.get("extra") or {}).get("stop_reason") or "")
    return {
        "model": model,
        "load": _load(profile, model),
        "planned": _planned(profile) if profile else "-",
        "planned_s": profile.get("duration"),
        "ran": _measured(ran) + (f" (stopped: {stop})" if stop else " (interrupted)" if run.get("interrupted") else ""),
        "ran_s": ran,
        "iterations": int(generator.get("iterations") or 0),
        "dropped_iterations": int(generator.get("dropped_iterations") or 0),
        "peak_users": int(generator.get("peak_users") or 0),
    }

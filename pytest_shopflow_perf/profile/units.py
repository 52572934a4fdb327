"""Parsing of the human units people write in markers, ini files and env vars.

Kept free of pytest so the engine, the assertions and the CLI can share it.
"""

from __future__ import annotations

import math
import re

from pytest_shopflow_perf._errors import ShopflowPerfError

DURATION_FORMS = 'a number of seconds (2, 0.5) or a string such as "250ms", "30s", "5m", "1h" or "1m30s"'
PERCENT_FORMS = 'a fraction (0.01) or a percentage string such as "1%"'
SIZE_FORMS = 'a number of bytes (65536) or a string such as "512KB", "16MB" or "1MiB"'

_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(us|µs|ms|min|s|m|h)\s*")


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


class UnitError(ShopflowPerfError, ValueError):
    """A value could not be read; the message names the accepted forms."""


def parse_duration(value: object, *, what: str = "duration") -> float:
    """Seconds as a float from a number or a string like "250ms", "5m" or "1m30s"."""
    if isinstance(value, bool):
        raise UnitError(f"{what}={value!r} is not a duration; use {DURATION_FORMS}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value, what)
    else:
        raise UnitError(f"{what}={value!r} is not a duration; use {DURATION_FORMS}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise UnitError(f"{what}={value!r} must be a finite, non-negative duration; use {DURATION_FORMS}")
    return seconds


def _parse_duration_text(text: str, what: str) -> float:
    stripped = text.strip()
    try:
        return float(stripped)
    except ValueError:
        pass
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(stripped):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(stripped) or not stripped:
        raise UnitError(f"{what}={text!r} is not a duration; use {DURATION_FORMS}")
    return total


def parse_fraction(value: object, *, what: str = "rate") -> float:
    """A fraction in [0, 1] from 0.01 or "1%"."""
    if isinstance(value, bool):
        raise UnitError(f"{what}={value!r} is not a rate; use {PERCENT_FORMS}")
    if isinstance(value, (int, float)):
        fraction = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            fraction = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise UnitError(f"{what}={value!r} is not a rate; use {PERCENT_FORMS}") from None
    else:
        raise UnitError(f"{what}={value!r} is not a rate; use {PERCENT_FORMS}")
    if not 0.0 <= fraction <= 1.0:
        raise UnitError(f"{what}={value!r} must lie between 0 and 100 %; use {PERCENT_FORMS}")
    return fraction


def parse_size(value: object, *, what: str = "size") -> int:
    """A positive number of bytes from 65536 or a string like "512KB", "16MB" or "1MiB"."""
    if isinstance(value, bool):
        raise UnitError(f"{what}={value!r} is not a size; use {SIZE_FORMS}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.lower())
        if match is None or match.group(2) not in _SIZE_UNITS:
            raise UnitError(f"{what}={value!r} is not a size; use {SIZE_FORMS}")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    else:
        raise UnitError(f"{what}={value!r} is not a size; use {SIZE_FORMS}")
    if size < 1:
        raise UnitError(f"{what}={value!r} must be at least 1 byte; use {SIZE_FORMS}")
    return size

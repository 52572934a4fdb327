"""Bottlenecks for summary.md: the slowest endpoints that served enough requests, and error hotspots.

An endpoint is ranked on a percentile q only when it served at least 1 / (1 - q) requests, so
that at least one request lies above it (p95: 20, p99: 100); below that the "percentile" is
one of its few slowest requests (a 5-request ``on_start`` login is no bottleneck), and the
endpoint is listed as not ranked instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["RULE", "bottlenecks", "min_requests"]


def min_requests(percentile: float) -> int:
    """Requests an endpoint needs before it is ranked on ``percentile``: 1 / (1 - q) (p95: 20, p99: 100)."""
    return math.ceil(round(100.0 / (100.0 - percentile), 6))


RULE = (
    f"An endpoint is ranked on p95 only with at least {min_requests(95)} requests and on p99 with at least "
    f"{min_requests(99)} (1 / (1 - q): at least one request above the percentile); with fewer, the percentile "
    "is one of its few slowest requests."
)


def bottlenecks(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The slowest endpoints by p95 (only those with enough requests), error hotspots, what was not ranked.

    Hotspots include checks and journeys with errors, on their own rows: an endpoint that
    answered fine is never one.
    """
    rows = [
        {"scenario": run["name"], "endpoint": name, **stats}
        for run in runs
        for name, stats in run["endpoints"].items()
        if stats.get("requests")
    ]
    ranked = [r for r in rows if r["requests"] >= min_requests(95)]
    slowest = sorted(ranked, key=lambda r: (-r["p95_ms"], r["endpoint"], r["scenario"]))[:5]
    not_ranked = [
        {"scenario": r["scenario"], "endpoint": r["endpoint"], "requests": r["requests"]}
        for r in rows
        if r["requests"] < min_requests(95)
    ]
    hotspots: list[dict[str, Any]] = [r for r in rows if r["errors"]]
    for run in runs:
        for event in run.get("event_rows") or []:
            if event["errors"]:
                hotspots.append(
                    {
                        "scenario": run["name"],
                        "endpoint": event["name"],
                        "row": event["group"],
                        "requests": None,
                        "runs": event["runs"],
                        "errors": event["errors"],
                        "error_rate": event["error_rate"],
                        "errors_by_kind": event["errors_by_kind"],
                    }
                )
    hotspots.sort(key=lambda r: (-(r["error_rate"] or 0.0), -r["errors"], r["endpoint"], r["scenario"]))
    return {"slowest": slowest, "error_hotspots": hotspots[:5], "not_ranked": not_ranked}

"""Who acts on a finding and how much work it is, from what the figures show (not a constant per kind).

- Errors of requests, by their dominant kind and how many endpoints share it: HTTP 5xx on one
  endpoint is its handler (Dev, low effort), on several what they share (a database, a cache,
  an upstream: Dev and DevOps, medium); refused or reset connections and throttling (HTTP 429)
  are DevOps'; credentials, test data and requests that no longer match the API (HTTP
  401/403/404/400) are the test owner's; timeouts on one endpoint are a slow dependency
  (Dev), on several a service out of capacity (DevOps).
- A check or journey that fails on every run is the test's to fix (its owner, low effort); one
  that fails only sometimes is the service answering differently under load (Dev, medium).
- A latency tail made of connection set-up is DevOps' (keep-alive), of pool waits the
  generator's (the test owner's), else time spent in the service (Dev).
"""

from __future__ import annotations

TEST_OWNER = "test owner"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def kind_class(kind: str) -> str:
    """``HTTP 503`` -> ``HTTP 5xx``; transport kinds stay as they are."""
    if kind.startswith("HTTP ") and len(kind) == 8 and kind[5].isdigit():
        return f"HTTP {kind[5]}xx"
    return kind


def _http_status(kind: str) -> int:
    try:
        return int(kind.removeprefix("HTTP "))
    except ValueError:
        return 0


def error_advice(kind: str, endpoints: int) -> tuple[str, str, str]:
    """(advice, effort, owner) for the dominant error kind on ``endpoints`` endpoints of one scenario."""
    many = endpoints > 1
    if kind.startswith("HTTP 5"):
        if many:
            return (
                "server errors on several endpoints at once point to what they share (database, cache, an "
                "upstream): read the service's log around the failing requests",
                "medium",
                "Dev, DevOps",
            )
        return "server errors on this endpoint only: its handler fails; its log has the failing requests", "low", "Dev"
    if kind.startswith("HTTP 4"):
        status = _http_status(kind)
        if status == 429:
            return (
                "the service (or a proxy in front) throttles the generator: allow its address or lower the "
                "offered load",
                "low",
                "DevOps",
            )
        if status in (401, 403):
            return "requests are not authorised: the journeys' credentials or session handling", "low", TEST_OWNER
        if status in (404, 410):
            return (
                "the requested resources do not exist: the journeys' test data (ids) or a removed route",
                "low",
                TEST_OWNER,
            )
        if status == 409:
            return "conflicting writes under concurrency: the service's handling of concurrent updates", "medium", "Dev"
        return "the requests no longer match the API: the journeys' requests or test data", "low", TEST_OWNER
    if kind == "connect":
        return (
            "connections are refused: the service's accept backlog, its number of workers, or it is down",
            "low",
            "DevOps",
        )
    if kind == "reset":
        return "connections are reset: a proxy or the server drops (keep-alive) connections", "low", "DevOps"
    if kind == "timeout":
        if many:
            return (
                "several endpoints time out: the service as a whole runs out of capacity at this load",
                "medium",
                "DevOps",
            )
        return "requests time out on this endpoint only: a slow dependency of its handler", "medium", "Dev"
    if kind == "unfinished":
        return "requests never completed before the run ended: the service hangs under this load", "medium", "Dev"
    if kind == "refused":
        return (
            "the plugin refused requests to a host that is not allowed: --perf-allow-host, or fix the journey's URL",
            "low",
            TEST_OWNER,
        )
    if kind == "protocol":
        return "the service sent malformed HTTP: its server or a proxy in front", "medium", "Dev"
    return "see the error breakdown", "medium", "Dev"


TRACEBACK_NOTE = "(first traceback under Journey exceptions)"


def event_advice(group: str, name: str, rate: float | None) -> tuple[str, str, str]:
    """(advice, effort, owner): a row that always fails is the test's to fix, one that sometimes fails the service's."""
    if group == "hook":
        stage = name.split(" ", 1)[0]
        then = "so those users never iterated" if stage == "on_start" else "as those users ended"
        return f"{stage} failed, {then}: its credentials or test data {TRACEBACK_NOTE}", "low", TEST_OWNER
    if group == "check":
        what, note = "check", ""
    else:
        what, note = "journey", f" {TRACEBACK_NOTE}"
    if rate is None:
        return f"the responses are not what the {what} expects{note}", "medium", "Dev"
    if rate >= 1.0:
        if group == "check":
            return "it never passed: the check itself or the data it expects is wrong", "low", TEST_OWNER
        return f"it raises on every iteration: a bug in the journey or the data it expects{note}", "low", TEST_OWNER
    return (
        f"it fails only sometimes: the responses are not always what the {what} expects under load{note}",
        "medium",
        "Dev",
    )


def tail_advice(gap_ms: float, connect_ms: float, wait_ms: float) -> tuple[str, str, str]:
    """(advice, effort, owner) for a p99 ``gap_ms`` above the p50: set-up, pool wait, or the service itself."""
    if connect_ms >= gap_ms / 2:
        return (
            f"new connections cost {_ms(connect_ms)} (p95): the tail is connection set-up; keep connections "
            "alive (the server or a proxy closes them)",
            "low",
            "DevOps",
        )
    if wait_ms >= gap_ms / 2:
        return (
            f"requests waited {_ms(wait_ms)} (p95) for a pooled connection in the generator: the client's "
            "connection pool is too small for its users",
            "low",
            TEST_OWNER,
        )
    return (
        f"connect and pool wait are small (connect p95 {_ms(connect_ms)}, pool wait p95 {_ms(wait_ms)}), so the "
        "time is spent in the service: time the slowest requests on the server side",
        "medium",
        "Dev",
    )

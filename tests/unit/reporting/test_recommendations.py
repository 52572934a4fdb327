"""summary.md's recommendations: said once across scenarios, never total and endpoint twice, ranked only on
endpoints with enough requests for the percentile, owner and effort from the figures."""

from __future__ import annotations

from typing import Any

from pytest_shopflow_perf.reporting.bottlenecks import min_requests
from pytest_shopflow_perf.reporting.summary import build_summary, render_markdown


def stats(requests: int = 1000, errors: int = 0, p50: float = 10.0, p99: float = 12.0, **more: Any) -> dict:
    kinds = more.pop("kinds", {})
    return {"requests": requests, "errors": errors, "error_rate": errors / requests if requests else 0.0,
            "rps": requests / 10, "mean_ms": p50, "p50_ms": p50, "p90_ms": p50, "p95_ms": more.pop("p95", p50),
            "p99_ms": p99, "max_ms": p99, "errors_by_kind": kinds, **more}  # fmt: skip


def run(name: str, endpoints: dict[str, dict], **more: Any) -> dict:
    total_errors = sum(s["errors"] for s in endpoints.values()) + sum(
        e["errors"] for e in (more.get("events") or {}).values()
    )
    record = {
        "test": f"test_shop.py::{name}",
        "name": name,
        "model": "closed",
        "duration_s": 10.0,
        "interrupted": False,
        "profile": {"model": "closed", "users": 10, "duration": 10.0, "stages": [[10.0, 10.0]], "scale": 1.0},
        "total": stats(sum(s["requests"] for s in endpoints.values()), total_errors),
        "endpoints": endpoints,
        "events": {},
        "checks": {},
        "generator": {"iterations": 100, "peak_users": 10},
        "extra": {},
    }
    record.update(more)
    return record


def summarize(*runs: dict, outcome: str = "passed") -> dict:
    tests = [{"nodeid": r["test"], "outcome": outcome, "reason": None, "runs": [r]} for r in runs]
    return build_summary(tests, {"target": "http://127.0.0.1:1"})


def titled(summary: dict, start: str) -> list[dict]:
    return [r for r in summary["recommendations"] if r["title"].startswith(start)]


def test_a_finding_in_several_scenarios_is_one_recommendation_listing_them() -> None:
    checks = {"cart has items": {"passes": 0, "fails": 40}}
    events = {"check: cart has items": {"errors": 40, "errors_by_kind": {"check: cart has items": 40}}}
    broken = {"GET /api/search": stats(200, 200, kinds={"HTTP 503": 200})}
    summary = summarize(
        run("browse", {**broken}, checks=checks, events=events),
        run("checkout", {**broken}, checks=checks, events=events),
    )
    [check] = titled(summary, "Fix check: cart has items")
    assert check["scenarios"] == ["browse", "checkout"]
    assert "40 of 40 runs (100.00 %) in browse, 40 of 40 runs (100.00 %) in checkout" in check["detail"]
    [search] = titled(summary, "Fix the errors of GET /api/search")
    assert search["scenarios"] == ["browse", "checkout"]
    assert len({r["title"] for r in summary["recommendations"]}) == len(summary["recommendations"])


def test_the_total_never_repeats_what_an_endpoint_says() -> None:
    finding = {"metric": "p95", "tier": "critical", "change": 3.0, "p_value": 0.001, "baseline": 10, "current": 40}
    regression = {
        "tier": "critical",
        "baseline_runs": 3,
        "findings": [{**finding, "endpoint": "total"}, {**finding, "endpoint": "GET /api/products/{id}"}],
    }
    slo = [
        {"threshold": "error_rate<1%", "metric": "error_rate", "endpoint": "total", "measured": 0.2, "limit": 0.01,
         "op": "<", "passed": False, "unit": "%", "scope": "whole run"},
    ]  # fmt: skip
    endpoints = {
        "GET /api/products/{id}": stats(1000),
        "POST /api/checkout": stats(1000, 400, kinds={"HTTP 500": 400}),
    }
    summary = summarize(run("peak", endpoints, extra={"regression": regression, "slo": slo}))
    regressions = titled(summary, "Find the change")
    assert [r["title"] for r in regressions] == ["Find the change that slowed GET /api/products/{id}"]
    assert titled(summary, "Bring total error_rate") == []  # said by the errors that broke it
    [errors] = titled(summary, "Fix the errors of POST /api/checkout")
    assert "it breaks `error_rate<1%` in peak" in errors["detail"]


def test_a_latency_slo_on_the_total_folds_into_the_tail_of_its_worst_endpoint() -> None:
    slo = [
        {"threshold": "p(99)<100ms", "metric": "p99", "endpoint": "total", "measured": 0.6, "limit": 0.1, "op": "<",
         "passed": False, "unit": "s", "scope": "whole run", "worst_endpoint": "GET /api/cart"},
    ]  # fmt: skip
    summary = summarize(run("peak", {"GET /api/cart": stats(500, p50=20.0, p99=600.0)}, extra={"slo": slo}))
    assert titled(summary, "Bring total p99") == []
    [tail] = titled(summary, "Cut the tail latency of GET /api/cart")
    assert "it breaks `p(99)<100ms` in peak" in tail["detail"]


def test_an_slo_no_other_recommendation_explains_stands_on_its_own() -> None:
    slo = [
        {"threshold": "p(95)<5ms", "metric": "p95", "endpoint": "total", "measured": 0.01, "limit": 0.005, "op": "<",
         "passed": False, "unit": "s", "scope": "whole run", "worst_endpoint": "GET /a"},
    ]  # fmt: skip
    summary = summarize(run("peak", {"GET /a": stats(500), "GET /b": stats(500)}, extra={"slo": slo}))
    [own] = titled(summary, "Bring total p95 within its SLO")
    assert "worst endpoint GET /a" in own["detail"]
    assert own["owner"] == "Dev"


def test_only_endpoints_with_enough_requests_for_the_percentile_are_ranked() -> None:
    assert (min_requests(95), min_requests(99), min_requests(50)) == (20, 100, 2)
    endpoints = {
        "POST /api/login": stats(5, p50=300.0, p99=900.0, p95=800.0),  # on_start: once per user
        "GET /api/products": stats(99, p50=10.0, p99=400.0, p95=30.0),  # 99 < the 100 a p99 needs
        "GET /api/cart": stats(100, p50=10.0, p99=400.0, p95=20.0),
    }
    summary = summarize(run("peak", endpoints))
    slowest = [r["endpoint"] for r in summary["bottlenecks"]["slowest"]]
    assert slowest == ["GET /api/products", "GET /api/cart"]
    assert summary["bottlenecks"]["not_ranked"] == [{"scenario": "peak", "endpoint": "POST /api/login", "requests": 5}]
    tails = [r["title"] for r in titled(summary, "Cut the tail")]
    assert tails == ["Cut the tail latency of GET /api/cart"]
    markdown = render_markdown(summary)
    assert "ranked on p95 only with at least 20 requests and on p99 with at least 100" in markdown
    assert "Not ranked (fewer than 20 requests): POST /api/login (5, peak)." in markdown
    assert "| POST /api/login | peak |" not in markdown.split("Not ranked")[0]


def test_owner_and_effort_follow_from_the_errors() -> None:
    one = summarize(run("a", {"GET /x": stats(100, 50, kinds={"HTTP 503": 50}), "GET /y": stats(100)}))
    [fix] = titled(one, "Fix the errors of GET /x")
    assert (fix["owner"], fix["effort"]) == ("Dev", "low")
    assert fix["cites"] == ["errors by kind", "error rate", "requests per endpoint"]

    shared = summarize(
        run("a", {"GET /x": stats(100, 50, kinds={"HTTP 503": 50}), "GET /y": stats(100, 30, kinds={"HTTP 500": 30})})
    )
    [fix] = titled(shared, "Fix the HTTP 5xx errors of GET /x, GET /y")
    assert (fix["owner"], fix["effort"]) == ("Dev, DevOps", "medium")
    assert "50.00 % of 100 requests on GET /x, 30.00 % of 100 requests on GET /y" in fix["detail"]

    refused = summarize(run("a", {"GET /x": stats(100, 50, kinds={"connect": 50})}))
    assert titled(refused, "Fix the errors")[0]["owner"] == "DevOps"
    unauthorised = summarize(run("a", {"GET /x": stats(100, 50, kinds={"HTTP 401": 50})}))
    assert (titled(unauthorised, "Fix the errors")[0]["owner"], titled(unauthorised, "Fix")[0]["effort"]) == (
        "test owner",
        "low",
    )


def test_a_check_that_never_passes_is_the_tests_and_one_that_sometimes_fails_the_services() -> None:
    def with_check(passes: int, fails: int) -> dict:
        events = {"check: cart has items": {"errors": fails, "errors_by_kind": {"check: cart has items": fails}}}
        checks = {"cart has items": {"passes": passes, "fails": fails}}
        return summarize(run("a", {"GET /api/cart": stats(100)}, events=events, checks=checks))

    [never] = titled(with_check(0, 50), "Fix check: cart has items")
    assert (never["owner"], never["effort"]) == ("test owner", "low")
    assert "never passed" in never["detail"]
    [sometimes] = titled(with_check(40, 10), "Fix check: cart has items")
    assert (sometimes["owner"], sometimes["effort"]) == ("Dev", "medium")
    assert "10 of 50 runs (20.00 %)" in sometimes["detail"]
    assert titled(with_check(40, 10), "Fix the errors of") == []  # the request itself answered fine


def test_a_journey_exception_cites_its_iterations_and_traceback() -> None:
    events = {"journey browse": {"errors": 30, "errors_by_kind": {"exception KeyError": 30}}}
    extra = {
        "journey_runs": {"journey browse": 30, "on_start login": 5},
        "exceptions": [{"kind": "exception KeyError", "count": 30, "where": "browse", "row": "journey browse",
                        "traceback": "Traceback (most recent call last):\n  ...\nKeyError: 'items'\n"}],
    }  # fmt: skip
    summary = summarize(run("a", {"GET /json": stats(30)}, events=events, extra=extra))
    [fix] = titled(summary, "Fix journey browse")
    assert "journey browse raises exception KeyError (`KeyError: 'items'`) in 30 of 30 iterations" in fix["detail"]
    assert (fix["owner"], fix["effort"]) == ("test owner", "low")
    assert "first traceback" in fix["cites"]


def test_a_latency_tail_is_attributed_by_connect_and_pool_wait() -> None:
    connect = summarize(run("a", {"GET /x": stats(500, p50=10.0, p99=300.0, connect_ms_p95=250.0)}))
    assert titled(connect, "Cut the tail")[0]["owner"] == "DevOps"
    wait = summarize(run("a", {"GET /x": stats(500, p50=10.0, p99=300.0, wait_ms_p95=200.0)}))
    assert titled(wait, "Cut the tail")[0]["owner"] == "test owner"
    service = summarize(run("a", {"GET /x": stats(500, p50=10.0, p99=300.0, connect_ms_p95=1.0)}))
    [tail] = titled(service, "Cut the tail")
    assert (tail["owner"], tail["effort"]) == ("Dev", "medium")
    assert "30x its p50 (300 ms vs 10.0 ms, 500 requests)" in tail["detail"]


def test_a_saturated_generator_is_the_test_owners_add_workers() -> None:
    generator = {"saturated": True, "reasons": ["CPU 98 %"], "cpu_percent": 98.0, "loop_lag_p99_ms": 40.0}
    summary = summarize(
        run("a", {"GET /x": stats()}, generator=generator), run("b", {"GET /x": stats()}, generator=generator)
    )
    [more] = titled(summary, "Give the load generator more room")
    assert more["owner"] == "test owner"
    assert "add workers" in more["detail"]
    assert more["scenarios"] == ["a", "b"]


def test_every_recommendation_says_what_it_cites_and_the_table_shows_it() -> None:
    summary = summarize(run("a", {"GET /x": stats(100, 50, kinds={"HTTP 503": 50})}))
    assert all(r["cites"] and r["scenarios"] for r in summary["recommendations"])
    markdown = render_markdown(summary)
    assert "| # | recommendation | why (from this run) | scenarios | cites | impact | effort | owner |" in markdown
    assert "| a | errors by kind, error rate, requests per endpoint | high | low | Dev |" in markdown


def test_a_check_failing_exactly_with_an_endpoints_errors_is_said_with_them() -> None:
    """``user.check(r.status_code == 200, ...)`` fails on the same requests the endpoint counts as errors."""
    events = {"check: cart answered": {"errors": 150, "errors_by_kind": {"check: cart answered": 150}}}
    checks = {"cart answered": {"passes": 545, "fails": 150}}
    endpoints = {"GET /api/cart": stats(695, 150, kinds={"HTTP 500": 150})}
    summary = summarize(run("peak", endpoints, events=events, checks=checks))
    assert titled(summary, "Fix check: cart answered") == []
    [fix] = titled(summary, "Fix the errors of GET /api/cart")
    assert "check: cart answered (150 in peak) failed as often" in fix["detail"]
    other = {"check: cart answered": {"errors": 149, "errors_by_kind": {"check: cart answered": 149}}}
    assert titled(summarize(run("peak", endpoints, events=other, checks=checks)), "Fix check: cart answered")

"""summary.md recommends fixing failed checks and journey exceptions from their own rows."""

from __future__ import annotations

from pytest_shopflow_perf.reporting.summary import build_summary, render_markdown


def _run() -> dict:
    stats = {"requests": 100, "errors": 0, "error_rate": 0.0, "rps": 10.0, "mean_ms": 2.0, "p50_ms": 2.0,
             "p90_ms": 3.0, "p95_ms": 3.0, "p99_ms": 4.0, "max_ms": 5.0, "errors_by_kind": {}}  # fmt: skip
    return {
        "test": "test_shop.py::test_cart",
        "name": "cart",
        "model": "closed",
        "duration_s": 10.0,
        "interrupted": False,
        "total": {**stats, "errors": 40, "error_rate": 0.4},
        "endpoints": {"GET /api/cart": stats},
        "events": {"check: cart has items": {"errors": 40, "errors_by_kind": {"check: cart has items": 40}}},
        "generator": {},
        "extra": {},
    }


def test_a_failing_check_is_a_recommendation_of_its_own() -> None:
    tests = [{"nodeid": "test_shop.py::test_cart", "outcome": "passed", "reason": None, "runs": [_run()]}]
    markdown = render_markdown(build_summary(tests, {"target": "http://127.0.0.1:1"}))
    recommendations = markdown.split("## Recommendations")[1]
    assert "Fix check: cart has items" in recommendations
    assert "responses fail the journeys' checks" in recommendations
    assert "Fix the errors of GET /api/cart" not in recommendations  # the endpoint answered fine

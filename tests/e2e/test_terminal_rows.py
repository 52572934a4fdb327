"""Failed checks and journey exceptions on rows of their own, never on the HTTP endpoint that answered last.

In every report (terminal -v, summary.md, the JSON record, the endpoints CSV), with one process and with
shards (workers=2); plus failed-request latency apart.
"""

from __future__ import annotations

import csv
import json

import pytest

pytest_plugins = ["pytester"]

RUN = """
import pytest

async def shop(user):
    await user.client.get("/delay/1", extensions={"name": "page"})
    await user.client.get("/status/503", extensions={"name": "broken"})
    user.check(False, "cart has items")
    raise KeyError("basket")

@pytest.mark.load(users=1, iterations=5)
def test_rows(load):
    result = load.run(shop)
    assert result.endpoints["page"].errors == 0
"""

ATTRIBUTION = """
import pytest

async def login(user):
    await user.client.get("/login", extensions={"name": "GET /login"})

async def browse(user):
    response = await user.client.get("/json", extensions={"name": "GET /json"})
    user.check(response.status_code == 404, "cart has items")   # answered 200: the check fails
    user.check(response.status_code == 200, "status is 200")
    raise KeyError("basket")                                     # a journey bug after a good answer

@pytest.mark.load(users=2, iterations=10, workers=WORKERS)
def test_attribution(load):
    load.run(browse, on_start=login)
"""


def test_failed_requests_and_rows_of_their_own(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_rows=RUN)
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*check: cart has items  *5   0       5    100.00",
            "*journey shop  *5   0       5    100.00  exception KeyError 5",
            "*exception KeyError in shop: 5 time(s), first traceback:",
            "*KeyError: 'basket'",
            "*failed requests (5, not in the latency above): p50 *",
        ]
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_journey_exceptions_and_checks_never_land_on_an_endpoint_that_answered(
    pytester: pytest.Pytester, delay_server: str, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    pytester.makepyfile(test_attr=ATTRIBUTION.replace("WORKERS", str(workers)))
    result = pytester.runpytest_subprocess(
        "--perf-base-url", delay_server, "-v", "-p", "no:cacheprovider", "--perf-report-dir", "report"
    )
    result.assert_outcomes(passed=1)

    # terminal -v: the endpoints at 0 %, the check and journey rows with their own errors % per run
    result.stdout.fnmatch_lines(
        [
            "*GET /json  *10 *0.00",
            "*check / journey  *runs  ok  errors  errors %*",
            "*check: cart has items  *10   0      10    100.00",
            "*check: status is 200  *10  10       0      0.00",
            "*journey browse  *10   0      10    100.00  exception KeyError 10",
            "*on_start login  *2   2       0      0.00",
            "*exception KeyError in browse: 10 time(s), first traceback:",
            "*KeyError: 'basket'",
        ]
    )
    endpoint_lines = [
        line.split() for line in result.stdout.lines if line.strip().startswith(("GET /json", "GET /login"))
    ]
    assert endpoint_lines
    assert all(line[-1] == "0.00" for line in endpoint_lines)

    directory = pytester.path / "report"
    record = json.loads((directory / "test_attr.py__test_attribution.json").read_text())
    assert {name: stats["errors"] for name, stats in record["endpoints"].items()} == {"GET /json": 0, "GET /login": 0}
    assert record["events"] == {
        "check: cart has items": {"errors": 10, "errors_by_kind": {"check: cart has items": 10}},
        "journey browse": {"errors": 10, "errors_by_kind": {"exception KeyError": 10}},
    }
    assert record["checks"] == {
        "cart has items": {"passes": 0, "fails": 10},
        "status is 200": {"passes": 10, "fails": 0},
    }
    assert record["extra"]["journey_runs"] == {"on_start login": 2, "journey browse": 10}
    assert record["total"]["errors"] == 20
    assert record["total"]["request_errors"] == 0

    with open(directory / "test_attr.py__test_attribution-endpoints.csv") as handle:
        rows = {row["endpoint"]: row for row in csv.DictReader(handle)}
    assert rows["GET /json"]["errors"] == "0"
    assert float(rows["GET /json"]["error_rate"]) == 0.0
    assert (rows["journey browse"]["errors"], rows["journey browse"]["error_rate"], rows["journey browse"]["runs"]) == (
        "10",
        "1.0",
        "10",
    )
    assert rows["check: cart has items"]["row"] == "check"
    assert rows["check: cart has items"]["errors"] == "10"

    markdown = (directory / "summary.md").read_text()
    hotspots = markdown.split("Error hotspots")[1].split("##")[0]
    assert "| GET /json |" not in hotspots
    assert "| journey browse | test_attr.py::test_attribution | 10 | 100.00 % | exception KeyError (10) |" in hotspots
    checks = markdown.split("## Checks and journeys")[1].split("## Regressions")[0]
    assert "| test_attr.py::test_attribution | check: cart has items | 10 | 0 | 10 | 100.00 % |  |" in checks
    assert (
        "| test_attr.py::test_attribution | journey browse | 10 | 0 | 10 | 100.00 % | exception KeyError (10) |"
        in checks
    )
    assert "KeyError: 'basket'" in checks
    recommendations = markdown.split("## Recommendations")[1]
    assert "Fix the errors of GET /json" not in recommendations
    assert "Fix journey browse" in recommendations
    assert "Fix check: cart has items" in recommendations

"""What -v shows per run: failed checks and journey exceptions on rows of their own, failed-request latency apart."""

from __future__ import annotations

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


def test_checks_and_exceptions_have_rows_of_their_own(pytester: pytest.Pytester, delay_server: str) -> None:
    pytester.makepyfile(test_rows=RUN)
    result = pytester.runpytest_subprocess("--perf-base-url", delay_server, "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*check: cart has items: 5 error(s) (check: cart has items 5)",
            "*journey shop: 5 error(s) (exception KeyError 5)",
            "*failed requests (5, not in the latency above): p50 *",
        ]
    )

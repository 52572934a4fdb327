"""An SLO on an endpoint the run does not have: an SloError naming the closest one, said live for declared ones."""

from __future__ import annotations

import re

import httpx
import pytest
from support.engine import run

from pytest_shopflow_perf import Slo, assert_error_rate, assert_latency, assert_slo
from pytest_shopflow_perf.metrics.live import LiveTotals
from pytest_shopflow_perf.verdicts.slo import SloError
from pytest_shopflow_perf.verdicts.slo.abort import unseen_endpoints, watch


@pytest.fixture(scope="module")
def result():
    async def journey(user):
        await user.client.post("/post", extensions={"name": "POST /post"})
        await user.client.get("/api/products/1")
        user.check(False, "cart has items")

    transport = lambda: httpx.MockTransport(lambda request: httpx.Response(200))  # noqa: E731
    return run(journey, users=1, iterations=5, transport_factory=transport)


@pytest.mark.parametrize(
    "call",
    [
        lambda r: assert_slo(r, "GET /post: p(99)<200ms"),
        lambda r: assert_latency(r, p95="1s", endpoint="GET /post"),
        lambda r: assert_error_rate(r, max="1%", endpoint="GET /post"),
        lambda r: assert_error_rate(r, max="1%", endpoint="GET /post", kinds=["HTTP 5"]),
        lambda r: assert_slo(r, "GET /post: error_rate<1% over any 1s"),
    ],
)
def test_a_wrong_endpoint_is_an_slo_error_naming_the_closest_and_every_endpoint(result, call) -> None:
    with pytest.raises(SloError) as error:  # not a KeyError after the whole run
        call(result)
    message = str(error.value)
    assert "no endpoint 'GET /post' in this run; did you mean 'POST /post'? " in message
    assert "endpoints: 'GET /api/products/{id}', 'POST /post'" in message


def test_no_close_name_lists_the_endpoints_only(result) -> None:
    with pytest.raises(SloError, match=r"no endpoint 'checkout' in this run; endpoints: 'GET /api"):
        assert_slo(result, "checkout: p(95)<1s")


def test_a_row_without_requests_of_its_own_says_what_it_is(result) -> None:
    with pytest.raises(SloError, match=re.escape("'check: cart has items' counts errors without requests")):
        assert_slo(result, "check: cart has items: error_rate<1%")


class View:
    """A run in progress as the watchdog sees it: the endpoints seen so far, nothing measured."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def endpoint_names(self) -> list[str]:
        return list(self.names)

    def totals(self, endpoint: str | None) -> LiveTotals:
        return LiveTotals(0, 0)

    def closed_windows(self) -> int:
        return 1

    def newest_span(self, endpoint: str | None, seconds: float) -> None:
        return None


def test_a_declared_slo_on_an_unseen_endpoint_is_said_once_from_the_first_window_with_requests() -> None:
    slos = [Slo("GET /post: p(99)<200ms"), Slo("POST /post: p(99)<1s"), Slo("p(95)<1s"),
            Slo("GET /psot: error_rate<5%", abort=True)]  # fmt: skip
    warned: set[str] = set()
    assert unseen_endpoints(slos, View([]), 1.0, warned) == []  # no request yet: nothing to judge names by
    messages = unseen_endpoints(slos, View(["POST /post"]), 1.02, warned)
    assert messages == [
        "SLO 'GET /post: p(99)<200ms': no endpoint 'GET /post' after 1 s of the run; did you mean 'POST /post'? "
        'endpoints: \'POST /post\' (names are "METHOD path" with ids as {id}, or the extensions={"name": ...} of '
        "the requests); unless it shows up, the threshold fails when the run ends",
        "SLO 'GET /psot: error_rate<5%': no endpoint 'GET /psot' after 1 s of the run; did you mean 'POST /post'? "
        'endpoints: \'POST /post\' (names are "METHOD path" with ids as {id}, or the extensions={"name": ...} of '
        "the requests); unless it shows up, the threshold fails when the run ends",
    ]
    assert unseen_endpoints(slos, View(["POST /post"]), 2.0, warned) == []  # said once


def test_an_endpoint_that_may_come_later_is_waited_for_until_half_the_run() -> None:
    """The ShopFlow suite's checkout comes after browsing: no warning in the first second for it."""
    slos = [Slo("POST /api/checkout: p(95)<800ms"), Slo("GET /api/product: p(95)<500ms"),
            Slo("GET /api/products/{id}: p(95)<300ms")]  # fmt: skip
    warned: set[str] = set()
    early = unseen_endpoints(slos, View(["GET /api/products", "POST /api/login"]), 1.0, warned, duration=10.0)
    assert [m.split(":")[0] for m in early] == ["SLO 'GET /api/product"]  # a character off: said at once
    assert unseen_endpoints(slos, View(["GET /api/products"]), 4.0, warned, duration=10.0) == []
    late = unseen_endpoints(slos, View(["GET /api/products"]), 5.0, warned, duration=10.0)
    assert [m.split(":")[0] for m in late] == ["SLO 'POST /api/checkout", "SLO 'GET /api/products/{id}"]


def test_the_watchdog_still_aborts_and_tracks_as_before() -> None:
    """The name check sits beside the watchdog; watch itself is unchanged (no abort on an unseen endpoint)."""
    assert watch([Slo("GET /psot: error_rate<5%", abort=True, grace="0s")], {}, View(["POST /post"]), 3.0, 10.0) is None

"""The first request of an endpoint must not build histograms on the event loop (issue 13's CI flake).

A new histogram is ~188 KB of fresh pages; made while other responses wait to be
timed, the four of an endpoint's first request moved the p99 of a light accuracy run.
"""

from __future__ import annotations

import pytest

from pytest_shopflow_perf.metrics import recorder as recorder_module
from pytest_shopflow_perf.metrics.recorder import SPARE_HISTOGRAMS, Recorder, spare_histograms


def _refuse_new_histograms(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("a histogram was built while the run was recording")

    monkeypatch.setattr(recorder_module, "new_histogram", refuse)


@pytest.mark.parametrize("open_model", [False, True])
def test_the_first_request_of_an_endpoint_takes_histograms_made_before_the_clock(
    monkeypatch: pytest.MonkeyPatch, open_model: bool
) -> None:
    spares = spare_histograms(open_model)
    _refuse_new_histograms(monkeypatch)
    recorder = Recorder(open_model=open_model, start=0.0, spares=spares)
    recorder.record("GET /a", 0.05, 0.5, None, connect_s=0.001, wait_s=0.0002)

    endpoint = recorder.endpoints["GET /a"]
    assert endpoint.connect_hist is not None and endpoint.wait_hist is not None
    assert (endpoint.raw_hist is not None) is open_model
    assert endpoint.hist.get_total_count() == 1
    assert spares == []  # exactly what the first endpoint needed was made ahead


def test_restock_tops_the_spares_up_one_at_a_time_and_no_further() -> None:
    recorder = Recorder(open_model=False, start=0.0, spares=spare_histograms(False))
    recorder.record("GET /a", 0.05, 0.5, None, connect_s=0.001, wait_s=0.0002)
    for expected in range(1, SPARE_HISTOGRAMS + 1):
        recorder.restock()
        assert len(recorder._spares) == expected
    recorder.restock()
    assert len(recorder._spares) == SPARE_HISTOGRAMS

    # the next endpoint is served from the restocked spares
    taken = list(recorder._spares)
    recorder.record("GET /b", 0.05, 0.6, None, connect_s=0.001, wait_s=0.0002)
    b = recorder.endpoints["GET /b"]
    assert {id(b.hist), id(b.win_hist), id(b.connect_hist), id(b.wait_hist)} == {id(h) for h in taken}


def test_without_spares_a_recorder_still_builds_what_it_needs() -> None:
    recorder = Recorder(open_model=True, start=0.0)
    recorder.record("GET /a", 0.05, 0.5, "status 500", connect_s=0.001)
    assert recorder.endpoints["GET /a"].failed_hist is not None

"""Histograms in lazily faulted pages behave exactly as hdrh's own (issue 13's first-request stall).

hdrh zero-fills 188 KB per new histogram; made while responses wait to be timed, the
four of an endpoint's first request moved a light run's p99 by 5 ms in CI.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from pytest_shopflow_perf.metrics.hdr import (
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_FIGURES,
    _counts,
    decode_histogram,
    encode_histogram,
    mean_us,
    new_histogram,
    percentiles,
    reset_histogram,
    snapshot,
)

QUANTILES = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]


def stock() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def latencies(seed: int, n: int = 5000) -> list[int]:
    rng = random.Random(seed)
    return [min(HIGHEST_US, int(rng.lognormvariate(9, 1.8)) + 1) for _ in range(n)]


def filled(histogram: HdrHistogram, values: list[int]) -> HdrHistogram:
    for value in values:
        histogram.record_value(value)
    return histogram


def test_recording_encoding_and_figures_match_hdrh() -> None:
    values = latencies(1)
    paged, reference = filled(new_histogram(), values), filled(stock(), values)
    assert encode_histogram(paged) == encode_histogram(reference)
    assert percentiles(paged, QUANTILES) == {q: reference.get_value_at_percentile(q) for q in QUANTILES}
    assert mean_us(paged) == pytest.approx(reference.get_mean_value(), rel=1e-9)
    assert snapshot(paged) == snapshot(reference)
    decoded = decode_histogram(encode_histogram(paged))
    assert decoded.get_total_count() == len(values)
    assert decoded.get_value_at_percentile(99.0) == reference.get_value_at_percentile(99.0)


@pytest.mark.parametrize("into_paged", [True, False])
def test_adding_works_between_paged_and_stock_histograms(into_paged: bool) -> None:
    first, second = latencies(2), latencies(3)
    target = filled(new_histogram() if into_paged else stock(), first)
    target.add(filled(stock() if into_paged else new_histogram(), second))
    assert encode_histogram(target) == encode_histogram(filled(filled(stock(), first), second))


def test_reset_zeroes_every_count_and_the_histogram_records_again() -> None:
    histogram = new_histogram()
    total = new_histogram()
    for seed in range(5):
        window = filled(histogram, [*latencies(seed, 500), LOWEST_US, HIGHEST_US])
        total.add(window)
        reset_histogram(histogram)
        assert histogram.get_total_count() == 0
        assert int(_counts(histogram).sum()) == 0
    reset_histogram(total)  # a histogram filled by add()
    assert int(_counts(total).sum()) == 0
    assert encode_histogram(filled(histogram, [5, 7])) == encode_histogram(filled(stock(), [5, 7]))


def test_a_new_histogram_does_not_make_its_pages_resident() -> None:
    """Fifty zero-filled ones are 9.4 MB of resident pages; these stay at a few pages each."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        pytest.skip("resident memory is read from /proc (Linux)")

    def resident_bytes() -> int:
        return int(statm.read_text().split()[1]) * 4096

    kept = [new_histogram() for _ in range(2)]  # imports and caches first
    before = resident_bytes()
    kept += [filled(new_histogram(), [50_000, 51_000]) for _ in range(50)]
    grown = resident_bytes() - before
    assert grown < 50 * 188_000 // 4, f"{grown / 1e6:.1f} MB resident for 50 histograms"

"""``-v`` lists what the regression gate could not judge and what would decide it (issue 14)."""

from __future__ import annotations

from typing import Any

from test_regression import _disagreeing_baseline, record, stats

from pytest_shopflow_perf.reporting.terminal import write_summary
from pytest_shopflow_perf.verdicts.regression import compare


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str, **markup: Any) -> None:
        self.lines.append(line)


def test_verbose_summary_lists_unjudged_and_inconclusive_findings_with_their_advice() -> None:
    run = record(stats(1.2, phase=4, count=3))
    verdict = compare(_disagreeing_baseline(count=3), run)
    summary = {"name": "checkout", "total": run["total"], "endpoints": run["endpoints"],
               "extra": {"regression": verdict.to_dict()}}  # fmt: skip
    quiet, verbose = Lines(), Lines()
    write_summary(quiet, [summary])
    write_summary(verbose, [summary], verbose=True)
    assert not any("not judged" in line for line in quiet.lines)
    unjudged = [line for line in verbose.lines if line.lstrip().startswith("not judged: ")]
    assert len(unjudged) == 4  # p95 and p99 of the total and of GET /x
    assert all("insufficient data: 90 requests" in line and "run longer" in line for line in unjudged)
    assert any(line.lstrip().startswith("inconclusive: total p50: large but not significant") for line in verbose.lines)

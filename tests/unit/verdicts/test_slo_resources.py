"""``target_cpu``, ``target_rss`` and ``gauge(NAME)``: SLOs on the target's sampled resources."""

from __future__ import annotations

import httpx
import pytest
from support.engine import run

from pytest_shopflow_perf import Resources, Slo, SloError, assert_slo
from pytest_shopflow_perf.verdicts.slo.grammar import expression, parse_threshold


async def get_x(user) -> None:
    await user.client.get("/x")


@pytest.fixture
def measured():
    return run(
        get_x,
        users=1,
        iterations=5,
        transport_factory=lambda: httpx.MockTransport(lambda request: httpx.Response(200)),
    )


def with_samples(result, samples, source="pid 42"):
    result.resources = Resources(samples=tuple(samples), source=source)
    result.extra["slo"] = []
    return result


def samples(cpu, rss, pool=None):
    out = []
    for t, (c, r) in enumerate(zip(cpu, rss, strict=True)):
        sample = {"t_s": float(t + 1), "cpu_percent": c, "rss_mb": r}
        if pool is not None:
            sample["gauges"] = {'db_in_use{pool="main"}': pool[t]}
        out.append(sample)
    return out


def test_cpu_is_the_mean_rss_the_max_and_gauges_the_max(measured) -> None:
    result = with_samples(measured, samples([50, 60, 70], [100, 120, 110], pool=[1, 3, 2]))
    assert_slo(result, "target_cpu<61%", "target_rss<121MB", 'gauge(db_in_use{pool="main"})<=3')
    outcomes = {o["threshold"]: o for o in result.extra["slo"]}
    assert outcomes["target_cpu<61%"]["measured"] == pytest.approx(0.60)
    assert outcomes["target_rss<121MB"]["measured"] == 120
    assert outcomes["target_rss<121MB"]["endpoint"] == "target"


def test_a_breach_fails_with_the_table_in_the_thresholds_own_units(measured) -> None:
    result = with_samples(measured, samples([50, 60, 70], [100, 120, 110]))
    with pytest.raises(AssertionError) as failure:
        assert_slo(result, "target_rss<1MB", "target_cpu<50%")
    text = str(failure.value)
    assert "SLO breached: 2 of 2 threshold(s) failed" in text
    assert "target_rss" in text
    assert "120.0 MB" in text
    assert "60.00 %" in text


def test_over_any_span_takes_the_worst_span(measured) -> None:
    cpu = [10, 10, 10, 95, 95, 10, 10, 10]
    result = with_samples(measured, samples(cpu, [1] * len(cpu)))
    assert_slo(result, "target_cpu<40%")  # the mean of the run is 31.25 %
    with pytest.raises(AssertionError) as failure:
        assert_slo(result, "target_cpu<80% over any 2s")
    assert "worst at 4 s" in str(failure.value)
    assert result.extra["slo"][-1]["measured"] == pytest.approx(0.95)


def test_a_run_without_samples_cannot_hold_a_resource_slo(measured) -> None:
    measured.resources = None
    with pytest.raises(SloError, match="--perf-target-pid"):
        assert_slo(measured, "target_cpu<70%")


def test_a_gauge_the_target_never_exposed_names_those_it_did(measured) -> None:
    result = with_samples(measured, samples([1], [1], pool=[1]))
    with pytest.raises(SloError, match=r"no gauge 'db_in_use' .* did you mean 'db_in_use\{pool=\"main\"\}'"):
        assert_slo(result, "gauge(db_in_use)<3")


def test_unmeasured_cpu_is_no_pass(measured) -> None:
    result = with_samples(measured, [{"t_s": 1.0, "cpu_percent": None, "rss_mb": 5.0}])
    with pytest.raises(AssertionError, match="the target's CPU was not measured"):
        assert_slo(result, "target_cpu<70%")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("target_cpu<0.7", "percentage of one core"),
        ("GET /x: target_cpu<70%", "not of an endpoint"),
        ("target_rss>1MB", "ceiling"),
        ("target_rss<0GB", "above 0 MB"),
        ("target_rss<lots", "could not convert"),
    ],
)
def test_bad_resource_expressions_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(SloError, match=problem):
        parse_threshold(text)


def test_resource_slos_cannot_abort_a_run() -> None:
    with pytest.raises(SloError, match="judged when the run ends"):
        Slo("target_cpu<70%", abort=True)


@pytest.mark.parametrize(
    "text", ["target_cpu<70%", "target_cpu<150% over any 10s", "target_rss<512MB during stage 2", "gauge(up)<=1"]
)
def test_resource_thresholds_print_in_the_grammar(text: str) -> None:
    threshold = parse_threshold(text)
    assert parse_threshold(expression(threshold)).value == pytest.approx(threshold.value)
    assert expression(threshold) == text

"""A busier machine than the baseline's turns a regression into "inconclusive", never the other way round."""

from __future__ import annotations

from test_regression import baseline, finding, record, stats

from pytest_shopflow_perf.verdicts.regression import RegressionPolicy, compare, policy_from_ini
from pytest_shopflow_perf.verdicts.regression.machine import busier_than_baseline


def loaded(run: dict, foreign: float = 0.02, steal: float = 0.0, bench: float = 800.0, top: list | None = None) -> dict:
    run["environment"] = {
        **run["environment"],
        "machine_load": {
            "foreign_cpu_cores": foreign,
            "foreign_top": top or [],
            "steal_share": steal,
            "bench_us": {"before": bench, "after": bench},
            "cpu_count": 2,
        },
    }
    return run


def quiet_baseline() -> dict:
    return baseline(*(loaded(record(stats(1.0, phase=i)), foreign=0.01 * i) for i in range(3)))


def test_a_busy_loop_beside_the_candidate_downgrades_a_critical_slowdown():
    busy = [{"pid": 4242, "name": "python3", "cpu_cores": 0.99}]
    verdict = compare(quiet_baseline(), loaded(record(stats(2.0, phase=4)), foreign=1.01, top=busy))
    assert verdict.tier == "inconclusive"
    assert not verdict.failed("minor")
    (note,) = [n for n in verdict.notes if "busier" in n]
    assert "other processes used 1.01 of 2 cores (python3 pid 4242 0.99), 0.01 during the baseline" in note
    assert "would be critical on a machine as quiet as the baseline's" in finding(verdict, "p95").note


def test_the_same_slowdown_on_an_equally_quiet_machine_stays_critical():
    verdict = compare(quiet_baseline(), loaded(record(stats(2.0, phase=4)), foreign=0.2))
    assert verdict.tier == "critical"
    assert not any("busier" in n for n in verdict.notes)


def test_a_quieter_machine_or_records_without_the_figures_change_nothing():
    busy_baseline = baseline(*(loaded(record(stats(1.0, phase=i)), foreign=1.0) for i in range(3)))
    assert compare(busy_baseline, loaded(record(stats(2.0, phase=4)), foreign=0.0)).tier == "critical"
    old_baseline = baseline(*(record(stats(1.0, phase=i)) for i in range(3)))  # recorded before the probe
    assert compare(old_baseline, loaded(record(stats(2.0, phase=4)), foreign=1.0)).tier == "critical"
    assert compare(quiet_baseline(), record(stats(2.0, phase=4))).tier == "critical"


def test_steal_time_and_a_slower_core_are_reasons_of_their_own():
    base = quiet_baseline()
    stolen = busier_than_baseline(base["runs"], loaded(record(), steal=0.12))
    assert stolen == "the hypervisor stole 12% of the CPU time, 0% during the baseline"
    slower = busier_than_baseline(base["runs"], loaded(record(), bench=1200.0))
    assert slower == "a 1.20 ms micro-benchmark took 1.5x the baseline's"
    assert busier_than_baseline(base["runs"], loaded(record(), bench=900.0, steal=0.02, foreign=0.2)) == ""


def test_an_unchanged_service_on_a_busier_machine_is_noted_without_a_failure():
    verdict = compare(quiet_baseline(), loaded(record(stats(1.0, phase=4)), foreign=1.0))
    assert verdict.tier in ("none", "negligible")
    assert any("busier" in n for n in verdict.notes)


def test_the_check_can_be_turned_off_where_the_machines_load_is_the_test():
    off = policy_from_ini(lambda name: "false" if name == "perf_regression_busy_machine" else "")
    assert off == RegressionPolicy(busy_machine=False)
    verdict = compare(quiet_baseline(), loaded(record(stats(2.0, phase=4)), foreign=1.01), policy=off)
    assert verdict.tier == "critical"
    assert not any("busier" in n for n in verdict.notes)

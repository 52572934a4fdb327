"""The generator watches itself: a saturated generator distorts every latency it reports."""

from __future__ import annotations

import time

from pytest_shopflow_perf.metrics.hdr import new_histogram, to_us
from pytest_shopflow_perf.result.model import GeneratorStats

# Above these the run measures the generator, not the service.
LAG_P99_LIMIT_MS = 50.0
CPU_LIMIT_PERCENT = 90.0
LATE_ITERATION_S = 0.010
LATE_DISPATCH_LIMIT = 0.01  # share of arrivals the generator itself released late
BEHIND_LIMIT = 0.10  # share of the planned user-seconds the users may run behind the profile


def cpu_figures(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean and max CPU % of a core from (wall, CPU) samples, the mean weighted by each sample's length.

    The first sample covers start-up (clients, on_start): it is left out when the rest still
    covers a second; an unweighted mean let a short run be judged on its partial last sample.
    """
    steady = samples[1:] if sum(wall for wall, _ in samples[1:]) >= 1.0 else samples
    wall = sum(w for w, _ in steady)
    mean = 100.0 * sum(cpu for _, cpu in steady) / wall if wall > 0 else 0.0
    full = [100.0 * cpu / w for w, cpu in steady if w >= 0.5] or [mean]
    return mean, max(full)


class GeneratorMonitor:
    """Event-loop lag (how late a timer fires) and process CPU, sampled by the engine's ticker."""

    def __init__(self) -> None:
        self._lag = new_histogram()
        self._cpu_samples: list[tuple[float, float]] = []  # (wall seconds, CPU seconds) per sample
        self._cpu_wall = time.perf_counter()
        self._cpu_used = time.process_time()
        self.peak_users = 0
        self.users_target = 0
        self.users_started = 0
        self.users_failed_to_start = 0
        self.spawn_rate_per_s = 0
        # Closed model: integral of (planned - running) users, and of planned users, over the run.
        self.behind_user_s = 0.0
        self.planned_user_s = 0.0
        self.iterations = 0
        self.late_iterations = 0
        self.dropped_iterations = 0
        self.max_lateness = 0.0
        self.dispatched = 0
        self.late_dispatches = 0

    def start(self) -> None:
        """The run begins: CPU spent warming up is not the run's."""
        self._cpu_wall = time.perf_counter()
        self._cpu_used = time.process_time()

    def record_lag(self, lag_s: float) -> None:
        self._lag.record_value(to_us(lag_s))

    def sample_cpu(self) -> float:
        wall, used = time.perf_counter(), time.process_time()
        elapsed = wall - self._cpu_wall
        if elapsed <= 0:
            return 0.0
        percent = 100.0 * (used - self._cpu_used) / elapsed
        self._cpu_samples.append((elapsed, used - self._cpu_used))
        self._cpu_wall, self._cpu_used = wall, used
        return percent

    def record_dispatch(self, lateness_s: float) -> None:
        """Open model: how late the generator released an arrival (not the service's fault: its own)."""
        self.dispatched += 1
        if lateness_s > LATE_ITERATION_S:
            self.late_dispatches += 1

    def record_lateness(self, lateness_s: float) -> None:
        if lateness_s > LATE_ITERATION_S:
            self.late_iterations += 1
        if lateness_s > self.max_lateness:
            self.max_lateness = lateness_s

    def stats(self, clamped: int = 0) -> GeneratorStats:
        has_lag = self._lag.get_total_count() > 0
        lag_p50 = self._lag.get_value_at_percentile(50) / 1000 if has_lag else 0.0
        lag_p99 = self._lag.get_value_at_percentile(99) / 1000 if has_lag else 0.0
        lag_max = self._lag.get_max_value() / 1000 if has_lag else 0.0
        # The first sample covers start-up work (clients, on_start): judge the steady state.
        cpu_mean, cpu_max = cpu_figures(self._cpu_samples)
        reasons = []
        if lag_p99 > LAG_P99_LIMIT_MS:
            reasons.append(f"event-loop lag p99 {lag_p99:.0f} ms > {LAG_P99_LIMIT_MS:.0f} ms")
        if cpu_mean > CPU_LIMIT_PERCENT:
            reasons.append(f"generator CPU {cpu_mean:.0f} % > {CPU_LIMIT_PERCENT:.0f} % of a core")
        if self.dispatched and self.late_dispatches > max(2, LATE_DISPATCH_LIMIT * self.dispatched):
            share = 100.0 * self.late_dispatches / self.dispatched
            reasons.append(f"{share:.1f} % of arrivals released more than 10 ms late by the generator itself")
        if self.planned_user_s > 0 and self.behind_user_s > BEHIND_LIMIT * self.planned_user_s:
            share = 100.0 * self.behind_user_s / self.planned_user_s
            reasons.append(
                f"users ran {share:.0f} % behind the profile: started {self.users_started:,} of "
                f"{self.users_target:,} (spawning is paced at {self.spawn_rate_per_s:,}/s)"
            )
        return GeneratorStats(
            loop_lag_p50_ms=round(lag_p50, 3),
            loop_lag_p99_ms=round(lag_p99, 3),
            loop_lag_max_ms=round(lag_max, 3),
            cpu_percent=round(cpu_mean, 1),
            cpu_max_percent=round(cpu_max, 1),
            peak_users=self.peak_users,
            users_target=self.users_target,
            users_started=self.users_started,
            users_failed_to_start=self.users_failed_to_start,
            iterations=self.iterations,
            late_iterations=self.late_iterations,
            dropped_iterations=self.dropped_iterations,
            max_lateness_ms=round(self.max_lateness * 1000, 3),
            clamped_values=clamped,
            saturated=bool(reasons),
            reasons=tuple(reasons),
        )

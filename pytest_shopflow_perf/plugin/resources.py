"""Which process and which ``/metrics`` a run samples, and the sampler around the run.

The embedded ShopFlow service is sampled without being asked (its PID and its ``/metrics``);
any other target when ``--perf-target-pid`` / ``--perf-metrics-url`` (or their ini twins
``perf_target_pid`` / ``perf_metrics_url``) name what to sample. An in-process ``app=`` runs in
the generator's own process: sampling it would measure the generator, so it is not sampled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_shopflow_perf.target.policy import TargetError, TargetPolicy

if TYPE_CHECKING:
    from pytest_shopflow_perf.metrics.resources import ResourceSampler
    from pytest_shopflow_perf.plugin.options import Settings
    from pytest_shopflow_perf.plugin.session import PerfSession
    from pytest_shopflow_perf.result.resources import Resources
    from pytest_shopflow_perf.result.target import RunTarget

__all__ = ["check_settings", "sampler_for", "stop"]


def check_settings(settings: Settings) -> None:
    """At configure: a PID that is not there, or a metrics URL the load may not reach, is a usage error."""
    if settings.target_pid is not None:
        from pytest_shopflow_perf.metrics.resources import check_pid

        problem = check_pid(settings.target_pid)
        if problem is not None:
            raise pytest.UsageError(
                f"--perf-target-pid {settings.target_pid}: {problem}; give the PID of the running service "
                "under test (e.g. $(pgrep -f 'uvicorn shopflow')), or leave the option out"
            )
    url = settings.metrics_url
    if url is not None:
        if not url.startswith(("http://", "https://")):
            raise pytest.UsageError(
                f"--perf-metrics-url {url!r} is not valid: expected the http(s) URL of a Prometheus text endpoint, "
                "e.g. http://127.0.0.1:8000/metrics"
            )
        try:
            TargetPolicy(settings.allowed_hosts).check_url(url)
        except TargetError as exc:
            raise pytest.UsageError(f"--perf-metrics-url: {exc}") from None


def sampler_for(session: PerfSession, target: RunTarget | None) -> ResourceSampler | None:
    """The sampler of one run's target, not started; None when there is nothing to sample."""
    from pytest_shopflow_perf.metrics.resources import ResourceSampler

    settings = session.settings
    pid, metrics_url = settings.target_pid, settings.metrics_url
    source = ""
    server = session.server
    if (
        pid is None
        and metrics_url is None
        and target is not None
        and target.source == "embedded"
        and server is not None
        and server.pid is not None
    ):
        pid = server.pid
        if not settings.app:  # the ShopFlow reference service serves /metrics; a user's --perf-app may not
            metrics_url = f"{server.base_url}/metrics"
        source = f"embedded service, pid {pid}" + (f", {metrics_url}" if metrics_url else "")
    if pid is None and metrics_url is None:
        return None
    return ResourceSampler(pid=pid, metrics_url=metrics_url, source=source)


def stop(sampler: ResourceSampler | None) -> Resources | None:
    """The run's ``result.resources``: None when nothing was sampled."""
    if sampler is None:
        return None
    from pytest_shopflow_perf.result.resources import Resources

    samples, notes = sampler.stop()
    if not samples:
        return None
    return Resources(samples=tuple(samples), source=sampler.source, notes=tuple(notes))

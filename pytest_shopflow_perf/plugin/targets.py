"""What each load run targets, and the words every report uses for it.

A forgotten ``--perf-base-url`` silently load-tests the embedded reference service: so every
run carries a :class:`~pytest_shopflow_perf.result.target.RunTarget` whose label says which
service it was and why (``"embedded ShopFlow reference service http://127.0.0.1:PORT (no
--perf-base-url / SHOPFLOW_BASE_URL / perf_base_url given)"``), and the terminal says it before
the first load test starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_shopflow_perf.profile.resolve import ENV_VARS
from pytest_shopflow_perf.result.target import RunTarget

if TYPE_CHECKING:
    from pytest_shopflow_perf.plugin.options import Settings
    from pytest_shopflow_perf.profile.resolve import LoadProfile

NOT_GIVEN = "no --perf-base-url / SHOPFLOW_BASE_URL / perf_base_url given"
EMBEDDED_REFUSED = (
    "no load target: ini perf_embedded = false turns off the embedded ShopFlow reference service, and "
    "{test} names no target. Give the service under test: --perf-base-url http://127.0.0.1:8000 (or "
    "SHOPFLOW_BASE_URL, ini perf_base_url, base_url= on the marker or load.run), load.run(journeys, "
    "app=asgi_app) for an in-process app, or --perf-app MODULE:APP to have the plugin serve your own ASGI app"
)


def configured(settings: Settings, config: pytest.Config, environ: Mapping[str, str] = os.environ) -> RunTarget | None:
    """The session-wide target, by precedence (command line > environment > ini); None when none is set.

    A marker's ``base_url=`` sits between the environment and ini: it is per test, so not here.
    """
    if settings.base_url:
        return RunTarget(settings.base_url, "option", f"{settings.base_url} (--perf-base-url)")
    env = environ.get(ENV_VARS["base_url"])
    if env:
        return RunTarget(env, "option", f"{env} ({ENV_VARS['base_url']})")
    ini = str(config.getini("perf_base_url") or "")
    if ini:
        return RunTarget(ini, "option", f"{ini} (ini perf_base_url)")
    return None


def of_profile(profile: LoadProfile, config: pytest.Config, *, from_run: bool) -> RunTarget | None:
    """The target a resolved profile names (``from_run``: ``load.run(base_url=...)`` set it), else ini's."""
    if profile.base_url:
        url, source = profile.base_url, profile.sources.get("base_url", "")
        if source == "command line":
            return RunTarget(url, "option", f"{url} (--perf-base-url)")
        if source.startswith("environment"):
            return RunTarget(url, "option", f"{url} ({ENV_VARS['base_url']})")
        where = "load.run(base_url=...)" if from_run else "base_url= of @pytest.mark.load"
        return RunTarget(url, "marker", f"{url} ({where})")
    ini = str(config.getini("perf_base_url") or "")
    return RunTarget(ini, "option", f"{ini} (ini perf_base_url)") if ini else None


def embedded(url: str, app: str) -> RunTarget:
    """The embedded service, named with why it was used."""
    if not app:
        return RunTarget(url, "embedded", f"embedded ShopFlow reference service {url} ({NOT_GIVEN})")
    return RunTarget(url, "embedded", f"embedded service {app} {url} (--perf-app; {NOT_GIVEN})")


def in_process(app: Any, url: str) -> RunTarget:
    """An ASGI app driven in this process (``load.run(app=...)``): no network at all."""
    kind = app if callable(app) and hasattr(app, "__qualname__") else type(app)
    name = f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', type(app).__name__)}"
    return RunTarget(url, "app", f"in-process ASGI app {name} at {url} (load.run(app=...), no network)")


def with_note(target: RunTarget, note: str) -> RunTarget:
    return RunTarget(target.url, target.source, f"{target.label}; {note}")


def session_line(settings: Settings, config: pytest.Config, marker_urls: Sequence[str | None]) -> str:
    """The header line printed after collection, before any load: what the load tests will hit.

    :param marker_urls: ``base_url=`` of each collected load test's marker (None where it has none).
    """
    target = configured(settings, config)
    own = sorted({url for url in marker_urls if url})
    without = sum(1 for url in marker_urls if not url)
    if target is not None and target.label.endswith("(ini perf_base_url)") and own:
        text = f"{target.label}; tests with base_url= on their marker use their own ({', '.join(own)})"
    elif target is not None:
        text = target.label
    elif not without:
        text = f"the base_url= of each test's marker ({', '.join(own)})"
    else:
        if settings.app:
            text = f"embedded service {settings.app}, started on a free loopback port (--perf-app; {NOT_GIVEN})"
        elif not settings.embedded:
            text = (
                "none configured (ini perf_embedded = false, and no --perf-base-url / SHOPFLOW_BASE_URL / "
                "perf_base_url given): a load test without base_url= or app= is an error"
            )
        else:
            text = (
                "embedded ShopFlow reference service, started on a free loopback port by the first load test "
                f"({NOT_GIVEN})"
            )
        if own:
            text += f", for the {without} load test(s) without base_url= (the others: {', '.join(own)})"
    if settings.cluster:
        text += f"; load generated on the Dask cluster {settings.cluster}"
    return f"shopflow perf: load target: {text}"


def labels(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct target labels of run summaries, in order (records without a target are left out)."""
    seen: dict[str, None] = {}
    for run in runs:
        target = run.get("target")
        if target:
            seen.setdefault(str(RunTarget.from_value(target)), None)
    return list(seen)

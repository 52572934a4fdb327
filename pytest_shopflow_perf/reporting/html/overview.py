"""The run-level overview over the report: what was tested, for how long, on what, against which baseline.

Built on the controller from the run summaries of every load test (interrupted ones too) and the
session's environment fingerprint. Inline styles: the overview sits above the results table,
where the extras' style sheet may not have been inserted yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pytest_shopflow_perf.reporting.html.markup import INTERRUPTED_COLOR

OVERVIEW_STYLE = (
    "border: 1px solid #cfd8dc; background: #f7f9fa; color: #222; border-radius: 4px; padding: 8px 14px; "
    "margin: 8px 0 12px; font-size: 13px; max-width: 1100px"
)
_TH = "text-align:left;padding:2px 14px 2px 0;color:#455a64;font-weight:bold;vertical-align:top;white-space:nowrap"
_TD = "padding:2px 0;color:#222"
MAX_LISTED = 4  # baselines named one by one; more are summed up


def overview(tests: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], environment: Mapping[str, Any]) -> str:
    """The overview box of a session's load tests: ``tests`` are (node id, run summaries) in collection order."""
    runs = [run for _, test_runs in tests for run in test_runs]
    if not runs:
        return ""
    rows = [
        ("target", "Target", _targets(runs)),
        ("load", "Load", _load(tests, runs)),
        ("machine", "Machine", _machine(environment)),
        ("plugin", "Plugin", escape(f"pytest-shopflow-perf {environment.get('plugin_version') or 'unknown'}")),
        ("baseline", "Baseline", _baselines(runs)),
    ]
    if environment.get("git_commit"):
        rows.append(("commit", "Commit", f"<code>{escape(str(environment['git_commit'])[:12])}</code>"))
    body = "".join(
        f'<tr data-key="{key}"><th style="{_TH}">{label}</th><td style="{_TD}">{value}</td></tr>'
        for key, label, value in rows
    )
    return (
        f'<div id="sfp-overview" class="sfp-overview" style="{OVERVIEW_STYLE}">'
        '<div style="font-weight:bold;font-size:15px;margin-bottom:4px">Load tests</div>'
        f'<table class="sfp-overview-table" style="border-collapse:collapse">{body}</table></div>'
    )


def target_of(run: Mapping[str, Any]) -> tuple[str, str]:
    """(what to show, where it came from) of a run's target: ``run["target"]`` when the record has it."""
    target = run.get("target")
    if isinstance(target, Mapping):
        url = str(target.get("url") or "")
        label = str(target.get("label") or "")
        shown = f"{label} ({url})" if label and url and url not in label else (label or url)
        return shown, str(target.get("source") or "")
    if isinstance(target, str) and target:
        return target, ""
    base_url = (run.get("profile") or {}).get("base_url")
    return (str(base_url), "") if base_url else ("", "")


def _targets(runs: Sequence[Mapping[str, Any]]) -> str:
    found: dict[str, str] = {}
    for run in runs:
        shown, source = target_of(run)
        if shown and shown not in found:
            found[shown] = source
    if not found:
        return "-"
    return "<br>".join(
        f'<span class="sfp-target">{escape(shown)}</span>'
        + (f' <span style="color:#666">({escape(source)})</span>' if source else "")
        for shown, source in found.items()
    )


def _load(tests: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], runs: Sequence[Mapping[str, Any]]) -> str:
    seconds = sum(float(run.get("duration_s") or 0.0) for run in runs)
    models: dict[str, int] = {}
    for run in runs:
        model = str(run.get("model") or "closed")
        models[model] = models.get(model, 0) + 1
    requests = sum(int((run.get("total") or {}).get("requests", 0)) for run in runs)
    text = (
        f"{len(runs)} run{'s' if len(runs) != 1 else ''} in {len(tests)} test{'s' if len(tests) != 1 else ''}, "
        f'<b class="sfp-load-duration">{_duration(seconds)}</b> of load in total, {requests:,} requests ('
        + ", ".join(f"{count} {model} model" for model, count in sorted(models.items()))
        + ")"
    )
    stopped = [
        str(run.get("test") or nodeid)
        for nodeid, test_runs in tests
        for run in test_runs
        if run.get("interrupted") and (run.get("extra") or {}).get("stop_reason", "interrupted") == "interrupted"
    ]
    if stopped:
        text += (
            f'<br><span class="sfp-overview-interrupted" style="color:{INTERRUPTED_COLOR};font-weight:bold">'
            f"interrupted: {escape(', '.join(stopped))} (partial results, not judged)</span>"
        )
    return text


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _machine(environment: Mapping[str, Any]) -> str:
    cores = environment.get("cpu_count")
    parts = [str(environment.get("cpu_model") or "unknown CPU")]
    if cores:
        quota = environment.get("cpu_quota")
        parts.append(f"{cores} core{'s' if cores != 1 else ''}" + (f" (cgroup quota {quota:g} CPUs)" if quota else ""))
    if environment.get("python"):
        parts.append(f"{environment.get('implementation') or 'Python'} {environment['python']}")
    if environment.get("system"):
        parts.append(f"{environment['system']} {environment.get('machine') or ''}".strip())
    return escape(", ".join(parts))


def _baselines(runs: Sequence[Mapping[str, Any]]) -> str:
    compared: dict[str, int] = {}
    missing = off = not_judged = 0
    for run in runs:
        extra = run.get("extra") or {}
        verdict = extra.get("regression")
        if verdict:
            shown = str(extra.get("baseline_file") or run.get("test") or "?")
            compared[shown] = max(compared.get(shown, 0), int(verdict.get("baseline_runs", 0)))
        elif "no baseline" in str(extra.get("regression_note") or ""):
            missing += 1
        elif "disabled" in str(extra.get("regression_note") or ""):
            off += 1
        else:
            not_judged += 1
    parts = []
    if compared:
        listed = [f"<code>{escape(path)}</code> ({n} run{'s' if n != 1 else ''})" for path, n in compared.items()]
        if len(listed) <= MAX_LISTED:
            parts.append(", ".join(listed))
        else:
            counts = sorted(compared.values())
            parts.append(
                f"<details><summary>{len(compared)} baselines ({counts[0]}-{counts[-1]} runs each)</summary>"
                + "<br>".join(listed)
                + "</details>"
            )
    if missing:
        parts.append(
            f"no baseline yet for {missing} run{'s' if missing != 1 else ''} (record with --perf-save-baseline)"
        )
    if off:
        parts.append("comparison disabled (--perf-no-compare)")
    if not_judged and not compared and not missing and not off:
        parts.append("none compared")
    return "; ".join(parts) or "-"

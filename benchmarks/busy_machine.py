"""A/A on a shared runner: does a busy loop beside the candidate run make the gate cry regression?

An unchanged service (the embedded ShopFlow reference service, CPU-bound Python)
gets K baseline runs on a quiet machine; then candidates run, in turn, quiet and
with a busy-loop process on one core (not a child of the generator: another
job's). For each candidate the script prints the gate's verdict, the tier it
would have given without the busy-machine check (``would be ...`` in the
findings' notes) and the CPU the probe saw other processes use.

    python benchmarks/busy_machine.py                 # K=3, 3 quiet + 3 busy candidates, 5 s each
    python benchmarks/busy_machine.py --runs 5 --duration 8s --users 20

The exit code is 1 when a busy candidate is flagged (minor or worse) or a quiet
one is downgraded, 0 otherwise. Nothing runs off loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TEST = textwrap.dedent(
    """
    import json, os, pytest

    async def shopper(user):
        await user.client.get("/api/products", params={"q": "shoe"}, extensions={"name": "search"})
        await user.client.get("/api/products/1", extensions={"name": "product"})
        await user.think(float(os.environ["AA_THINK"]))  # below saturation: a saturated run is never a baseline

    @pytest.mark.load(users=int(os.environ["AA_USERS"]), duration=os.environ["AA_DURATION"])
    def test_aa(load):
        result = load.run(shopper)
        verdict = result.extra.get("regression") or {}
        print("AA-RESULT " + json.dumps({
            "tier": verdict.get("tier"),
            "raw": [f.get("note", "") for f in verdict.get("findings", [])],
            "notes": verdict.get("notes", []),
            "foreign": result.environment["machine_load"].get("foreign_cpu_cores"),
            "p99_ms": result.percentile(99) * 1000,
            "rps": result.rps,
            "saturated": result.generator.saturated,
        }))
    """
)
FAILING = ("minor", "major", "critical")


def run_pytest(project: Path, env: dict[str, str], *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--perf-fail-on", "never", *extra],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"AA-RESULT (\{.*\})", out.stdout)
    if match is None:
        sys.exit(f"the load test did not run:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(match.group(1))
    return result


def raw_tier(result: dict[str, object]) -> str:
    """The worst tier before the busy-machine check (the findings' "would be X on a machine..." notes)."""
    notes = " ".join(str(n) for n in result["raw"])  # type: ignore[attr-defined]
    found = [tier for tier in FAILING if f"would be {tier} on a machine as quiet" in notes]
    return found[-1] if found else str(result["tier"])


def busy_loop() -> int:
    """A busy loop re-parented by the shell (another job's process), on core 1 when taskset exists."""
    pin = "taskset -c 1 " if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else ""
    started = subprocess.run(
        ["sh", "-c", f'{pin}"{sys.executable}" -c "while True: pass" >/dev/null 2>&1 & echo $!'],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(started.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="baseline runs (K)")
    parser.add_argument("--candidates", type=int, default=3, help="quiet and busy candidates each")
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--think", type=float, default=0.01, help="think time per iteration, seconds")
    args = parser.parse_args()
    env = {**os.environ, "AA_USERS": str(args.users), "AA_DURATION": args.duration, "AA_THINK": str(args.think)}
    with tempfile.TemporaryDirectory(prefix="busy-machine-") as tmp:
        project = Path(tmp)
        (project / "test_aa.py").write_text(TEST)
        (project / "pytest.ini").write_text("[pytest]\n")
        for index in range(args.runs):
            result = run_pytest(project, env, "--perf-save-baseline")
            print(f"baseline {index + 1}: p99 {result['p99_ms']:.1f} ms, {result['rps']:.0f} req/s, "
                  f"foreign CPU {result['foreign']:.2f} cores, saturated: {result['saturated']}")  # fmt: skip
        rows: list[tuple[str, dict[str, object]]] = []
        for index in range(args.candidates * 2):
            kind = "busy" if index % 2 else "quiet"
            pid = busy_loop() if kind == "busy" else None
            try:
                rows.append((kind, run_pytest(project, env)))
            finally:
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
    print(f"\n{'candidate':<10} {'verdict':<13} {'without check':<14} {'foreign CPU':>11} {'p99 ms':>8} {'req/s':>8}")
    bad = 0
    for kind, result in rows:
        raw = raw_tier(result)
        print(f"{kind:<10} {result['tier']!s:<13} {raw:<14} {result['foreign']:>11.2f} "
              f"{result['p99_ms']:>8.1f} {result['rps']:>8.0f}")  # fmt: skip
        flagged = result["tier"] in FAILING
        downgraded_quiet = kind == "quiet" and any("busier" in str(n) for n in result["notes"])  # type: ignore[attr-defined]
        bad += flagged or downgraded_quiet
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

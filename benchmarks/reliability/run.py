"""Reliability figures of `riskserve serve` on the bundled models, measured against a real subprocess.

    .venv/bin/python -m benchmarks.reliability [--quick] [--only drain,bad_inputs,overload,invariance]

Scenarios: drain under load (SIGTERM mid-run), bad-input barrage, overload memory and recovery, batch
invariance. Writes benchmarks/reliability/results.json, docs/reliability.md and (if /work/notes exists)
/work/notes/reliability-figures.md. About 3 minutes (--quick: about 1). The generator and the server share
the machine's cores.
"""

import argparse
import asyncio
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.reliability import bad_inputs, drain, invariance, overload
from benchmarks.reliability.report import render
from benchmarks.reliability.server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_WORK = Path("/tmp/riskserve-reliab")  # outside the repo: the quantization cache persists across runs
NOTES = Path("/work/notes/reliability-figures.md")
SCENARIOS = ("invariance", "bad_inputs", "overload", "drain")
SEED = 7


def _git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "server"], cwd=REPO, capture_output=True, text=True
    )
    return out.stdout.strip() + ("+uncommitted server/ changes" if dirty.stdout.strip() else "")


def _plan(quick: bool) -> dict[str, Any]:
    return {
        "invariance_transactions": 200 if quick else 500,
        "bad_input_requests": 1000 if quick else 3000,
        "overload_capacity_s": 2.0 if quick else 3.0,
        "overload_load_s": 5.0 if quick else 10.0,
        "drain_rate_per_s": 300.0,
        "drain_sigterm_after_s": 2.0 if quick else 4.0,
    }


async def _scenarios(server: ServerProcess, names: list[str], plan: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "invariance" in names:
        results["invariance"] = await invariance.run(server.target, plan["invariance_transactions"], SEED)
    if "bad_inputs" in names:
        results["bad_inputs"] = await bad_inputs.run(server, plan["bad_input_requests"], SEED)
    if "overload" in names:
        results["overload"] = await overload.run(
            server, plan["overload_load_s"], plan["overload_capacity_s"], SEED
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 1 minute)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK, help="logs and quantization cache")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "reliability.md")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    plan = _plan(args.quick)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    cache = args.work_dir / "cache"
    began = time.monotonic()
    results: dict[str, Any] = {
        "commit": _git_commit(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_start": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "plan": plan,
        "scenarios": {},
    }
    main_names = [n for n in names if n != "drain"]
    if main_names:
        server = ServerProcess(args.work_dir, cache, {}, "main")
        server.start()
        results["startup_s_main"] = round(server.start_seconds, 1)
        try:
            results["scenarios"].update(asyncio.run(_scenarios(server, main_names, plan)))
        finally:
            server.stop()
    if "drain" in names:
        server = ServerProcess(args.work_dir, cache, drain.SETTINGS, "drain")
        server.start()
        try:
            results["scenarios"]["drain"] = asyncio.run(
                drain.run(server, plan["drain_rate_per_s"], plan["drain_sigterm_after_s"], SEED)
            )
        finally:
            server.stop()
    results["machine"]["load_avg_at_end"] = os.getloadavg()[0]
    results["seconds"] = round(time.monotonic() - began, 1)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    markdown = render(results)
    args.markdown.write_text(markdown)
    if NOTES.parent.is_dir():
        NOTES.write_text(markdown)
    print(markdown)
    return 0

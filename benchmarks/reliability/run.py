"""Reliability figures of `riskserve serve` on the bundled models, measured against a real subprocess.

    .venv/bin/python -m benchmarks.reliability [--quick] [--only drain,bad_inputs,...] [--soak-s 600]

Scenarios: drain under load (SIGTERM mid-run), bad-input barrage, overload memory and recovery, batch
invariance, soak (memory under a steady mixed load, then idle), the first minute after a cold and a warm
start, faults (a worker killed, a batcher fault, a hung ONNX Runtime call, gRPC core shedding) and startup
faults (a scrambled model file, damaged cache entries, an unwritable cache).
Writes benchmarks/reliability/results.json, docs/reliability.md and (if /work/notes exists)
/work/notes/reliability-figures.md. About 30 minutes (--quick: about 10, the soak 2 minutes instead of 10).
The generator and the server share the machine's cores.
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from benchmarks.reliability import (
    bad_inputs,
    drain,
    faults,
    first_minute,
    invariance,
    large_messages,
    overload,
    soak,
    startup_faults,
)
from benchmarks.reliability.report import COMMAND, render
from benchmarks.server_process import RiskServe
from loadtest.open_loop import precise_timer_loop

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_WORK = Path("/tmp/riskserve-reliab")  # outside the repo: the quantization cache persists across runs
NOTES = Path("/work/notes/reliability-figures.md")
SCENARIOS = (
    "invariance",
    "bad_inputs",
    "overload",
    "faults",
    "startup_faults",
    "large_messages",
    "drain",
    "first_minute",
    "soak",
)
SEED = 7


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def _server_source(source: str, work_dir: Path) -> tuple[Path | None, str]:
    """`head`: the committed tree exported to work_dir (others' uncommitted edits do not leak in);
    `worktree`: this checkout as it is on disk; any other value: that commit, exported (a baseline to
    compare with). Returns (source dir or None, commit label)."""
    commit = _git("rev-parse", "--short", "HEAD" if source in ("head", "worktree") else source)
    if source == "worktree":
        dirty = _git("status", "--porcelain", "server", "models")
        return None, commit + ("+uncommitted server/ or models/ changes" if dirty else "")
    target = work_dir / f"src-{commit}"
    if not target.is_dir():
        partial = work_dir / f"src-{commit}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(partial)], input=archive.stdout, check=True)
        partial.rename(target)
    return target, commit


def _plan(quick: bool) -> dict[str, Any]:
    return {
        "invariance_transactions": 200 if quick else 500,
        "bad_input_requests": 1000 if quick else 3000,
        "overload_capacity_s": 2.0 if quick else 3.0,
        "overload_load_s": 5.0 if quick else 10.0,
        "drain_rate_per_s": 300.0,
        "drain_sigterm_after_s": 2.0 if quick else 3.0,
        "drain_runs": 2 if quick else 8,
        "faults_rate_per_s": 300.0,
        "shed_burst": 3000,
        "first_minute_rate_per_s": 150.0,
        "first_minute_first_s": 60.0,
        "first_minute_steady_s": 60.0,
        "soak_rate_per_s": 150.0,
        "soak_load_s": 120.0 if quick else 600.0,
        "soak_idle_s": 60.0 if quick else 120.0,
        "soak_sample_s": 30.0,
        "soak_warmup_s": 30.0 if quick else 60.0,
    }


def _server(work_dir: Path, cache: Path, settings: dict, name: str, source: Path | None) -> RiskServe:
    """`riskserve serve` on the bundled models, started and SERVING (ServerStartError otherwise)."""
    log_path = work_dir / f"server-{name}.log"
    server = RiskServe(cache_dir=cache, settings=settings, log_path=log_path, source_dir=source, label=name)
    return server.start()


def _run(scenario: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run on the load tester's event loop with precise timers, so open-loop sends leave on time."""
    with asyncio.Runner(loop_factory=precise_timer_loop) as runner:
        return runner.run(scenario)


async def _scenarios(server: RiskServe, names: list[str], plan: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "invariance" in names:
        results["invariance"] = await invariance.run(server.target, plan["invariance_transactions"], SEED)
    if "bad_inputs" in names:
        results["bad_inputs"] = await bad_inputs.run(server, plan["bad_input_requests"], SEED)
    if "overload" in names:
        results["overload"] = await overload.run(
            server, plan["overload_load_s"], plan["overload_capacity_s"], SEED
        )
    if "faults" in names:
        results["faults_shed"] = await faults.grpc_shed(server, plan["shed_burst"], SEED)
    return results


async def _fault_scenarios(work_dir: Path, cache: Path, source: Path | None, extra: dict, plan: dict) -> dict:
    rate = plan["faults_rate_per_s"]
    return {
        "worker_kill": await faults.worker_kill(work_dir, cache, source, extra, rate, SEED),
        "batcher_fault": await faults.batcher_fault(work_dir, cache, source, extra, rate, SEED),
        "hung_inference": await faults.hung_inference(work_dir, cache, source, extra, rate, SEED),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 1 minute)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK, help="logs and quantization cache")
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra riskserve setting for every server started (as RISKSERVE_<NAME>), e.g. workers=2",
    )
    parser.add_argument(
        "--drain-runs", type=int, help="drain runs, each on a fresh server (default 8; quick 2)"
    )
    parser.add_argument(
        "--source",
        default="head",
        help="server code: head (the committed HEAD, exported; default), worktree (this checkout as it is), "
        "or a commit to compare with (exported)",
    )
    parser.add_argument("--soak-s", type=float, help="seconds of soak load (default 600; quick 120)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the markdown from --output")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "reliability.md")
    args = parser.parse_args(argv)
    if args.render_only:
        _write_markdown(json.loads(args.output.read_text()), args.markdown)
        return 0
    extra = dict(item.split("=", 1) for item in args.server_setting)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    plan = _plan(args.quick)
    if args.drain_runs:
        plan["drain_runs"] = args.drain_runs
    if args.soak_s:
        plan["soak_load_s"] = args.soak_s
    args.work_dir.mkdir(parents=True, exist_ok=True)
    cache = args.work_dir / "cache"
    source_dir, commit = _server_source(args.source, args.work_dir)
    began = time.monotonic()
    results: dict[str, Any] = {
        "commit": commit,
        "server_source": args.source,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_start": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "plan": plan,
        "server_settings": extra,
        "scenarios": {},
    }
    main_names = [n for n in names if n in ("invariance", "bad_inputs", "overload", "faults")]
    if main_names:
        server = _server(args.work_dir, cache, extra, "main", source_dir)
        results["startup_s_main"] = round(server.start_seconds, 1)
        try:
            results["scenarios"].update(_run(_scenarios(server, main_names, plan)))
        finally:
            server.stop()
    if "drain" in names:
        runs = []
        for index in range(plan["drain_runs"]):
            server = _server(args.work_dir, cache, {**extra, **drain.SETTINGS}, f"drain-{index}", source_dir)
            try:
                rate, sigterm_after_s = plan["drain_rate_per_s"], plan["drain_sigterm_after_s"]
                runs.append(_run(drain.run(server, rate, sigterm_after_s, SEED + index)))
            finally:
                server.stop()
        results["scenarios"]["drain"] = drain.combine(runs)
    if "faults" in names:
        results["scenarios"]["faults"] = _run(_fault_scenarios(args.work_dir, cache, source_dir, extra, plan))
        results["scenarios"]["faults"]["grpc_shed"] = results["scenarios"].pop("faults_shed")
    if "startup_faults" in names:
        results["scenarios"]["startup_faults"] = startup_faults.run(args.work_dir, cache, source_dir, extra)
    if "large_messages" in names:
        server = _server(args.work_dir, cache, extra, "large-messages", source_dir)
        try:
            results["scenarios"]["large_messages"] = large_messages.run(server)
        finally:
            server.stop()
    if "first_minute" in names:
        results["scenarios"]["first_minute"] = _run(
            first_minute.run(
                args.work_dir,
                source_dir,
                extra,
                plan["first_minute_rate_per_s"],
                plan["first_minute_first_s"],
                plan["first_minute_steady_s"],
                SEED,
            )
        )
    if "soak" in names:
        server = _server(args.work_dir, cache, extra, "soak", source_dir)
        try:
            results["scenarios"]["soak"] = _run(
                soak.run(
                    server,
                    plan["soak_rate_per_s"],
                    plan["soak_load_s"],
                    plan["soak_idle_s"],
                    plan["soak_sample_s"],
                    plan["soak_warmup_s"],
                    SEED,
                )
            )
        finally:
            server.stop()
    results["machine"]["load_avg_at_end"] = os.getloadavg()[0]
    results["seconds"] = round(time.monotonic() - began, 1)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    _write_markdown(results, args.markdown)
    return 0


def _write_markdown(results: dict[str, Any], path: Path) -> None:
    markdown = render(results)
    path.write_text(f"<!-- written by `{COMMAND}`; edit benchmarks/reliability/report.py -->\n{markdown}")
    if NOTES.parent.is_dir():
        NOTES.write_text(
            f"{markdown}\nServer findings with reproductions: {NOTES.parent / 'requests-reliab.md'}\n"
        )
    print(markdown)

"""Where unary Score's server CPU goes beyond the ORT-inline floor: riskserve with Score cut down to part
of its work (benchmarks/serving/ablation_server.py), layer by layer, side by side with the floor and with
riskserve itself, in one run.

    .venv/bin/python -m benchmarks.serving.score_ablation [--repeats 9] [--calls 2000] [--output FILE]

Same measurement as the serving benchmark's CPU phase (cost_phase.run_costs: utime + stime of each server's
process tree from /proc over sequential calls from a grpcio blocking stub, pre-serialized bytes, repeats
interleaved, medians). The floor serves riskserve's gated INT8 file. The rows:

| row | Score does |
|---|---|
| ORT-inline floor | benchmarks/serving/ort_floor_server.py, its own process, standard event loop |
| ORT-inline floor on uvloop | the same on uvloop, the loop riskserve (and each row below) runs on |
| floor-work | the floor's work, in riskserve's process: reader, feeds, session run, id + probability |
| decided | + risk score, decision, the full answer (ModelRef, latency) |
| recorded | + deadline read, the door's counters, the call's metrics |
| riskserve | + the call scope, routing, the micro-batcher, the batch histogram, the live sample |

The step from one row to the next (from the uvloop floor on) is what that layer costs per call; the load
generator and the servers share the machine's cores.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.serving import goals as g
from benchmarks.serving.ablation_server import VARIANT_VARIABLE, VARIANTS
from benchmarks.serving.cost_phase import unary_costs_against_floor
from benchmarks.serving.payloads import MODEL, mix_entry
from benchmarks.serving.targets import start_riskserve
from loadtest.request_bodies import build_pool

RISKSERVE = "riskserve"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _start_variant(work: Path, cache: Path, variant: str):
    from benchmarks.server_process import RiskServe

    server = RiskServe(
        cache_dir=cache,
        settings={"models": MODEL, "drain_pause_s": 0, "grace_period_s": 2},
        log_path=work / f"riskserve-{variant}.log",
        label=variant,
    )
    server.command[2] = "benchmarks.serving.ablation_server"  # python -m <this> serve ...
    server.env[VARIANT_VARIABLE] = variant
    return server.start()


def table(unary: dict) -> str:
    """Markdown: µs per call, ratio to the floor, and the step from the row above."""
    rows = [g.FLOOR, g.FLOOR_UVLOOP, *VARIANTS, RISKSERVE]
    floor = unary[g.FLOOR]["server_us_per_call"]
    same_loop = unary[g.FLOOR_UVLOOP]["server_us_per_call"]
    lines = [
        "| Score handler | server CPU µs/call | / ORT-inline floor | / floor on uvloop (riskserve's loop) | "
        "step from the row above | per repeat |",
        "|---|---:|---:|---:|---:|---|",
    ]
    previous = None
    for label in rows:
        summary = unary[label]
        us = summary["server_us_per_call"]
        step = "" if previous is None or label == g.FLOOR_UVLOOP else f"{us - previous:+.0f}"
        repeats = ", ".join(f"{v:.0f}" for v in summary["per_repeat_us_per_call"])
        lines.append(
            f"| {label} | {us:.0f} | {us / floor:.2f}x | {us / same_loop:.2f}x | {step} | {repeats} |"
        )
        previous = us
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2000, help="unary calls per target per repeat")
    parser.add_argument("--output", type=Path, help="write the summaries as JSON here")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "riskserve-infer-cost-cache"
    )
    args = parser.parse_args(argv)
    pools = {"score": build_pool(mix_entry("score"))}
    with tempfile.TemporaryDirectory(prefix="riskserve-ablation-") as scratch:
        work, cache = Path(scratch), args.cache_dir
        # riskserve first: it quantizes into the cache, if need be, for the variants and the floor
        starters = [(RISKSERVE, lambda: start_riskserve(work, cache))]
        starters += [(v, lambda v=v: _start_variant(work, cache, v)) for v in VARIANTS]
        costs = unary_costs_against_floor(starters, work, cache, pools, args.calls, args.repeats, log)
    unary = costs["score"]
    print(table(unary))
    spread = statistics.median(
        (max(s["per_repeat_us_per_call"]) - min(s["per_repeat_us_per_call"])) for s in unary.values()
    )
    print(f"\nmedian spread (max - min over the repeats) of a row: {spread:.0f} µs")
    if args.output:
        args.output.write_text(json.dumps(unary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

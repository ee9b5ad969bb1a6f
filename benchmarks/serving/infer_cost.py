"""The serving benchmark's server-CPU-per-call phase for unary ModelInfer and Score only: the ORT-inline
floor, this checkout's riskserve and, with `--base REV`, that commit's riskserve, in one run (a few minutes
instead of the full benchmark's 25).

    .venv/bin/python -m benchmarks.serving.infer_cost [--base main] [--repeats 5] [--calls 2000]

Same servers, request bytes and measurement as `python -m benchmarks.serving` (cost_phase.run_costs:
utime + stime of each server's process tree from /proc, repeats interleaved, medians); the floor serves
riskserve's gated INT8 file. Both riskserve servers share one quantization cache, kept between runs (started
one after the other, so the second reads what the first wrote).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.server_process import RiskServe
from benchmarks.serving import goals as g
from benchmarks.serving.cost_phase import unary_costs_against_floor
from benchmarks.serving.payloads import MODEL, mix_entry
from benchmarks.serving.revisions import export_commit
from benchmarks.serving.targets import start_riskserve
from loadtest.request_bodies import build_pool

KINDS = ("score", "infer")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="also measure this commit's riskserve (e.g. main)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="unary calls per target per repeat")
    parser.add_argument("--output", type=Path, help="write the summaries as JSON here")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "riskserve-infer-cost-cache"
    )
    args = parser.parse_args(argv)
    pools = {kind: build_pool(mix_entry(kind)) for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="riskserve-infer-cost-") as scratch:
        work, cache = Path(scratch), args.cache_dir
        starters = [("riskserve", lambda: start_riskserve(work, cache))]
        if args.base:
            label = f"riskserve {args.base}"

            def start_base() -> RiskServe:
                (work / "base").mkdir()
                return RiskServe(
                    source_dir=export_commit(args.base, work / "base"),
                    cache_dir=cache,
                    settings={"models": MODEL, "drain_pause_s": 0, "grace_period_s": 2},
                    log_path=work / "riskserve-base.log",
                    label=label,
                ).start()

            starters.append((label, start_base))
        costs = unary_costs_against_floor(starters, work, cache, pools, args.calls, args.repeats, log)
    for kind, by_label in costs.items():
        floor_us = by_label[g.FLOOR]["server_us_per_call"]
        for label, summary in by_label.items():
            us = summary["server_us_per_call"]
            print(f"{kind:6} {label:28} {us:7.0f} µs/call  {us / floor_us:5.2f}x floor")
    if args.output:
        args.output.write_text(json.dumps(costs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the live check costs the served calls: sequential FraudScoring.Score against the bundled fraud model
(INT8) with live_check_sample_rate 0, 0.01 and 0.1, side by side (benchmarks/shadow_overhead.py: one server
per rate, rounds interleaved; p50 / p99, server CPU per call and the FP32 thread's own, RSS, the live check's
rows compared and dropped).

    .venv/bin/python -m benchmarks.live_check                 # about 2 minutes on 2 shared cores
    .venv/bin/python -m benchmarks.live_check --calls 3000 --repeats 5 --output results.json
"""

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.shadow_overhead import Variant, print_table, run
from server.config.paths import BUNDLED_MODELS_DIR

RATES = (0.0, 0.01, 0.1)
COUNTERS = {
    "rows_compared": "riskserve_live_check_rows_total",
    "rows_dropped": "riskserve_live_check_dropped_rows_total",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per run")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, the rates interleaved in each")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="quantization cache (default: a temp dir)"
    )
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    variants = {
        f"rate {rate:g}": Variant(BUNDLED_MODELS_DIR, {"models": "fraud", "live_check_sample_rate": rate})
        for rate in RATES
    }
    with tempfile.TemporaryDirectory(prefix="riskserve-live-bench-") as scratch:
        results = run(variants, args.calls, args.repeats, args.cache_dir or Path(scratch), COUNTERS)
    print_table(results, "bundled fraud INT8, live check")
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

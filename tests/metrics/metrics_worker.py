"""A stand-in serving process for the multi-process tests: records known latencies into a shared metrics
directory, reports "flushed", holds one call in flight until stdin closes, then shuts down cleanly.

    python -m tests.metrics.metrics_worker SHARED_DIR LATENCIES.npy [--flush-interval 0.1]
"""

import argparse
import sys

import numpy as np

from server.metrics import ServingMetrics
from server.served_model import GateVerdict, ModelFacts, Precision


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shared_dir")
    parser.add_argument("latencies")
    parser.add_argument("--flush-interval", type=float, default=0.1)
    args = parser.parse_args()
    metrics = ServingMetrics(shared_dir=args.shared_dir, flush_interval_s=args.flush_interval)
    for value in np.load(args.latencies):
        metrics.observe_call("fraud", "Score", "OK", float(value), float(value) * 0.1, float(value) * 0.05)
    metrics.observe_batch("fraud", 8)
    metrics.count_rejected("fraud", "overload")
    metrics.set_queue_depth("fraud", 3)
    metrics.set_model_facts(
        ModelFacts(
            "fraud",
            "1",
            "fraud",
            Precision("int8"),
            GateVerdict("passed"),
            metric_deltas={"roc_auc_delta": -1e-4},
        )
    )
    metrics.set_ready(True)
    with metrics.inflight("fraud", "Score"):
        metrics.flush()
        print("flushed", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    metrics.close()


if __name__ == "__main__":
    main()

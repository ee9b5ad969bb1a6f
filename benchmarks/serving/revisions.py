"""This checkout's server against an earlier commit's, side by side in one run: unary Score p50/p99,
ScoreBatch(256) rows/s and server CPU per call, on the bundled fraud model (each server quantizes it with
its own code into its own cache).

    .venv/bin/python -m benchmarks.serving.revisions --base d29b9ea [--rounds 5] [--calls 2000]

The base commit is exported with `git archive` into a temporary folder and started with its own code and
bundled models; both servers get the same request bytes. Client and servers share the machine's cores.
"""

import argparse
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

from benchmarks.server_process import REPO, RiskServe
from benchmarks.serving.side_by_side import Target, compare, print_medians
from loadtest.feature_bodies import domain_messages
from loadtest.plan import RequestPool
from server.api.gen.riskserve.v1 import scoring_pb2
from server.config.model_config import load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.model_data import DataKind, read_model_data

SCORE = "/riskserve.v1.FraudScoring/Score"
SCORE_BATCH = "/riskserve.v1.FraudScoring/ScoreBatch"
BATCH_ROWS = 256
RESULTS = Path(__file__).with_name("results-revisions.json")


def export_commit(commit: str, into: Path) -> Path:
    """`git archive` of `commit` unpacked into `into`."""
    archive = into / "source.tar"
    subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), commit], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "source", filter="data")
    return into / "source"


def fraud_pools() -> tuple[RequestPool, RequestPool]:
    """Typed Transactions of the bundled fraud model's holdout (what every revision's server accepts)."""
    config = load_model_config(BUNDLED_MODELS_DIR / "fraud")
    messages = domain_messages(config, read_model_data(config, DataKind.HOLDOUT).head(BATCH_ROWS * 4))
    unary = RequestPool("fraud.score", SCORE, False, 1, tuple(m.SerializeToString() for m in messages))
    batches = tuple(
        scoring_pb2.TransactionBatch(transactions=messages[i : i + BATCH_ROWS]).SerializeToString()
        for i in range(0, len(messages), BATCH_ROWS)
    )
    return unary, RequestPool("fraud.score_batch", SCORE_BATCH, False, BATCH_ROWS, batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier commit to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="unary calls per server per round")
    parser.add_argument("--batch-seconds", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    unary, bulk = fraud_pools()
    with tempfile.TemporaryDirectory(prefix="riskserve-revisions-") as scratch:
        scratch_dir = Path(scratch)
        source = export_commit(args.base, scratch_dir)
        base = RiskServe(
            source_dir=source, cache_dir=scratch_dir / "cache-base", settings={"models": "fraud"}
        )
        head = RiskServe(cache_dir=scratch_dir / "cache-head", settings={"models": "fraud"})
        with base, head:
            targets = [
                Target(f"base {args.base[:9]}", base.target, base.pid, unary, bulk),
                Target("this checkout", head.target, head.pid, unary, bulk),
            ]
            result = compare(targets, args.rounds, args.calls, args.batch_seconds)
    old, new = (result["medians"][t.label] for t in targets)
    result["base"] = args.base
    result["ratios"] = {
        "unary_p50_new_over_base": new["p50_us"] / old["p50_us"],
        "unary_cpu_new_over_base": new["cpu_us_per_call"] / old["cpu_us_per_call"],
        "batch_rows_per_s_new_over_base": new["bulk_rows_per_s"] / old["bulk_rows_per_s"],
    }
    args.output.write_text(json.dumps(result, indent=2))
    print_medians(result)
    print(", ".join(f"{name} {value:.3f}x" for name, value in result["ratios"].items()))


if __name__ == "__main__":
    main()

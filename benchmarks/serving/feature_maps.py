"""The bundled fraud model fed through the domain API's feature maps instead of its typed fields, side by
side in one server and one run: unary Score p50 and ScoreBatch(256) rows/s, with server CPU per call.

    .venv/bin/python -m benchmarks.serving.feature_maps [--rounds 5] [--calls 2000] [--batch-seconds 3]

Two copies of the same model (same ONNX file, data and quantization) are served: `fraud` reads its typed
Transaction fields, `fraud_maps` reads every feature from `features` / `categorical_features`. Rounds
alternate between them; figures are medians over rounds. Client and server share the machine's cores.
"""

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import yaml

from benchmarks.server_process import RiskServe
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
RESULTS = Path(__file__).with_name("results-feature-maps.json")


def write_repository(root: Path) -> None:
    """`fraud` as bundled, and `fraud_maps`: the same files with every feature read from the maps."""
    shutil.copytree(BUNDLED_MODELS_DIR / "fraud", root / "fraud")
    shutil.copytree(BUNDLED_MODELS_DIR / "fraud", root / "fraud_maps")
    path = root / "fraud_maps" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["name"] = "fraud_maps"
    for spec in config["inputs"]:
        kind = "categorical_features" if spec["dtype"] == "string" else "features"
        spec["source"] = f"{kind}.{spec['name']}"
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _pools(root: Path, model: str) -> tuple[RequestPool, RequestPool]:
    config = load_model_config(root / model)
    frame = read_model_data(config, DataKind.HOLDOUT).head(BATCH_ROWS * 4)
    messages = domain_messages(config, frame)
    unary = RequestPool(f"{model}.score", SCORE, False, 1, tuple(m.SerializeToString() for m in messages))
    batches = tuple(
        scoring_pb2.TransactionBatch(
            model=model, transactions=messages[i : i + BATCH_ROWS]
        ).SerializeToString()
        for i in range(0, len(messages), BATCH_ROWS)
    )
    return unary, RequestPool(f"{model}.score_batch", SCORE_BATCH, False, BATCH_ROWS, batches)


def measure(rounds: int, calls: int, batch_seconds: float, cache_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="riskserve-feature-maps-") as scratch:
        root = Path(scratch) / "models"
        write_repository(root)
        with RiskServe(models_dir=root, cache_dir=cache_dir) as server:
            targets = [
                Target(model, server.target, server.pid, *_pools(root, model))
                for model in ("fraud", "fraud_maps")
            ]
            result = compare(targets, rounds, calls, batch_seconds)
    typed, maps = result["medians"]["fraud"], result["medians"]["fraud_maps"]
    result["ratios"] = {
        "unary_p50_maps_over_typed": maps["p50_us"] / typed["p50_us"],
        "unary_cpu_maps_over_typed": maps["cpu_us_per_call"] / typed["cpu_us_per_call"],
        "batch_rows_per_s_maps_over_typed": maps["bulk_rows_per_s"] / typed["bulk_rows_per_s"],
    }
    result["goals"] = {"unary_p50_ratio_max": 1.1, "batch_throughput_ratio_min": 0.9}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="unary calls per model per round")
    parser.add_argument(
        "--batch-seconds", type=float, default=3.0, help="ScoreBatch time per model per round"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "riskserve-bench-cache"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = measure(args.rounds, args.calls, args.batch_seconds, args.cache_dir)
    args.output.write_text(json.dumps(result, indent=2))
    print_medians(result)
    ratios = result["ratios"]
    print(
        f"maps / typed: unary p50 {ratios['unary_p50_maps_over_typed']:.3f}x (goal <= 1.1), CPU per call "
        f"{ratios['unary_cpu_maps_over_typed']:.3f}x, "
        f"ScoreBatch rows/s {ratios['batch_rows_per_s_maps_over_typed']:.3f}x (goal >= 0.9)"
    )


if __name__ == "__main__":
    main()

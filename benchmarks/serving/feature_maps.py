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
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import yaml

from benchmarks.reliability.process_stats import cpu_seconds
from benchmarks.server_process import RiskServe
from benchmarks.serving.sequential import run_sequential
from loadtest.feature_bodies import domain_messages
from loadtest.plan import RequestPool
from server.api.gen.riskserve.v1 import scoring_pb2
from server.config.model_config import load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.model_data import DataKind, read_model_data

SCORE = "/riskserve.v1.FraudScoring/Score"
SCORE_BATCH = "/riskserve.v1.FraudScoring/ScoreBatch"
BATCH_ROWS = 256
WARMUP_CALLS = 300
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


def _batch_rate(target: str, pool: RequestPool, seconds: float) -> tuple[float, int]:
    """(rows/s, calls) of back-to-back ScoreBatch calls for `seconds`."""
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(pool.method_path, request_serializer=None, response_deserializer=None)
        for body in pool.bodies:
            stub(body, timeout=10)  # warm
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            stub(pool.bodies[calls % len(pool.bodies)], timeout=10)
            calls += 1
        return calls * pool.rows_per_request / (time.perf_counter() - started), calls


def measure(rounds: int, calls: int, batch_seconds: float, cache_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="riskserve-feature-maps-") as scratch:
        root = Path(scratch) / "models"
        write_repository(root)
        pools = {model: _pools(root, model) for model in ("fraud", "fraud_maps")}
        with RiskServe(models_dir=root, cache_dir=cache_dir) as server:
            figures: dict[str, dict[str, list[float]]] = {
                m: {"p50_us": [], "p99_us": [], "cpu_us_per_call": [], "batch_rows_per_s": []} for m in pools
            }
            for round_index in range(rounds):
                order = list(pools) if round_index % 2 == 0 else list(reversed(pools))
                for model in order:
                    unary, batch = pools[model]
                    cpu = cpu_seconds(server.pid)
                    latency = run_sequential(server.target, unary, calls, warmup_calls=WARMUP_CALLS)
                    served = calls + WARMUP_CALLS
                    figures[model]["cpu_us_per_call"].append((cpu_seconds(server.pid) - cpu) / served * 1e6)
                    figures[model]["p50_us"].append(latency.p50_us)
                    figures[model]["p99_us"].append(latency.p99_us)
                    figures[model]["batch_rows_per_s"].append(
                        _batch_rate(server.target, batch, batch_seconds)[0]
                    )
    medians = {m: {k: statistics.median(v) for k, v in f.items()} for m, f in figures.items()}
    typed, maps = medians["fraud"], medians["fraud_maps"]
    return {
        "rounds": rounds,
        "calls_per_round": calls,
        "batch_seconds": batch_seconds,
        "note": "client and server on the same 2 shared cores; medians over rounds",
        "medians": medians,
        "per_round": figures,
        "ratios": {
            "unary_p50_maps_over_typed": maps["p50_us"] / typed["p50_us"],
            "unary_cpu_maps_over_typed": maps["cpu_us_per_call"] / typed["cpu_us_per_call"],
            "batch_rows_per_s_maps_over_typed": maps["batch_rows_per_s"] / typed["batch_rows_per_s"],
        },
        "goals": {"unary_p50_ratio_max": 1.1, "batch_throughput_ratio_min": 0.9},
    }


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
    for model, figures in result["medians"].items():
        print(
            f"{model:11s} unary p50 {figures['p50_us']:7.0f} us  p99 {figures['p99_us']:7.0f} us  "
            f"server CPU {figures['cpu_us_per_call']:5.0f} us/call  "
            f"ScoreBatch(256) {figures['batch_rows_per_s']:9.0f} rows/s"
        )
    ratios = result["ratios"]
    print(
        f"maps / typed: unary p50 {ratios['unary_p50_maps_over_typed']:.3f}x (goal <= 1.1), CPU per call "
        f"{ratios['unary_cpu_maps_over_typed']:.3f}x, "
        f"ScoreBatch rows/s {ratios['batch_rows_per_s_maps_over_typed']:.3f}x (goal >= 0.9)"
    )


if __name__ == "__main__":
    main()

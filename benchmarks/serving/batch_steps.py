"""CPU per row of each step of a 256-row `ScoreBatch` on the loop thread, in-process, on the bundled fraud
model: request parse, column reading, validation, the ONNX Runtime run, decisions and the serialized
answer, each timed alone over many iterations (`time.process_time_ns`; medians of repeats), and, for
comparison, the per-message answer it replaced (built, then serialized) and the ORT-inline floor's answer
(benchmarks/serving/ort_floor_server.py: a FraudScore of transaction_id and probability per row).

    .venv/bin/python -m benchmarks.serving.batch_steps [--rows 256] [--iterations 200] [--repeats 5]

The steps are the ones `FraudScoringServicer.ScoreBatch` runs, called one by one on a started runtime
(no gRPC traffic): what each costs, not what the transport adds around them. Steps are timed in turn,
round after round, so a neighbour's burst on shared cores spreads over all of them.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.reliability.payloads import holdout_transactions
from server.api import domain_api
from server.api.gen.riskserve.v1 import scoring_pb2
from server.app.serving import RiskServer
from server.config.settings import ServerSettings
from server.runtime.prediction import decide_rows

REFERENCE = "(per-message answer + SerializeToString)"
FLOOR = "(the floor's 2-field answer + serialize)"


def _cpu_us(step: Callable[[], object], iterations: int) -> float:
    """CPU µs per call of `step` over `iterations` calls."""
    started = time.process_time_ns()
    for _ in range(iterations):
        step()
    return (time.process_time_ns() - started) / iterations / 1e3


def steps(server: RiskServer, rows: int) -> tuple[dict[str, Callable[[], object]], dict[str, Callable]]:
    """Each step of one ScoreBatch of `rows` holdout transactions, as a no-argument callable; and the
    answers to compare the serialized one with (the messages it replaced, the floor's)."""
    runtime = server.repository.get("fraud")
    served = domain_api._FraudModel(runtime)
    reader, namer = served.reader, served.reader.batch_namer
    raw = scoring_pb2.TransactionBatch(transactions=holdout_transactions(rows, seed=0)).SerializeToString()
    request = scoring_pb2.TransactionBatch.FromString(raw)
    transactions = request.transactions
    columns, ids = reader.columns_and_ids(transactions, namer)
    feeds = runtime.schema.validate(columns, rows, namer)
    outputs, _, _ = runtime.batcher._timed_run(feeds, rows)
    probabilities, scores, decisions = decide_rows(runtime.config, outputs, runtime.positive_column)
    prediction = domain_api.Prediction(outputs, probabilities, scores, decisions, None, 0.0, 0.0)

    def messages() -> bytes:
        answer = scoring_pb2.FraudScoreBatch()
        domain_api.fraud_scores(transactions, prediction, served.answer, 1234, answer.scores)
        return answer.SerializeToString()

    def serialized() -> bytes | None:
        return served.batch_answer.serialize(ids, probabilities, scores, decisions, 1234)

    def floor() -> bytes:
        return scoring_pb2.FraudScoreBatch(
            scores=[
                scoring_pb2.FraudScore(transaction_id=t.transaction_id, probability=p)
                for t, p in zip(transactions, probabilities, strict=True)
            ]
        ).SerializeToString()

    assert serialized() == messages()
    return {
        "parse (TransactionBatch.FromString)": lambda: scoring_pb2.TransactionBatch.FromString(raw),
        "columns + ids (columns_and_ids)": lambda: reader.columns_and_ids(transactions, namer),
        "validation (FeatureSchema.validate)": lambda: runtime.schema.validate(columns, rows, namer),
        "ONNX Runtime run": lambda: runtime.batcher._timed_run(feeds, rows),
        "decisions (decide_rows)": lambda: decide_rows(runtime.config, outputs, runtime.positive_column),
        "answer bytes (FraudBatchAnswer)": serialized,
    }, {REFERENCE: messages, FLOOR: floor}


async def _measure(args: argparse.Namespace) -> dict[str, float]:
    settings = ServerSettings(host="127.0.0.1", port=0, metrics_port=0, cache_dir=args.cache_dir)
    server = RiskServer(settings)
    await server.start()
    await server.wait_ready()
    try:
        timed, references = steps(server, args.rows)
        timed.update(references)
        rounds = [{n: _cpu_us(s, args.iterations) for n, s in timed.items()} for _ in range(args.repeats)]
        return {name: statistics.median(r[name] for r in rounds) for name in timed}
    finally:
        await server.stop()
        server.metrics.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "riskserve-steps-cache"
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(_measure(args))
    references = {name: figures.pop(name) for name in (REFERENCE, FLOOR)}
    total = sum(figures.values())
    print(f"{'step':40} {'µs/call':>9} {'ns/row':>8} {'share':>6}")
    for name, us in figures.items():
        print(f"{name:40} {us:9.1f} {us * 1e3 / args.rows:8.0f} {us / total:6.1%}")
    print(f"{'total':40} {total:9.1f} {total * 1e3 / args.rows:8.0f}")
    for name, us in references.items():
        print(f"{name:40} {us:9.1f} {us * 1e3 / args.rows:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

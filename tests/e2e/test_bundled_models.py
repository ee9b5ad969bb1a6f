"""The product path: the bundled models quantized to INT8 at startup, gated, and served."""

import grpc
import pandas as pd
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.cli.score_cmd import build_request
from server.config.paths import BUNDLED_MODELS_DIR


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    if not all((BUNDLED_MODELS_DIR / m / "config.yaml").is_file() for m in ("fraud", "credit")):
        pytest.skip("bundled models not built")
    from tests.e2e.conftest import ServerThread, test_settings

    running = ServerThread(test_settings(BUNDLED_MODELS_DIR, tmp_path_factory.mktemp("bundled-cache")))
    try:
        yield running.wait_ready()
    finally:
        running.close()


def _args(task: str, seed: int):
    import argparse

    return argparse.Namespace(
        task=task, json_file=None, random_holdout_row=True, field=[], model="", seed=seed
    )


def test_bundled_models_serve_int8_within_their_gate(bundled):
    with grpc.insecure_channel(bundled.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        credit = scoring_pb2_grpc.CreditScoringStub(channel)
        scores = [
            fraud.Score(build_request(_args("fraud", seed), BUNDLED_MODELS_DIR), timeout=5)
            for seed in range(5)
        ]
        assessment = credit.Assess(build_request(_args("credit", 1), BUNDLED_MODELS_DIR), timeout=5)
    for answer in (*scores, assessment):
        assert answer.model.precision == "int8"
        assert answer.model.gate_verdict in ("passed", "passed_with_fallback")
    assert all(0 <= s.risk_score <= 999 for s in scores)


def test_bundled_fraud_batch_ranks_holdout_fraud_above_legit(bundled):
    holdout = pd.read_parquet(BUNDLED_MODELS_DIR / "fraud" / "holdout.parquet")
    sample = pd.concat([holdout[holdout.is_fraud == 1].head(50), holdout[holdout.is_fraud == 0].head(200)])
    batch = scoring_pb2.TransactionBatch()
    for row in sample.to_dict("records"):
        message = batch.transactions.add(
            transaction_id=row["transaction_id"],
            amount=row["amount"],
            timestamp=int(row["timestamp"]),
            **{
                k: row[k]
                for k in ("currency", "mcc", "card_country", "merchant_country", "channel", "entry_mode")
            },
        )
        for name in scoring_pb2.BehaviourAggregates.DESCRIPTOR.fields_by_name:
            setattr(message.behaviour, name, type(getattr(message.behaviour, name))(row[name]))
    with grpc.insecure_channel(bundled.target) as channel:
        answer = scoring_pb2_grpc.FraudScoringStub(channel).ScoreBatch(batch, timeout=10)
    assert [s.transaction_id for s in answer.scores] == sample.transaction_id.tolist()
    probability = pd.Series([s.probability for s in answer.scores], index=sample.index)
    # a working fraud model: the median fraud scores above the median legit transaction
    assert probability[sample.is_fraud == 1].median() > probability[sample.is_fraud == 0].median()

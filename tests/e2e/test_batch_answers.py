"""ScoreBatch's per-transaction answers through a real server, field for field against Score's: the
answers serialized straight from the columns (server/api/fraud_answers.py) and the messages built when the
ids do not suit that (one very long id) say the same, on our fraud model and on models built here."""

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from tests.e2e.any_models import SEGMENTS, write_mixed_model, write_torch_style_model
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.requests import risky_transaction, transaction

SCORE_BATCH = "/riskserve.v1.FraudScoring/ScoreBatch"
IDS = ["t-1", "", "é-交易-🙂", "x" * 130, "t\x00nul", "t-6", "", "t-8"]


@pytest.fixture(scope="module")
def own_models(tmp_path_factory) -> ServerThread:
    """A server of models unlike ours: map-fed inputs of every dtype with a categorical one (`mixed`),
    every feature from `features` (`torchy`: no typed field to read the id with)."""
    root = tmp_path_factory.mktemp("batch-answers")
    write_mixed_model(root / "models" / "mixed")
    write_torch_style_model(root / "models" / "torchy")
    running = ServerThread(test_settings(root / "models", root / "cache")).wait_ready()
    yield running
    running.close()


def _fraud(i: int, transaction_id: str) -> scoring_pb2.Transaction:
    if i % 3 == 0:
        return risky_transaction(transaction_id)
    return transaction(transaction_id, amount=3.0 + 41 * i)


def _mixed(i: int, transaction_id: str) -> scoring_pb2.Transaction:
    return scoring_pb2.Transaction(
        transaction_id=transaction_id,
        model="mixed",
        amount=20.0 + 97 * i,
        features={"bureau_score": -2.0 + 0.6 * i, "n_prior": float(i % 5), "vip": float(i % 2)},
        categorical_features={"segment": SEGMENTS[i % len(SEGMENTS)]},
    )


def _torchy(i: int, transaction_id: str) -> scoring_pb2.Transaction:
    features = {"v1": -1.5 + 0.5 * i, "v2": 0.1 * i, "v3": 1.0 - 0.2 * i}
    return scoring_pb2.Transaction(transaction_id=transaction_id, model="torchy", features=features)


def _without_latency(answer: scoring_pb2.FraudScore) -> scoring_pb2.FraudScore:
    copy = scoring_pb2.FraudScore()
    copy.CopyFrom(answer)
    copy.ClearField("server_latency_us")
    return copy


def _check_batch(channel: grpc.Channel, transactions: list[scoring_pb2.Transaction], model: str) -> None:
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    request = scoring_pb2.TransactionBatch(model=model, transactions=transactions)
    raw = channel.unary_unary(SCORE_BATCH, request_serializer=scoring_pb2.TransactionBatch.SerializeToString)(
        request, timeout=10
    )
    batch = scoring_pb2.FraudScoreBatch.FromString(raw)
    assert raw == batch.SerializeToString()  # the bytes protobuf itself would write
    assert len(batch.scores) == len(transactions)
    assert {s.server_latency_us for s in batch.scores} != {0}
    singles = [_without_latency(fraud.Score(t, timeout=5)) for t in transactions]
    assert [_without_latency(s) for s in batch.scores] == singles  # every field, bit for bit
    request.answer_layout = scoring_pb2.COLUMNS
    columns = fraud.ScoreBatch(request, timeout=10)
    assert list(columns.transaction_ids) == [s.transaction_id for s in singles]
    assert list(columns.probabilities) == [s.probability for s in singles]
    assert list(columns.risk_scores) == [s.risk_score for s in singles]
    assert list(columns.decisions) == [s.decision for s in singles]
    assert columns.model == singles[0].model


@pytest.mark.parametrize("ids", [IDS, [*IDS, "long" * 1000]], ids=["serialized", "one-long-id-messages"])
def test_our_fraud_model_answers_each_transaction_as_score_does(channel, ids):
    transactions = [_fraud(i, transaction_id) for i, transaction_id in enumerate(ids)]
    answers = scoring_pb2_grpc.FraudScoringStub(channel).ScoreBatch(
        scoring_pb2.TransactionBatch(transactions=transactions), timeout=10
    )
    assert {s.decision for s in answers.scores} >= {scoring_pb2.APPROVE, scoring_pb2.DECLINE}
    _check_batch(channel, transactions, "")


@pytest.mark.parametrize("build, model", [(_mixed, "mixed"), (_torchy, "torchy")], ids=["mixed", "torchy"])
def test_models_built_here_answer_each_transaction_as_score_does(own_models, build, model):
    with grpc.insecure_channel(own_models.target) as channel:
        _check_batch(channel, [build(i, transaction_id) for i, transaction_id in enumerate(IDS)], model)

"""ScoreStream scores the messages that arrived together as one batch: the answers are those unary Score
gives, in order, and a bad message still ends the stream naming it, after the answers before it."""

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.requests import risky_transaction, transaction


def _plain(answer) -> tuple:
    return (answer.transaction_id, answer.probability, answer.risk_score, answer.decision, answer.model)


def _many(count: int) -> list:
    return [
        risky_transaction(f"r-{i}") if i % 3 == 0 else transaction(f"t-{i}", amount=10.0 + i)
        for i in range(count)
    ]


def test_streamed_answers_equal_unary_answers_in_order(channel):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    sent = _many(600)  # more than the window: the server holds several groups
    streamed = list(fraud.ScoreStream(iter(sent), timeout=30))
    unary = [fraud.Score(t, timeout=5) for t in sent]
    assert [_plain(a) for a in streamed] == [_plain(a) for a in unary]


def test_a_bad_message_in_a_group_ends_the_stream_after_the_answers_before_it(channel):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    sent = _many(300)
    sent[250] = transaction("bad-250", amount=float("nan"))
    answers = []
    with pytest.raises(grpc.RpcError) as error:
        for answer in fraud.ScoreStream(iter(sent), timeout=30):
            answers.append(answer.transaction_id)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "stream message 250 (transaction_id 'bad-250'): amount" in error.value.details()
    assert answers == [t.transaction_id for t in sent[:250]]


def test_score_batch_in_columns_equals_one_score_per_transaction(channel):
    """answer_layout COLUMNS: the same scores, as parallel packed arrays."""
    from server.api.gen.riskserve.v1 import scoring_pb2

    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    sent = _many(100)
    rows = fraud.ScoreBatch(scoring_pb2.TransactionBatch(transactions=sent), timeout=10).scores
    packed = fraud.ScoreBatch(
        scoring_pb2.TransactionBatch(transactions=sent, answer_layout=scoring_pb2.COLUMNS), timeout=10
    )
    assert not packed.scores
    assert list(packed.transaction_ids) == [a.transaction_id for a in rows]
    assert list(packed.probabilities) == [a.probability for a in rows]
    assert list(packed.risk_scores) == [a.risk_score for a in rows]
    assert list(packed.decisions) == [a.decision for a in rows]
    assert packed.model == rows[0].model and packed.server_latency_us > 0
    bad = list(sent)
    bad[7] = transaction("bad", currency="XXX")
    with pytest.raises(grpc.RpcError) as error:
        fraud.ScoreBatch(scoring_pb2.TransactionBatch(transactions=bad, answer_layout=scoring_pb2.COLUMNS))
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "transactions[7].currency" in error.value.details()

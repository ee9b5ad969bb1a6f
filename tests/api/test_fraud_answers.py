"""ScoreBatch's serialized per-transaction answer against the messages it replaces: the same bytes, the
same message, for every kind of id and value; what the tables cannot write is left to the messages."""

import numpy as np
import pytest

from server.api.domain_api import fraud_scores
from server.api.fraud_answers import FraudBatchAnswer, check_layout
from server.api.gen.riskserve.v1 import scoring_pb2
from server.runtime.prediction import Prediction

FULL_REF = scoring_pb2.ModelRef(name="fraud", version="2024.06.1", precision="int8", gate_verdict="passed")
EMPTY_REF = scoring_pb2.ModelRef()


def _messages(
    ids: list[str], probabilities: list[float], risks: list[int], decisions: list[int], latency_us: int, ref
) -> scoring_pb2.FraudScoreBatch:
    """The answer as the message builder makes it (fraud_scores, what Score and ScoreStream use)."""
    transactions = [scoring_pb2.Transaction(transaction_id=i) for i in ids]
    prediction = Prediction(np.zeros((len(ids), 2)), probabilities, risks, decisions, None, 0.0, 0.0)
    answer = scoring_pb2.FraudScoreBatch()
    fraud_scores(transactions, prediction, scoring_pb2.FraudScore(model=ref), latency_us, answer.scores)
    return answer


def _assert_same(ids, probabilities, risks, decisions, latency_us=1234, ref=FULL_REF) -> None:
    expected = _messages(ids, probabilities, risks, decisions, latency_us, ref)
    serialized = FraudBatchAnswer(ref).serialize(ids, probabilities, risks, decisions, latency_us)
    assert serialized is not None
    assert scoring_pb2.FraudScoreBatch.FromString(serialized) == expected
    assert serialized == expected.SerializeToString()


def _columns(rows: int, seed: int) -> tuple[list[float], list[int], list[int]]:
    rng = np.random.default_rng(seed)
    probabilities = (rng.random(rows) ** 8).tolist()
    return probabilities, rng.integers(0, 1000, rows).tolist(), rng.integers(1, 4, rows).tolist()


@pytest.mark.parametrize(
    "ids",
    [
        [f"t-{i:06d}" for i in range(256)],  # one length: the matrix is the ids as they are
        ["", "a", "", "bc", "é", "中文交易", "🙂x", "t\x00z", "plain-ascii-id"],  # empty, unicode, odd
        ["x" * 126, "y" * 127, "z" * 128, "w" * 300, "v"],  # 2-byte id lengths, 2-byte answer lengths
        [""] * 5,  # no id at all
    ],
    ids=["uniform", "unicode-and-empty", "long", "all-empty"],
)
def test_ids_of_every_kind_give_the_messages_bytes(ids):
    probabilities, risks, decisions = _columns(len(ids), seed=len(ids))
    _assert_same(ids, probabilities, risks, decisions)


def test_every_decision_and_risk_score_width_and_probability_edge():
    risks = [0, 1, 127, 128, 999, 16383]
    probabilities = [0.0, -0.0, 5e-324, 1e-6, 0.5, 1.0, 0.123456789012345]
    rows = [(p, r, d) for p in probabilities for r in risks for d in range(4)]
    ids = [f"id-{i}" for i in range(len(rows))]
    _assert_same(ids, *map(list, zip(*rows, strict=True)))


@pytest.mark.parametrize("latency_us", [0, 1, 127, 128, 16384, 2**40])
@pytest.mark.parametrize("ref", [FULL_REF, EMPTY_REF], ids=["model", "empty-model"])
def test_latency_and_model_ref_as_the_messages_write_them(latency_us, ref):
    probabilities, risks, decisions = _columns(4, seed=3)
    _assert_same(["a", "bb", "", "dddd"], probabilities, risks, decisions, latency_us, ref)


def test_random_batches_give_the_messages_bytes():
    rng = np.random.default_rng(7)
    alphabet = np.array(list("abcXYZ019-_éü中🙂"))
    for seed in range(40):
        rows = int(rng.integers(1, 300))
        lengths = rng.integers(0, 40, rows)
        ids = ["".join(rng.choice(alphabet, n)) for n in lengths]
        probabilities, risks, decisions = _columns(rows, seed)
        _assert_same(ids, probabilities, risks, decisions, int(rng.integers(0, 10**6)))


@pytest.mark.parametrize(
    "ids, risks, decisions",
    [
        (["x" * 16384], [500], [2]),  # an id length of 3 varint bytes
        (["ok"], [-1], [2]),  # a negative int32 is 10 varint bytes
        (["ok"], [16384], [2]),
        (["ok"], [500], [4]),  # not a Decision value
        (["x" * 2000] + ["s"] * 255, [500] * 256, [2] * 256),  # one long id: padding would dwarf the ids
    ],
    ids=["long-id", "negative-score", "large-score", "unknown-decision", "one-long-id"],
)
def test_what_the_tables_cannot_write_is_left_to_the_messages(ids, risks, decisions):
    probabilities = [0.25] * len(ids)
    assert FraudBatchAnswer(FULL_REF).serialize(ids, probabilities, risks, decisions, 10) is None


def test_a_changed_answer_message_fails_the_layout_check():
    check_layout(scoring_pb2.FraudScore.DESCRIPTOR)
    for other in (scoring_pb2.CreditAssessment, scoring_pb2.FraudScoreBatch, scoring_pb2.Transaction):
        with pytest.raises(RuntimeError, match="fraud_answers writes"):
            check_layout(other.DESCRIPTOR)

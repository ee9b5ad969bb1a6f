"""The domain API through a real server: what a fraud or credit client sees."""

import math

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.config.model_config import load_model_config
from tests.e2e.requests import application, risky_transaction, transaction


@pytest.fixture()
def fraud(channel):
    return scoring_pb2_grpc.FraudScoringStub(channel)


@pytest.fixture()
def credit(channel):
    return scoring_pb2_grpc.CreditScoringStub(channel)


def _expected_decision(probability: float, review: float, decline: float) -> int:
    if probability >= decline:
        return scoring_pb2.DECLINE
    return scoring_pb2.REVIEW if probability >= review else scoring_pb2.APPROVE


def test_score_answers_probability_risk_score_decision_and_model(fraud, model_repo):
    config = load_model_config(model_repo / "fraud")
    answers = [fraud.Score(t, timeout=5) for t in (transaction("t-low"), risky_transaction("t-high"))]
    for answer in answers:
        assert 0.0 <= answer.probability <= 1.0
        expected_score = round(999 * (math.log10(max(answer.probability, 1e-6)) + 6) / 6)
        assert answer.risk_score == expected_score
        assert answer.decision == _expected_decision(
            answer.probability, config.decision.review, config.decision.decline
        )
        assert (answer.model.name, answer.model.version) == ("fraud", config.version)
        assert (answer.model.precision, answer.model.gate_verdict) == ("fp32", "disabled")
        assert answer.server_latency_us > 0
    assert [a.transaction_id for a in answers] == ["t-low", "t-high"]
    assert answers[1].probability > answers[0].probability  # the test model's fraud pattern is learned


def test_score_batch_keeps_order_and_ids_and_matches_single_scores(fraud):
    transactions = [
        risky_transaction(f"id-{i}") if i % 3 == 0 else transaction(f"id-{i}", amount=10.0 + 7 * i)
        for i in range(40)
    ]
    batch = fraud.ScoreBatch(scoring_pb2.TransactionBatch(transactions=transactions), timeout=5)
    assert [s.transaction_id for s in batch.scores] == [t.transaction_id for t in transactions]
    singles = [fraud.Score(t, timeout=5).probability for t in transactions[:8]]
    # batch invariance: a row's score does not depend on its batch mates
    assert [s.probability for s in batch.scores[:8]] == singles  # bit for bit


def test_score_stream_answers_each_transaction_in_order(fraud):
    transactions = [transaction(f"s-{i}", amount=5.0 + i) for i in range(30)]
    answers = list(fraud.ScoreStream(iter(transactions), timeout=10))
    assert [a.transaction_id for a in answers] == [t.transaction_id for t in transactions]
    assert all(a.model.name == "fraud" for a in answers)


def test_assess_gives_scorecard_points_and_reasons_most_important_first(credit, model_repo):
    config = load_model_config(model_repo / "credit")
    risky = application(
        "a-risky",
        debt_to_income=0.75,
        revolving_utilization=1.15,
        delinquencies_2y=3,
        inquiries_6m=5,
        credit_history_months=12,
    )
    answer = credit.Assess(risky, timeout=5)
    card = config.scorecard
    factor = card.points_to_double_odds / math.log(2)
    pd_ = answer.probability_of_default
    assert answer.score == round(
        card.base_score - factor * math.log(card.base_odds) + factor * math.log((1 - pd_) / pd_)
    )
    assert answer.decision == _expected_decision(pd_, config.decision.review, config.decision.decline)
    assert 1 <= len(answer.reasons) <= 4
    contributions = [r.contribution for r in answer.reasons]
    assert contributions == sorted(contributions, reverse=True) and min(contributions) > 0
    assert {r.feature for r in answer.reasons} & {
        "debt_to_income",
        "revolving_utilization",
        "delinquencies_2y",
    }
    assert all(r.code == "RC_" + r.feature.upper() and r.description for r in answer.reasons)
    assert answer.model.name == "credit" and answer.application_id == "a-risky"


def test_safer_application_scores_more_points(credit):
    safe = credit.Assess(application("a-safe", debt_to_income=0.05, revolving_utilization=0.05), timeout=5)
    risky = credit.Assess(application("a-risky", debt_to_income=0.75, revolving_utilization=1.15), timeout=5)
    assert safe.probability_of_default < risky.probability_of_default
    assert safe.score > risky.score


def test_unknown_model_is_not_found(fraud, credit):
    with pytest.raises(grpc.RpcError) as error:
        fraud.Score(transaction(model="no-such-model"), timeout=5)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:  # a credit model is not a fraud model
        fraud.Score(transaction(model="credit"), timeout=5)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as error:
        credit.Assess(application(model="fraud"), timeout=5)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND

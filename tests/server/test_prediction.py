"""Risk score, scorecard points and decisions from probabilities."""

import numpy as np

from server.config.model_config import DecisionConfig, ScorecardConfig
from server.runtime.prediction import Decision, decide, fraud_risk_scores, scorecard_points


def test_risk_score_is_monotone_and_spans_0_to_999():
    p = np.concatenate([[0.0, 1e-9, 1e-6], np.logspace(-6, 0, 2000), [1.0]])
    scores = fraud_risk_scores(p)
    assert scores.min() == 0 and scores.max() == 999
    assert (np.diff(scores[2:]) >= 0).all()
    assert fraud_risk_scores(np.array([1e-3, 1e-2, 0.1])).tolist() == [500, 666, 832]
    # resolution where card fraud lives: 0.1 % and 0.2 % differ by tens of points
    assert np.diff(fraud_risk_scores(np.array([0.001, 0.002])))[0] >= 40


def test_scorecard_points_follow_points_to_double_odds():
    card = ScorecardConfig(base_score=600, base_odds=50, points_to_double_odds=20)
    at_base = 1 / 51  # odds 50:1
    at_double = 1 / 101  # odds 100:1
    assert scorecard_points(np.array([at_base, at_double]), card).tolist() == [600, 620]
    assert np.isfinite(scorecard_points(np.array([0.0, 1.0]), card)).all()


def test_decisions_use_config_thresholds_inclusively():
    thresholds = DecisionConfig(review=0.2, decline=0.5)
    got = decide(np.array([0.0, 0.1999, 0.2, 0.4999, 0.5, 1.0]), thresholds)
    assert got.tolist() == [Decision.APPROVE] * 2 + [Decision.REVIEW] * 2 + [Decision.DECLINE] * 2

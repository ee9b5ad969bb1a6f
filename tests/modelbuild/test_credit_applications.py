"""The credit-application generator: default rate, determinism, ranges, non-linear ground truth."""

import numpy as np
import pandas as pd
import pytest

from modelbuild.credit_applications import (
    CREDIT_COLUMNS,
    CreditApplicationConfig,
    generate_applications,
)
from modelbuild.errors import GeneratorConfigError

ROWS = 20_000


@pytest.fixture(scope="module")
def applications() -> pd.DataFrame:
    return generate_applications(CreditApplicationConfig(rows=ROWS, seed=2))


@pytest.mark.parametrize("rate", [0.08, 0.12, 0.2])
def test_default_rate_matches_the_config(rate):
    frame = generate_applications(CreditApplicationConfig(rows=ROWS, default_rate=rate, seed=1))
    tolerance = 4 * np.sqrt(rate * (1 - rate) / ROWS)
    assert frame["is_default"].mean() == pytest.approx(rate, abs=tolerance)


def test_default_rate_is_within_the_realistic_band():
    assert 0.08 <= CreditApplicationConfig().default_rate <= 0.2


def test_same_seed_same_frame_other_seed_differs(applications):
    again = generate_applications(CreditApplicationConfig(rows=ROWS, seed=2))
    pd.testing.assert_frame_equal(applications, again)
    other = generate_applications(CreditApplicationConfig(rows=ROWS, seed=9))
    assert not applications["annual_income"].equals(other["annual_income"])


def test_columns_and_ranges(applications):
    assert tuple(applications.columns) == CREDIT_COLUMNS
    assert applications["application_id"].is_unique
    assert set(applications["term_months"]) == {36.0, 60.0}
    assert applications["revolving_utilization"].between(0, 1.2).all()
    assert applications["debt_to_income"].between(0, 0.65).all()
    assert (applications["annual_income"] >= 12_000).all()
    assert applications["loan_amount"].between(1_000, 40_000).all()


def test_ground_truth_has_thresholds_not_just_slopes(applications):
    """Default jumps across the 90 % utilization threshold far more than across an equal step below it."""
    util = applications["revolving_utilization"]
    rate = applications.groupby(pd.cut(util, [0.7, 0.8, 0.9, 1.0]), observed=True)["is_default"].mean()
    below_step = rate.iloc[1] - rate.iloc[0]
    threshold_step = rate.iloc[2] - rate.iloc[1]
    assert threshold_step > 2 * below_step


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"default_rate": 0.0}, "default_rate"), ({"rows": 5}, "rows"), ({"unobserved_noise": -1}, "noise")],
)
def test_bad_settings_are_rejected(settings, field):
    with pytest.raises(GeneratorConfigError, match=field):
        CreditApplicationConfig(**settings)

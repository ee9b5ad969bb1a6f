"""The card-transaction generator: rates, scenario mix, determinism, aggregates consistent with history."""

import numpy as np
import pandas as pd
import pytest

from modelbuild.errors import GeneratorConfigError
from modelbuild.fraud_scenarios import SCENARIOS
from modelbuild.transaction_stream import (
    STREAM_START,
    TRANSACTION_COLUMNS,
    TransactionStreamConfig,
    generate_transactions,
)

ROWS = 20_000


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    return generate_transactions(TransactionStreamConfig(rows=ROWS, fraud_rate=0.01, seed=3))


def test_fraud_rate_and_scenario_mix_match_the_config():
    mix = {"card_testing": 0.1, "account_takeover": 0.4, "high_risk_mcc_night": 0.2, "velocity_spike": 0.3}
    config = TransactionStreamConfig(rows=ROWS, fraud_rate=0.008, scenario_mix=mix, seed=5)
    frame = generate_transactions(config)

    assert len(frame) == ROWS
    assert frame["is_fraud"].mean() == pytest.approx(0.008, abs=1 / ROWS)
    fraud = frame[frame["is_fraud"] == 1]
    shares = fraud["fraud_scenario"].value_counts(normalize=True)
    for scenario, share in mix.items():
        assert shares[scenario] == pytest.approx(share, abs=0.01), scenario
    assert set(frame.loc[frame["is_fraud"] == 0, "fraud_scenario"]) == {"legit"}


def test_default_fraud_rate_is_within_the_realistic_band():
    config = TransactionStreamConfig()
    assert 0.002 <= config.fraud_rate <= 0.01
    assert set(config.scenario_mix) == set(SCENARIOS)


def test_same_seed_gives_the_same_frame_and_another_seed_does_not(stream):
    again = generate_transactions(TransactionStreamConfig(rows=ROWS, fraud_rate=0.01, seed=3))
    pd.testing.assert_frame_equal(stream, again)
    other = generate_transactions(TransactionStreamConfig(rows=ROWS, fraud_rate=0.01, seed=4))
    assert not stream["amount"].equals(other["amount"])


def test_columns_ids_and_types(stream):
    assert tuple(stream.columns) == TRANSACTION_COLUMNS
    assert stream["card_id"].str.fullmatch(r"card_\d{6}").all()  # tokens, never a card number
    assert stream["transaction_id"].is_unique
    assert stream["timestamp"].is_monotonic_increasing
    utc_hour = (stream["timestamp"] // 3600) % 24
    np.testing.assert_array_equal(stream["hour_of_day"].to_numpy(), utc_hour.to_numpy(np.float32))
    for flag in ("is_new_merchant", "is_new_device"):
        assert set(np.unique(stream[flag])) <= {0.0, 1.0}
    assert (stream["amount"] > 0).all()


def test_amounts_are_heavy_tailed_and_depend_on_the_category(stream):
    legit = stream[stream["is_fraud"] == 0]
    assert legit["amount"].mean() > 1.3 * legit["amount"].median()  # right-skewed
    medians = legit.groupby("mcc")["amount"].median()
    assert medians["4511"] > 10 * medians["4111"]  # airline tickets vs transit fares


def test_aggregates_match_the_cards_own_history(stream):
    """Recompute the windows from the frame itself, for rows whose 24 h window lies inside the stream."""
    checked = 0
    for _, card in stream.groupby("card_id"):
        t = card["timestamp"].to_numpy()
        amount = card["amount"].to_numpy(np.float64)
        for i in range(len(card)):
            if t[i] < STREAM_START + 86_400 or (t == t[i]).sum() > 1:
                continue
            in_24h = (t >= t[i] - 86_400) & (t < t[i])
            in_1h = (t >= t[i] - 3_600) & (t < t[i])
            row = card.iloc[i]
            assert row["txn_count_24h"] == in_24h.sum()
            assert row["txn_count_1h"] == in_1h.sum()
            assert row["amount_sum_24h"] == pytest.approx(amount[in_24h].sum(), rel=1e-4, abs=0.05)
            if i > 0:
                assert row["seconds_since_last_txn"] == t[i] - t[i - 1]
            if (card["merchant_id"].iloc[:i] == row["merchant_id"]).any():
                assert row["is_new_merchant"] == 0.0
            checked += 1
        if checked > 2_000:
            break
    assert checked > 1_000


def test_scenarios_carry_their_signature(stream):
    fraud = stream[stream["is_fraud"] == 1]
    legit = stream[stream["is_fraud"] == 0]
    testing = fraud[fraud["fraud_scenario"] == "card_testing"]
    assert (testing["channel"] == "ecommerce").all()
    assert testing["amount"].median() < 5.0
    velocity = fraud[fraud["fraud_scenario"] == "velocity_spike"]
    assert velocity["txn_count_1h"].mean() > 3 * legit["txn_count_1h"].mean()
    night = fraud[fraud["fraud_scenario"] == "high_risk_mcc_night"]
    assert night["mcc"].isin(["7995", "6051", "4829"]).mean() > 0.8


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"fraud_rate": 0.0}, "fraud_rate"),
        ({"fraud_rate": 0.6}, "fraud_rate"),
        ({"rows": 10}, "rows"),
        ({"scenario_mix": {"card_testing": 0.5, "skimming": 0.5}}, "unknown fraud scenarios"),
        ({"scenario_mix": {"card_testing": 0.5, "velocity_spike": 0.4}}, "sum to 1"),
    ],
)
def test_bad_settings_are_rejected_with_the_setting_named(settings, field):
    with pytest.raises(GeneratorConfigError, match=field):
        TransactionStreamConfig(**settings)

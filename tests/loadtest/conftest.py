"""Fixtures of the load tester's tests: request rows, scenario files, a peer server."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from server.config import load_model_config
from server.config.paths import default_models_dir

FRAUD_ROWS = 64


def fraud_rows(count: int = FRAUD_ROWS, seed: int = 0) -> pd.DataFrame:
    """Rows shaped like the fraud holdout file (features + label)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 40.0, count).round(2),
            "hour_of_day": rng.integers(0, 24, count).astype("float32"),
            "txn_count_1h": rng.poisson(1.0, count).astype("float32"),
            "txn_count_24h": rng.poisson(5.0, count).astype("float32"),
            "amount_sum_1h": rng.gamma(2.0, 50.0, count).astype("float32"),
            "amount_sum_24h": rng.gamma(2.0, 200.0, count).astype("float32"),
            "seconds_since_last_txn": rng.exponential(3600.0, count).astype("float32"),
            "distance_from_home_km": rng.exponential(20.0, count).astype("float32"),
            "is_new_merchant": rng.integers(0, 2, count).astype("float32"),
            "is_new_device": rng.integers(0, 2, count).astype("float32"),
            "currency": rng.choice(["USD", "EUR"], count),
            "mcc": rng.choice(["5411", "5812"], count),
            "card_country": rng.choice(["US", "DE"], count),
            "merchant_country": rng.choice(["US", "DE"], count),
            "channel": rng.choice(["card_present", "ecommerce"], count),
            "entry_mode": rng.choice(["chip", "manual"], count),
            "is_fraud": rng.integers(0, 2, count),
        }
    )


def credit_rows(count: int = 32, seed: int = 0) -> pd.DataFrame:
    """Rows shaped like the credit holdout: the bundled credit model's numeric inputs, its two categories,
    the label."""
    rng = np.random.default_rng(seed)
    config = load_model_config(default_models_dir() / "credit")
    floats = [spec.name for spec in config.inputs if spec.dtype == "float32"]
    frame = pd.DataFrame({name: rng.uniform(0, 100, count).astype("float32") for name in floats})
    frame["purpose"] = rng.choice(["debt_consolidation", "car"], count)
    frame["home_ownership"] = rng.choice(["rent", "own"], count)
    frame["is_default"] = rng.integers(0, 2, count)
    return frame


@pytest.fixture
def fraud_file(tmp_path: Path) -> Path:
    path = tmp_path / "fraud_rows.parquet"
    fraud_rows().to_parquet(path)
    return path


@pytest.fixture
def credit_file(tmp_path: Path) -> Path:
    path = tmp_path / "credit_rows.parquet"
    credit_rows().to_parquet(path)
    return path


def write_scenario(folder: Path, scenario: dict, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path

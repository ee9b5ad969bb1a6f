"""What each bundled model is built from: data generator, split, architecture, thresholds.

`fraud_recipe()` and `credit_recipe()` give the production recipes; `quick=True` shrinks rows and the
network for tests and smoke runs (the artifacts are then valid but not the bundled quality).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modelbuild.credit_applications import CreditApplicationConfig, generate_applications
from modelbuild.features import (
    CREDIT_FEATURES,
    FRAUD_FEATURES,
    FeatureSet,
    credit_vocabulary,
    fraud_vocabulary,
)
from modelbuild.splits import DataSplit, out_of_time_split, random_split, thresholds_for_alert_rates
from modelbuild.training import MlpSettings
from modelbuild.transaction_stream import TransactionStreamConfig, generate_transactions

MODEL_VERSION = "1.0.0"
DEFAULT_SEED = 7
FRAUD_REVIEW_RATE = 0.02  # share of transactions sent to review or declined
FRAUD_DECLINE_RATE = 0.005  # share of transactions declined
CREDIT_REVIEW_PD = 0.15  # probability of default from which an application goes to an underwriter
CREDIT_DECLINE_PD = 0.30  # probability of default from which it is declined


@dataclass(frozen=True)
class ModelRecipe:
    name: str
    task: str  # fraud | credit (ModelTask)
    description: str
    features: FeatureSet
    vocabulary: dict[str, list[str]]
    mlp: MlpSettings
    generator_settings: dict[str, object]
    generate: Callable[[], pd.DataFrame]
    split: Callable[[pd.DataFrame], DataSplit]
    thresholds: Callable[[np.ndarray], tuple[float, float]]
    threshold_rule: str
    id_columns: tuple[str, ...]
    extra_columns: tuple[str, ...] = ()  # kept in the holdout besides inputs, ids and label
    scorecard: dict[str, float] = field(default_factory=dict)
    seed: int = DEFAULT_SEED


def fraud_recipe(
    seed: int = DEFAULT_SEED, fraud_rate: float = 0.005, rows: int | None = None, quick: bool = False
) -> ModelRecipe:
    rows = rows or (20_000 if quick else 200_000)
    stream = TransactionStreamConfig(rows=rows, fraud_rate=fraud_rate, seed=seed)
    calibration_rows = min(5_000, rows // 10)
    holdout_rows = int(rows * 0.4) - calibration_rows
    return ModelRecipe(
        name="fraud",
        task="fraud",
        description="Card-present and card-not-present fraud: probability that an authorization is fraud.",
        features=FRAUD_FEATURES,
        vocabulary=fraud_vocabulary(),
        # A fixed, short schedule: sklearn's early stopping watches accuracy, flat at a 0.5 % base rate.
        # alpha 0.3 keeps logits moderate, so no float32 score saturates to exactly 0 (see docs/models.md).
        mlp=MlpSettings(
            (32, 16) if quick else (512, 256, 128),
            alpha=0.003 if quick else 0.3,
            batch_size=1024,
            learning_rate_init=2e-3,
            max_iter=20 if quick else 10,
            early_stopping=False,
        ),
        generator_settings={k: getattr(stream, k) for k in stream.__dataclass_fields__},
        generate=lambda: generate_transactions(stream),
        split=lambda frame: out_of_time_split(frame, 0.4, holdout_rows, calibration_rows, seed),
        thresholds=lambda scores: thresholds_for_alert_rates(scores, FRAUD_REVIEW_RATE, FRAUD_DECLINE_RATE),
        threshold_rule=(
            f"review from the score at which {FRAUD_REVIEW_RATE:.1%} of holdout traffic is flagged,"
            f" decline from the score at which {FRAUD_DECLINE_RATE:.1%} is"
        ),
        id_columns=("transaction_id", "card_id", "merchant_id", "timestamp"),
        extra_columns=("fraud_scenario",),
        seed=seed,
    )


def credit_recipe(seed: int = DEFAULT_SEED, rows: int | None = None, quick: bool = False) -> ModelRecipe:
    rows = rows or (8_000 if quick else 50_000)
    applications = CreditApplicationConfig(rows=rows, seed=seed)
    holdout_rows = 10_000 if not quick else 2_000
    calibration_rows = 4_000 if not quick else 2_000
    return ModelRecipe(
        name="credit",
        task="credit",
        description="Unsecured consumer-loan applications: probability that the loan defaults.",
        features=CREDIT_FEATURES,
        vocabulary=credit_vocabulary(),
        mlp=MlpSettings(
            (16, 8) if quick else (64, 32),
            alpha=0.05,
            batch_size=256,
            learning_rate_init=1e-3,
            max_iter=15 if quick else 80,
        ),
        generator_settings={k: getattr(applications, k) for k in applications.__dataclass_fields__},
        generate=lambda: generate_applications(applications),
        split=lambda frame: random_split(frame, holdout_rows, calibration_rows, seed),
        thresholds=lambda scores: (CREDIT_REVIEW_PD, CREDIT_DECLINE_PD),
        threshold_rule=f"review from PD {CREDIT_REVIEW_PD:.0%}, decline from PD {CREDIT_DECLINE_PD:.0%}",
        id_columns=("application_id",),
        scorecard={"base_score": 600.0, "base_odds": 50.0, "points_to_double_odds": 20.0},
        seed=seed,
    )

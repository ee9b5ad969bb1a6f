"""Small fraud and credit models with the bundled models' exact inputs, for fast end-to-end servers.

Same graph family as models/: one [N, 1] input per raw feature, scaler + one-hot + MLP, skl2onnx with
zipmap off (`probabilities` [N, 2]). Trained in about a second each; `quantization.mode: none` by default
so server startup stays cheap.
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

FRAUD_FLOATS = (
    "amount",
    "hour_of_day",
    "txn_count_1h",
    "txn_count_24h",
    "amount_sum_1h",
    "amount_sum_24h",
    "seconds_since_last_txn",
    "distance_from_home_km",
    "is_new_merchant",
    "is_new_device",
)
FRAUD_STRINGS = {
    "currency": ("USD", "EUR", "GBP"),
    "mcc": ("5411", "5812", "5999", "7995"),
    "card_country": ("US", "DE", "GB", "FR"),
    "merchant_country": ("US", "DE", "GB", "FR"),
    "channel": ("card_present", "ecommerce", "contactless"),
    "entry_mode": ("chip", "swipe", "manual", "card_on_file"),
}
CREDIT_FLOATS = (
    "annual_income",
    "debt_to_income",
    "revolving_utilization",
    "delinquencies_2y",
    "inquiries_6m",
    "credit_history_months",
    "loan_amount",
    "term_months",
    "employment_years",
    "open_accounts",
)
CREDIT_STRINGS = {
    "purpose": ("debt_consolidation", "car", "home_improvement", "other"),
    "home_ownership": ("rent", "mortgage", "own"),
}
# With `hidden=INT8_HIDDEN`, a quantization section under which the gate serves INT8 without timing: the
# wider model's INT8 file is smaller (`objective: size`), within a budget its 1000 holdout rows can show.
INT8_HIDDEN = (128, 64)
INT8_SERVED = {
    "mode": "static",
    "speed_seconds": 0,
    "objective": "size",
    "min_positives": 5,
    "budget": {"max_decision_flip_rate": 0.05, "min_auc_ratio": 0.99},
}
RANGES = {
    "hour_of_day": (0, 23),
    "is_new_merchant": (0, 1),
    "is_new_device": (0, 1),
    "debt_to_income": (0, 5),
}


def fraud_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 40.0, rows),
            "hour_of_day": rng.integers(0, 24, rows).astype(float),
            "txn_count_1h": rng.poisson(1.0, rows).astype(float),
            "txn_count_24h": rng.poisson(5.0, rows).astype(float),
            "amount_sum_1h": rng.gamma(2.0, 50.0, rows),
            "amount_sum_24h": rng.gamma(2.0, 200.0, rows),
            "seconds_since_last_txn": rng.exponential(3600.0, rows),
            "distance_from_home_km": rng.exponential(20.0, rows),
            "is_new_merchant": rng.integers(0, 2, rows).astype(float),
            "is_new_device": rng.integers(0, 2, rows).astype(float),
        }
    )
    for name, values in FRAUD_STRINGS.items():
        frame[name] = rng.choice(values, rows)
    logit = (
        0.01 * frame.amount
        + 0.8 * frame.txn_count_1h
        + 1.5 * frame.is_new_device
        + 1.0 * (frame.entry_mode == "manual")
        + 0.02 * frame.distance_from_home_km
        - 5.0
    )
    frame["is_fraud"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame


def credit_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "annual_income": rng.lognormal(11.0, 0.5, rows),
            "debt_to_income": rng.uniform(0.0, 0.8, rows),
            "revolving_utilization": rng.uniform(0.0, 1.2, rows),
            "delinquencies_2y": rng.poisson(0.3, rows).astype(float),
            "inquiries_6m": rng.poisson(1.0, rows).astype(float),
            "credit_history_months": rng.uniform(6, 360, rows),
            "loan_amount": rng.uniform(1000, 40000, rows),
            "term_months": rng.choice([36.0, 60.0], rows),
            "employment_years": rng.uniform(0, 30, rows),
            "open_accounts": rng.poisson(8, rows).astype(float),
        }
    )
    for name, values in CREDIT_STRINGS.items():
        frame[name] = rng.choice(values, rows)
    logit = (
        3.0 * frame.debt_to_income
        + 1.5 * frame.revolving_utilization
        + 0.8 * frame.delinquencies_2y
        + 0.3 * frame.inquiries_6m
        - 0.005 * frame.credit_history_months
        - 2.5
    )
    frame["is_default"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame


def _train(
    frame: pd.DataFrame, floats: tuple[str, ...], strings: dict, label: str, hidden: tuple[int, ...] = (16,)
) -> bytes:
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), list(floats)),
                        ("encode", OneHotEncoder(handle_unknown="ignore"), list(strings)),
                    ]
                ),
            ),
            ("mlp", MLPClassifier(hidden, alpha=1e-2, max_iter=40, random_state=0)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a test model need not converge
        pipeline.fit(frame.drop(columns=[label]), frame[label])
    types = [(n, FloatTensorType([None, 1])) for n in floats] + [
        (n, StringTensorType([None, 1])) for n in strings
    ]
    model = convert_sklearn(
        pipeline,
        initial_types=types,
        options={id(pipeline): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return model.SerializeToString()


def write_model(
    folder: Path,
    task: str,
    name: str | None = None,
    batching: dict | None = None,
    quantization: dict | None = None,
    data_format: str = "parquet",
    hidden: tuple[int, ...] = (16,),
) -> Path:
    """Write a complete model folder (config.yaml, model.onnx, calibration and holdout files).

    `data_format` "csv" writes calibration.csv and holdout.csv and names them in config.yaml. `hidden`: the
    MLP's layer widths (wider layers make INT8 pay with `objective: size`, so it is served)."""
    floats, strings, label = (
        (FRAUD_FLOATS, FRAUD_STRINGS, "is_fraud")
        if task == "fraud"
        else (CREDIT_FLOATS, CREDIT_STRINGS, "is_default")
    )
    make = fraud_frame if task == "fraud" else credit_frame
    folder.mkdir(parents=True, exist_ok=True)
    frame = make(3000, 0)
    (folder / "model.onnx").write_bytes(_train(frame, floats, strings, label, hidden))
    files = {"calibration_file": f"calibration.{data_format}", "holdout_file": f"holdout.{data_format}"}
    _write_frame(frame.iloc[:500], folder / files["calibration_file"])
    _write_frame(make(1000, 1), folder / files["holdout_file"])
    inputs = [{"name": n, "dtype": "float32", **_range(n)} for n in floats]
    inputs += [{"name": n, "dtype": "string", "categories": list(v)} for n, v in strings.items()]
    config = {
        "name": name or task,
        "version": "1.0.0-test",
        "task": task,
        "label_column": label,
        **files,
        "inputs": inputs,
        "decision": {"review": 0.3, "decline": 0.7} if task == "fraud" else {"review": 0.2, "decline": 0.5},
        "quantization": quantization or {"mode": "none"},
        "batching": batching or {"max_batch_size": 64, "max_queue_delay_us": 0, "max_queue_size": 1024},
    }
    if task == "credit":
        config["scorecard"] = {"base_score": 600, "base_odds": 50, "points_to_double_odds": 20}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        raise ValueError(f"data_format must be parquet or csv, not {path.suffix[1:]!r}")


def _range(name: str) -> dict:
    low, high = RANGES.get(name, (0.0, None))
    return {"minimum": low} | ({"maximum": high} if high is not None else {})

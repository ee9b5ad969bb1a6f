"""Train / calibration / holdout splits and the decision thresholds chosen on the holdout."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelbuild.errors import ModelBuildError


@dataclass(frozen=True)
class DataSplit:
    train: pd.DataFrame
    calibration: pd.DataFrame  # drawn like production traffic: a random sample of the scored stream
    holdout: pd.DataFrame


def out_of_time_split(
    stream: pd.DataFrame, recent_fraction: float, holdout_rows: int, calibration_rows: int, seed: int
) -> DataSplit:
    """Train on the older part of a time-ordered stream; calibration and holdout are disjoint random samples
    of the recent part, as a model is calibrated and judged on traffic it has not seen."""
    cut = int(len(stream) * (1.0 - recent_fraction))
    recent = stream.iloc[cut:]
    if holdout_rows + calibration_rows > len(recent):
        raise ModelBuildError(
            f"the recent {len(recent)} rows cannot hold {holdout_rows} holdout + {calibration_rows}"
            " calibration rows;"
            " generate more rows or lower the holdout size"
        )
    order = np.random.default_rng(seed).permutation(len(recent))
    calibration = recent.iloc[np.sort(order[:calibration_rows])]
    holdout = recent.iloc[np.sort(order[calibration_rows : calibration_rows + holdout_rows])]
    return DataSplit(
        stream.iloc[:cut].reset_index(drop=True),
        calibration.reset_index(drop=True),
        holdout.reset_index(drop=True),
    )


def random_split(frame: pd.DataFrame, holdout_rows: int, calibration_rows: int, seed: int) -> DataSplit:
    """Disjoint random samples (applications carry no time order worth keeping)."""
    if holdout_rows + calibration_rows >= len(frame):
        raise ModelBuildError(
            f"{len(frame)} rows cannot hold {holdout_rows} holdout + {calibration_rows} calibration"
        )
    order = np.random.default_rng(seed).permutation(len(frame))
    calibration = frame.iloc[np.sort(order[:calibration_rows])]
    holdout = frame.iloc[np.sort(order[calibration_rows : calibration_rows + holdout_rows])]
    train = frame.iloc[np.sort(order[calibration_rows + holdout_rows :])]
    return DataSplit(
        train.reset_index(drop=True), calibration.reset_index(drop=True), holdout.reset_index(drop=True)
    )


def thresholds_for_alert_rates(
    scores: np.ndarray, review_rate: float, decline_rate: float
) -> tuple[float, float]:
    """Thresholds that send `review_rate` of traffic to review or worse and `decline_rate` to decline."""
    review = _round_sig(float(np.quantile(scores, 1.0 - review_rate)))
    decline = _round_sig(float(np.quantile(scores, 1.0 - decline_rate)))
    if not 0.0 < review < decline < 1.0:
        raise ModelBuildError(
            f"cannot place thresholds: review {review} and decline {decline} must satisfy"
            " 0 < review < decline < 1"
            " (scores too coarse or saturated)"
        )
    return review, decline


def decision_shares(scores: np.ndarray, review: float, decline: float) -> dict[str, float]:
    """Share of rows each decision would get."""
    return {
        "approve": float(np.mean(scores < review)),
        "review": float(np.mean((scores >= review) & (scores < decline))),
        "decline": float(np.mean(scores >= decline)),
    }


def _round_sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")

"""The calibration and holdout files `models init` writes from the user's data.

Holdout: a given labelled file (`--holdout`), else `--holdout-fraction` of the data: the latest rows when a
`--time-column` orders them (the model is judged on the most recent traffic, as it will be served), else a
random sample stratified by label (the same positive share as the data). Calibration: the rest, without the
label, at most CALIBRATION_ROWS rows (the latest ones when time-ordered, else a random sample); quantization
uses at most `quantization.calibration_rows` (2000) of them, and the server reads the file at startup for its
reference row, so a larger file only costs time. Every random choice uses SEED: the same data always gives
the same files. Rows keep their file order.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from server.model_init.errors import ModelInitError

SEED = 0
CALIBRATION_ROWS = 5000
MIN_ROWS = 200  # quantization.min_calibration_rows' default: fewer rows fail `riskserve quantize`


@dataclass(frozen=True)
class Split:
    calibration: pd.DataFrame  # without the label
    holdout: pd.DataFrame
    how: str  # one line for the report


def check_label(frame: pd.DataFrame, label: str, data_name: str) -> pd.Series:
    """The label as int64 0/1; ModelInitError if it is missing, incomplete or not 0/1."""
    if label not in frame.columns:
        raise ModelInitError(
            f"data file {data_name} has no label column '{label}' "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    column = frame[label]
    if column.isna().any():
        raise ModelInitError(
            f"data file {data_name}: label column '{label}' has {int(column.isna().sum())} missing values"
        )
    if pd.api.types.is_bool_dtype(column):
        return column.astype(np.int64)
    numeric = pd.to_numeric(column, errors="coerce") if column.dtype == object else column
    if not pd.api.types.is_numeric_dtype(numeric) or numeric.isna().any() or not numeric.isin((0, 1)).all():
        found = sorted({str(v) for v in column.unique()})[:5]
        raise ModelInitError(
            f"data file {data_name}: label column '{label}' must hold 0 and 1 only, found {', '.join(found)}"
        )
    return numeric.astype(np.int64)


def split(
    data: pd.DataFrame,
    label: str,
    holdout: pd.DataFrame | None,
    fraction: float,
    time_column: str | None,
) -> Split:
    """Calibration and holdout frames. `data` and `holdout` already carry an int64 0/1 label (where given)."""
    if time_column is not None:
        data = data.sort_values(time_column, kind="stable")
    rng = np.random.default_rng(SEED)
    given = holdout is not None
    if holdout is not None:
        rest, how = data, f"holdout: the given file ({len(holdout):,} rows)"
    elif time_column is not None:
        count = round(fraction * len(data))
        rest, holdout = data.iloc[: len(data) - count], data.iloc[len(data) - count :]
        how = f"holdout: the latest {fraction:.0%} of rows by '{time_column}' ({count:,} rows)"
    else:
        chosen = []
        for value in (0, 1):
            rows = np.flatnonzero(data[label].to_numpy() == value)
            take = min(len(rows), max(1, round(fraction * len(rows)))) if len(rows) else 0
            chosen.append(rng.permutation(rows)[:take])
        picked = np.zeros(len(data), dtype=bool)
        picked[np.concatenate(chosen)] = True
        rest, holdout = data[~picked], data[picked]
        how = f"holdout: {fraction:.0%} of rows, stratified by '{label}' (seed {SEED}, {len(holdout):,} rows)"
    if len(rest) > CALIBRATION_ROWS:
        if time_column is not None:
            rest, which = rest.iloc[-CALIBRATION_ROWS:], "the latest"
        else:
            keep = np.sort(rng.permutation(len(rest))[:CALIBRATION_ROWS])
            rest, which = rest.iloc[keep], "a random sample of"
        how += f"; calibration: {which} {CALIBRATION_ROWS:,} of the other rows, without the label"
    else:
        how += f"; calibration: the other {len(rest):,} rows, without the label"
    calibration = rest.drop(columns=[label], errors="ignore")
    positives = int(holdout[label].sum())
    how += f"; holdout positives: {positives:,} ({positives / max(len(holdout), 1):.2%})"
    for name, frame in (("holdout", holdout), ("calibration", calibration)):
        if len(frame) < MIN_ROWS:
            raise ModelInitError(
                f"the {name} file would have {len(frame)} rows; quantization needs at least {MIN_ROWS} "
                "(quantization.min_calibration_rows): give more data"
                + ("" if given else " or another --holdout-fraction")
            )
    if positives == 0 or positives == len(holdout):
        missing = "positive (1)" if positives == 0 else "negative (0)"
        raise ModelInitError(f"the holdout has no {missing} rows of '{label}'; the accuracy gate needs both")
    return Split(calibration.reset_index(drop=True), holdout.reset_index(drop=True), how)

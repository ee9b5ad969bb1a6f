"""Behaviour aggregates an upstream feature service computes from a card's history.

All windows look at the card's earlier transactions only (the current one excluded), as a real-time
feature store does at authorization time.
"""

import numpy as np
import pandas as pd

HOUR = 3_600
DAY = 86_400
# Integer sort key card * span + t keeps every window inside one card's history.
_CARD_SPAN = 10**10


def add_behaviour_aggregates(
    events: pd.DataFrame, history_start: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Return `events` sorted by card and time with txn_count_1h/24h, amount_sum_1h/24h,
    seconds_since_last_txn, is_new_merchant and is_new_device added (flags as 0/1 floats)."""
    events = events.sort_values(["card", "t"], kind="stable").reset_index(drop=True)
    card = events["card"].to_numpy(np.int64)
    t = events["t"].to_numpy(np.int64)
    key = card * _CARD_SPAN + (t - history_start)
    position = np.arange(key.size)
    amount_cumsum = np.r_[0.0, np.cumsum(events["amount"].to_numpy(np.float64))]
    for label, window in (("1h", HOUR), ("24h", DAY)):
        first_in_window = np.searchsorted(key, key - window, side="left")
        events[f"txn_count_{label}"] = (position - first_in_window).astype(np.float64)
        events[f"amount_sum_{label}"] = np.round(amount_cumsum[position] - amount_cumsum[first_in_window], 2)

    same_card = np.r_[False, card[1:] == card[:-1]]
    since_last = np.r_[0, np.diff(t)].astype(np.float64)
    # Cards whose previous transaction predates the simulated history: as long ago as the history, or more.
    unknown = (t - history_start) + rng.exponential(5 * DAY, t.size)
    events["seconds_since_last_txn"] = np.round(np.where(same_card, since_last, unknown))

    events["is_new_merchant"] = (~events.duplicated(["card", "merchant_key"])).astype(np.float64)
    has_device = events["device_key"].to_numpy() >= 0
    first_device = ~events.duplicated(["card", "device_key"])
    events["is_new_device"] = (has_device & first_device).astype(np.float64)
    return events

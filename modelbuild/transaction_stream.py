"""The synthetic card-transaction stream: cards, legitimate activity, fraud scenarios, aggregates.

`generate_transactions(TransactionStreamConfig(...))` returns one row per authorization in time order,
with the columns in TRANSACTION_COLUMNS. The same config (seed included) gives the same frame.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from modelbuild import catalogue as cat
from modelbuild.aggregates import add_behaviour_aggregates
from modelbuild.card_profiles import generate_card_profiles
from modelbuild.errors import GeneratorConfigError
from modelbuild.fraud_scenarios import SCENARIO_GENERATORS, SCENARIOS, camouflage
from modelbuild.legit_lookalikes import generate_lookalikes
from modelbuild.legit_transactions import DAY, generate_legit_events

STREAM_START = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())
DEFAULT_SCENARIO_MIX = {
    "card_testing": 0.30,
    "account_takeover": 0.25,
    "high_risk_mcc_night": 0.20,
    "velocity_spike": 0.25,
}
LEGIT = "legit"
TRANSACTION_COLUMNS = (
    "transaction_id",
    "card_id",
    "merchant_id",
    "timestamp",
    "amount",
    "currency",
    "mcc",
    "card_country",
    "merchant_country",
    "channel",
    "entry_mode",
    "hour_of_day",
    "txn_count_1h",
    "txn_count_24h",
    "amount_sum_1h",
    "amount_sum_24h",
    "seconds_since_last_txn",
    "distance_from_home_km",
    "is_new_merchant",
    "is_new_device",
    "fraud_scenario",
    "is_fraud",
)


@dataclass(frozen=True)
class TransactionStreamConfig:
    rows: int = 250_000
    fraud_rate: float = 0.005
    scenario_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SCENARIO_MIX))
    days: float = 28.0
    warmup_days: float = 14.0  # history before the stream, so aggregates and "new" flags are warm
    transactions_per_card: float = 45.0  # in the stream, on average
    camouflage_share: float = 0.4  # fraud events that mimic the victim's habits (see fraud_scenarios)
    mimic_share: float = 0.12  # fraud events that copy the victim's habits entirely
    lookalike_rate: float = 0.01  # legitimate rows that resemble a fraud scenario (see legit_lookalikes)
    seed: int = 7

    def __post_init__(self) -> None:
        if self.rows < 1_000:
            raise GeneratorConfigError(f"rows must be at least 1000, got {self.rows}")
        if not 0.0 < self.fraud_rate < 0.5:
            raise GeneratorConfigError(f"fraud_rate must be in (0, 0.5), got {self.fraud_rate}")
        unknown = set(self.scenario_mix) - set(SCENARIOS)
        if unknown:
            raise GeneratorConfigError(
                f"unknown fraud scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}"
            )
        if not 0.0 <= self.camouflage_share <= 1.0:
            raise GeneratorConfigError(f"camouflage_share must be in [0, 1], got {self.camouflage_share}")
        if not 0.0 <= self.mimic_share <= 1.0 - self.camouflage_share:
            raise GeneratorConfigError(
                f"mimic_share must be in [0, 1 - camouflage_share], got {self.mimic_share}"
            )
        if not 0.0 <= self.lookalike_rate <= 0.2:
            raise GeneratorConfigError(f"lookalike_rate must be in [0, 0.2], got {self.lookalike_rate}")
        shares = np.array(list(self.scenario_mix.values()), dtype=float)
        if (shares < 0).any() or not np.isclose(shares.sum(), 1.0, atol=1e-6):
            raise GeneratorConfigError(
                f"scenario_mix shares must be >= 0 and sum to 1, got {self.scenario_mix}"
            )

    def scenario_rows(self) -> dict[str, int]:
        """Fraud rows per scenario: the fraud total split by the mix (largest remainder)."""
        total = round(self.rows * self.fraud_rate)
        names = list(self.scenario_mix)
        exact = np.array([self.scenario_mix[n] for n in names]) * total
        counts = np.floor(exact).astype(int)
        counts[np.argsort(-(exact - counts))[: total - counts.sum()]] += 1
        return dict(zip(names, (int(c) for c in counts), strict=True))


def generate_transactions(config: TransactionStreamConfig) -> pd.DataFrame:
    """The labelled transaction stream described by `config`, in time order."""
    rng = np.random.default_rng(config.seed)
    cards = generate_card_profiles(
        rng, max(50, round(config.rows / config.transactions_per_card)), config.days
    )
    fraud_rows = config.scenario_rows()
    legit_rows = config.rows - sum(fraud_rows.values())
    warmup_rows = round(legit_rows * config.warmup_days / config.days)
    lookalike_rows = round(config.rows * config.lookalike_rate)
    parts = [
        generate_legit_events(
            rng, cards, legit_rows - lookalike_rows, warmup_rows, config.days, config.warmup_days
        ),
        generate_lookalikes(rng, cards, lookalike_rows, config.days),
    ]
    for name, rows in fraud_rows.items():
        if rows:
            fraud = SCENARIO_GENERATORS[name](rng, cards, rows, config.days)
            parts.append(
                camouflage(rng, fraud, cards, config.camouflage_share, config.mimic_share).drop(
                    columns="event"
                )
            )
    events = pd.concat(parts, ignore_index=True)
    in_stream = ~events["in_warmup"].to_numpy()
    events["t"] = np.where(in_stream, np.clip(events["t"], 0, int(config.days * DAY) - 1), events["t"])
    events = add_behaviour_aggregates(events, history_start=int(-config.warmup_days * DAY), rng=rng)
    events = events[~events["in_warmup"].to_numpy()]
    events = events.sort_values(["t", "card"], kind="stable").reset_index(drop=True)
    return _to_public_columns(events, cards.home_country)


def _to_public_columns(events: pd.DataFrame, home_country: np.ndarray) -> pd.DataFrame:
    n = len(events)
    merchant_country = events["merchant_country"].to_numpy()
    mcc = events["mcc"].to_numpy()
    merchant_key = events["merchant_key"].to_numpy()
    timestamp = STREAM_START + events["t"].to_numpy(np.int64)
    scenario_names = np.array((LEGIT, *SCENARIOS))
    scenario = scenario_names[events["scenario"].to_numpy()]
    frame = pd.DataFrame(
        {
            "transaction_id": pd.Series(np.arange(n)).map("txn_{:09d}".format),
            "card_id": events["card"].map("card_{:06d}".format),
            "merchant_id": pd.Series(merchant_key).map(lambda key: f"mer_{key:016x}"),
            "timestamp": timestamp,
            "amount": events["amount"].to_numpy(np.float32),
            "currency": cat.CURRENCIES[merchant_country],
            "mcc": cat.MCC_CODES[mcc],
            "card_country": cat.COUNTRY_CODES[home_country[events["card"].to_numpy()]],
            "merchant_country": cat.COUNTRY_CODES[merchant_country],
            "channel": cat.CHANNELS[events["channel"].to_numpy()],
            "entry_mode": cat.ENTRY_MODES[events["entry_mode"].to_numpy()],
            "hour_of_day": ((timestamp // 3600) % 24).astype(np.float32),
        }
    )
    for column in (
        "txn_count_1h",
        "txn_count_24h",
        "amount_sum_1h",
        "amount_sum_24h",
        "seconds_since_last_txn",
        "is_new_merchant",
        "is_new_device",
    ):
        frame[column] = events[column].to_numpy(np.float32)
    frame["distance_from_home_km"] = events["distance_km"].to_numpy(np.float32)
    frame["fraud_scenario"] = scenario
    frame["is_fraud"] = (scenario != LEGIT).astype(np.int8)
    return frame[list(TRANSACTION_COLUMNS)]

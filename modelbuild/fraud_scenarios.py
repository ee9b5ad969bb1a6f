"""Fraud injected as named scenarios, each a burst of transactions on a victim card.

- card_testing: a bot checks a stolen card number with tiny e-commerce purchases in quick succession.
- account_takeover: a new device, often from abroad, then a few large online purchases.
- high_risk_mcc_night: gambling, crypto and wire transfers in the cardholder's small hours.
- velocity_spike: a counterfeit card used in shop after shop within the hour.

Each scenario leaves some of its signals out some of the time (a fraudster on a domestic proxy, a
chip-read counterfeit), so the problem is learnable but not trivially separable.
"""

from collections.abc import Callable

import numpy as np
import pandas as pd

from modelbuild import catalogue as cat
from modelbuild.card_profiles import CardProfiles
from modelbuild.legit_transactions import (
    DAY,
    amounts_for,
    describe_purchases,
    local_hours,
    merchant_keys,
)

SCENARIOS = ("card_testing", "account_takeover", "high_risk_mcc_night", "velocity_spike")
FRAUD_SHOP_OFFSET = 6_000_000  # fraud-only merchant numbers start here (throwaway or compromised shops)


def burst_times(
    rng: np.random.Generator, event: np.ndarray, start: np.ndarray, mean_gap: float
) -> np.ndarray:
    """Timestamps of each event's transactions: the event start plus exponential gaps."""
    gaps = rng.exponential(mean_gap, event.size).astype(np.int64) + 5
    first = np.r_[True, event[1:] != event[:-1]]
    gaps[first] = 0
    cumulative = np.cumsum(gaps)
    return start[event] + cumulative - cumulative[np.flatnonzero(first)][np.cumsum(first) - 1]


def _ip_distance(rng: np.random.Generator, home: np.ndarray, country: np.ndarray) -> np.ndarray:
    """Distance from home to where the fraudster appears to be (another country or another city)."""
    abroad = cat.haversine_km(
        cat.COUNTRY_LAT[home], cat.COUNTRY_LON[home], cat.COUNTRY_LAT[country], cat.COUNTRY_LON[country]
    ) * rng.uniform(0.8, 1.2, home.size) + rng.uniform(50.0, 400.0, home.size)
    elsewhere = rng.lognormal(np.log(45.0), 1.4, home.size)  # proxies and other cities
    return np.round(np.minimum(np.where(country == home, elsewhere, abroad), 20_000.0), 1)


def _foreign_or_home(rng: np.random.Generator, home: np.ndarray, foreign_share: float) -> np.ndarray:
    foreign = rng.choice(len(cat.COUNTRIES), size=home.size, p=cat.FRAUD_COUNTRY_WEIGHTS)
    return np.where(rng.random(home.size) < foreign_share, foreign, home)


def burst_events(
    rng: np.random.Generator, cards: CardProfiles, rows: int, burst: tuple[int, int], days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Victim card and start time per event, and the event number of each of `rows` transactions."""
    sizes = rng.integers(burst[0], burst[1] + 1, size=rows)  # at most `rows` events needed
    events = int(np.searchsorted(np.cumsum(sizes), rows) + 1)
    event = np.repeat(np.arange(events), sizes[:events])[:rows]
    victim = rng.choice(cards.count, size=events, replace=events > cards.count)
    start = (rng.uniform(0.0, days - 0.5, events) * DAY).astype(np.int64)
    return event, victim, start


def card_testing(rng: np.random.Generator, cards: CardProfiles, rows: int, days: float) -> pd.DataFrame:
    event, victim, start = burst_events(rng, cards, rows, (3, 12), days)
    card = victim[event]
    home = cards.home_country[card]
    country = _foreign_or_home(rng, home, 0.45)[event]  # one merchant and proxy per burst
    tiny = np.where(
        rng.random(rows) < 0.25, 1.0, np.round(np.clip(rng.lognormal(np.log(2.5), 0.8, rows), 0.5, 30.0), 2)
    )
    mcc = cat.TESTING_MCCS[rng.integers(0, cat.TESTING_MCCS.size, event.max() + 1)][event]
    shop = FRAUD_SHOP_OFFSET + rng.integers(0, 200, event.max() + 1)[event]  # a few weak merchants
    return _frame(
        event,
        card,
        burst_times(rng, event, start, 45.0),
        tiny,
        mcc,
        country,
        cat.ECOMMERCE,
        np.where(rng.random(rows) < 0.6, cat.MANUAL, cat.CARD_ON_FILE),
        shop,
        _fraud_device(rng, card, event, new_share=0.5),
        _ip_distance(rng, home, country),
        1,
    )


def account_takeover(rng: np.random.Generator, cards: CardProfiles, rows: int, days: float) -> pd.DataFrame:
    event, victim, start = burst_events(rng, cards, rows, (1, 4), days)
    card = victim[event]
    home = cards.home_country[card]
    ip_country = _foreign_or_home(rng, home, 0.5)[event]
    mcc = cat.TAKEOVER_MCCS[rng.integers(0, cat.TAKEOVER_MCCS.size, rows)]
    merchant_country = np.where(rng.random(rows) < 0.5, ip_country, home)
    boost = rng.uniform(np.log(1.2), np.log(6.0), rows)  # well above the card's usual basket
    amount = np.round(
        np.clip(
            amounts_for(rng, mcc, cards.spend_level[card], np.full(rows, 14)) * np.exp(boost), 20.0, 25_000.0
        ),
        2,
    )
    return _frame(
        event,
        card,
        burst_times(rng, event, start, 1_800.0),
        amount,
        mcc,
        merchant_country,
        cat.ECOMMERCE,
        np.where(rng.random(rows) < 0.6, cat.CARD_ON_FILE, cat.MANUAL),
        FRAUD_SHOP_OFFSET + rng.integers(0, 5_000, rows),
        _fraud_device(rng, card, event, new_share=0.7),
        _ip_distance(rng, home, ip_country),
        2,
    )


def high_risk_mcc_night(
    rng: np.random.Generator, cards: CardProfiles, rows: int, days: float
) -> pd.DataFrame:
    event, victim, start = burst_events(rng, cards, rows, (1, 3), days)
    home = cards.home_country[victim]
    local_small_hours = rng.uniform(0.0, 5.0, victim.size) * 3600
    start = (start // DAY) * DAY + (local_small_hours - cat.UTC_OFFSETS[home] * 3600).astype(np.int64)
    card = victim[event]
    home = cards.home_country[card]
    country = _foreign_or_home(rng, home, 0.5)[event]
    mcc = cat.HIGH_RISK_MCCS[rng.integers(0, cat.HIGH_RISK_MCCS.size, rows)]
    t = burst_times(rng, event, start, 1_200.0)
    amount = amounts_for(rng, mcc, rng.normal(0.3, 0.5, rows), local_hours(t, home))
    return _frame(
        event,
        card,
        t,
        amount,
        mcc,
        country,
        np.where(rng.random(rows) < 0.9, cat.ECOMMERCE, cat.MAIL_PHONE),
        cat.MANUAL,
        FRAUD_SHOP_OFFSET + rng.integers(0, 3_000, rows),
        _fraud_device(rng, card, event, new_share=0.5),
        _ip_distance(rng, home, country),
        3,
    )


def velocity_spike(rng: np.random.Generator, cards: CardProfiles, rows: int, days: float) -> pd.DataFrame:
    event, victim, start = burst_events(rng, cards, rows, (4, 12), days)
    card = victim[event]
    home = cards.home_country[card]
    country = _foreign_or_home(rng, home, 0.35)[event]  # where the counterfeit card is used
    stores = cat.mcc_index("5411", "5732", "5311", "5541", "5651", "5999", "5944")
    mcc = stores[rng.integers(0, stores.size, rows)]
    amount = amounts_for(rng, mcc, rng.normal(0.4, 0.4, rows), np.full(rows, 15))
    return _frame(
        event,
        card,
        burst_times(rng, event, start, 420.0),
        amount,
        mcc,
        country,
        np.where(rng.random(rows) < 0.85, cat.CARD_PRESENT, cat.CONTACTLESS),
        np.where(rng.random(rows) < 0.4, cat.SWIPE, cat.CHIP),
        rng.integers(0, 5_000_000, rows),
        np.full(rows, -1),
        _ip_distance(rng, home, country),
        4,
    )


def camouflage(
    rng: np.random.Generator, fraud: pd.DataFrame, cards: CardProfiles, share: float, mimic_share: float
) -> pd.DataFrame:
    """Make `share` of the fraud events look like the victim's own behaviour: a merchant at home, near home,
    on the victim's usual device, at a smaller amount. The scenario's defining pattern (tiny amounts,
    bursts, night-time high-risk categories) stays; only the give-aways around it go. A further
    `mimic_share` of events copy the victim's habits entirely (what, where, how much): only their timing
    (bursts, odd hours) can give them away."""
    fraud = fraud.copy()
    events = fraud["event"].to_numpy()
    draw = rng.random(events.max() + 1)
    hidden = (draw < share)[events]
    mimic = (draw >= 1.0 - mimic_share)[events]
    card = fraud["card"].to_numpy()
    home = cards.home_country[card]
    shop = fraud["merchant_key"].to_numpy() % 10_000_000
    n = len(fraud)
    online = fraud["device_key"].to_numpy() >= 0
    near_home = np.where(online, rng.lognormal(np.log(25.0), 1.3, n), rng.lognormal(np.log(6.0), 1.1, n))
    fraud["merchant_country"] = np.where(hidden, home, fraud["merchant_country"])
    fraud["merchant_key"] = np.where(
        hidden, merchant_keys(fraud["mcc"].to_numpy(), home, shop), fraud["merchant_key"]
    )
    fraud["distance_km"] = np.where(hidden, np.round(near_home, 1), fraud["distance_km"])
    fraud["device_key"] = np.where(hidden & online, card.astype(np.int64) * 10_000, fraud["device_key"])
    smaller = np.round(np.maximum(fraud["amount"] * np.exp(-rng.uniform(0.0, 1.2, n)), 0.5), 2)
    fraud["amount"] = np.where(hidden & (fraud["amount"] > 20.0), smaller, fraud["amount"])
    if mimic.any():
        copied = describe_purchases(
            rng, cards, card[mimic], fraud["t"].to_numpy()[mimic], np.zeros(mimic.sum(), bool)
        )
        for column in (
            "amount",
            "mcc",
            "merchant_country",
            "channel",
            "entry_mode",
            "merchant_key",
            "device_key",
            "distance_km",
        ):
            values = fraud[column].to_numpy().copy()
            values[mimic] = copied[column].to_numpy()
            fraud[column] = values
    return fraud


def _fraud_device(
    rng: np.random.Generator, card: np.ndarray, event: np.ndarray, new_share: float
) -> np.ndarray:
    """The fraudster's device (one per event) or, some of the time, the victim's own usual one."""
    own = card.astype(np.int64) * 10_000
    fraudster = 9_000_000_000 + event * 10 + rng.integers(0, 10, event.max() + 1)[event]
    uses_new = (rng.random(event.max() + 1) < new_share)[event]
    return np.where(uses_new, fraudster, own)


def _frame(
    event, card, t, amount, mcc, country, channel, entry_mode, shop, device, distance, scenario
) -> pd.DataFrame:
    n = card.size
    channel = np.broadcast_to(channel, n)
    entry_mode = np.broadcast_to(entry_mode, n)
    # The merchant key of a shop abroad differs from the same number at home: key includes the country.
    return pd.DataFrame(
        {
            "card": card,
            "t": t,
            "amount": amount,
            "mcc": mcc,
            "merchant_country": country,
            "channel": channel,
            "entry_mode": entry_mode,
            "merchant_key": merchant_keys(mcc, country, shop),
            "device_key": np.where(
                channel == cat.ECOMMERCE, device, np.where(channel == cat.MAIL_PHONE, device, -1)
            ),
            "distance_km": distance,
            "scenario": np.full(n, scenario, dtype=np.int64),
            "in_warmup": np.zeros(n, dtype=bool),
            "event": event,
        }
    )


SCENARIO_GENERATORS: dict[str, Callable[..., pd.DataFrame]] = {
    "card_testing": card_testing,
    "account_takeover": account_takeover,
    "high_risk_mcc_night": high_risk_mcc_night,
    "velocity_spike": velocity_spike,
}

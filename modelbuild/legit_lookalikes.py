"""Legitimate behaviour that looks like fraud, so a model must weigh evidence instead of spotting a flag.

- in_app_burst: several tiny digital purchases in minutes (games, app stores): looks like card testing.
- shopping_spree: shop after shop within the hour, often new merchants: looks like a velocity spike.
- big_ticket_online: a large online purchase, sometimes from a new laptop or abroad: looks like takeover.
- late_night_betting: gambling, crypto and transfers in the small hours: looks like high-risk-at-night.

All rows are labelled legitimate (fraud_scenario "legit").
"""

import numpy as np
import pandas as pd

from modelbuild import catalogue as cat
from modelbuild.card_profiles import CardProfiles
from modelbuild.fraud_scenarios import burst_events, burst_times
from modelbuild.legit_transactions import DAY, amounts_for, entry_modes_for, merchant_keys

LOOKALIKE_SHARES = {
    "in_app_burst": 0.35,
    "shopping_spree": 0.35,
    "big_ticket_online": 0.2,
    "late_night_betting": 0.1,
}


def generate_lookalikes(
    rng: np.random.Generator, cards: CardProfiles, rows: int, days: float
) -> pd.DataFrame:
    """`rows` legitimate transactions split over the look-alike behaviours."""
    counts = np.floor(np.array(list(LOOKALIKE_SHARES.values())) * rows).astype(int)
    counts[0] += rows - counts.sum()
    parts = [
        behaviour(rng, cards, int(count), days)
        for behaviour, count in zip(
            (_in_app_burst, _shopping_spree, _big_ticket_online, _late_night_betting), counts, strict=True
        )
        if count > 0
    ]
    return pd.concat(parts, ignore_index=True)


def _in_app_burst(rng: np.random.Generator, cards: CardProfiles, rows: int, days: float) -> pd.DataFrame:
    event, victim, start = burst_events(rng, cards, rows, (3, 10), days)
    card = victim[event]
    home = cards.home_country[card]
    mcc = cat.mcc_index("5818", "5815")[rng.integers(0, 2, event.max() + 1)][event]
    amount = np.round(np.clip(rng.lognormal(np.log(2.0), 0.7, rows), 0.5, 40.0), 2)
    shop = rng.integers(50_000, 50_300, event.max() + 1)[event]  # a few big app stores
    new_device = (rng.random(event.max() + 1) < 0.15)[event]
    device = np.where(new_device, card.astype(np.int64) * 10_000 + 500 + event % 100, card * 10_000)
    return _frame(
        card,
        burst_times(rng, event, start, 90.0),
        amount,
        mcc,
        home,
        cat.ECOMMERCE,
        np.where(rng.random(rows) < 0.7, cat.CARD_ON_FILE, cat.WALLET),
        shop,
        device,
        _online_distance(rng, rows),
    )


def _shopping_spree(rng: np.random.Generator, cards: CardProfiles, rows: int, days: float) -> pd.DataFrame:
    event, victim, start = burst_events(rng, cards, rows, (3, 9), days)
    card = victim[event]
    home = cards.home_country[card]
    abroad = (rng.random(event.max() + 1) < 0.25)[event]
    country = np.where(abroad, cards.travel_country[card], home)
    stores = cat.mcc_index("5411", "5311", "5651", "5999", "5812", "5732", "5944")
    mcc = stores[rng.integers(0, stores.size, rows)]
    channel = np.where(rng.random(rows) < 0.55, cat.CARD_PRESENT, cat.CONTACTLESS)
    local = np.full(rows, 15)
    amount = amounts_for(rng, mcc, cards.spend_level[card] + 0.3, local)
    distance = np.where(
        abroad,
        cat.haversine_km(
            cat.COUNTRY_LAT[home], cat.COUNTRY_LON[home], cat.COUNTRY_LAT[country], cat.COUNTRY_LON[country]
        ),
        rng.lognormal(np.log(15.0), 1.2, rows),
    )
    return _frame(
        card,
        burst_times(rng, event, start, 600.0),
        amount,
        mcc,
        country,
        channel,
        entry_modes_for(rng, channel),
        rng.integers(0, 5_000_000, rows),
        np.full(rows, -1),
        distance,
    )


def _big_ticket_online(rng: np.random.Generator, cards: CardProfiles, rows: int, days: float) -> pd.DataFrame:
    event, victim, start = burst_events(rng, cards, rows, (1, 2), days)
    card = victim[event]
    home = cards.home_country[card]
    mcc = cat.mcc_index("5732", "5944", "4511", "7011", "5651")[rng.integers(0, 5, rows)]
    amount = amounts_for(rng, mcc, cards.spend_level[card] + rng.uniform(0.3, 1.3, rows), np.full(rows, 14))
    abroad = rng.random(rows) < 0.25
    country = np.where(abroad, cards.travel_country[card], home)
    new_device = rng.random(rows) < 0.3
    device = np.where(new_device, card.astype(np.int64) * 10_000 + 600 + event % 100, card * 10_000)
    return _frame(
        card,
        burst_times(rng, event, start, 3_600.0),
        amount,
        mcc,
        country,
        cat.ECOMMERCE,
        np.where(rng.random(rows) < 0.5, cat.MANUAL, cat.CARD_ON_FILE),
        rng.integers(0, 5_000_000, rows),
        device,
        _online_distance(rng, rows),
    )


def _late_night_betting(
    rng: np.random.Generator, cards: CardProfiles, rows: int, days: float
) -> pd.DataFrame:
    event, victim, start = burst_events(rng, cards, rows, (1, 3), days)
    home = cards.home_country[victim]
    small_hours = (rng.uniform(22.0, 29.0, victim.size) % 24) * 3600
    start = (start // DAY) * DAY + (small_hours - cat.UTC_OFFSETS[home] * 3600).astype(np.int64)
    card = victim[event]
    mcc = cat.HIGH_RISK_MCCS[rng.integers(0, cat.HIGH_RISK_MCCS.size, rows)]
    amount = amounts_for(rng, mcc, cards.spend_level[card], np.full(rows, 1))
    return _frame(
        card,
        burst_times(rng, event, start, 1_500.0),
        amount,
        mcc,
        cards.home_country[card],
        cat.ECOMMERCE,
        np.where(rng.random(rows) < 0.6, cat.CARD_ON_FILE, cat.MANUAL),
        rng.integers(50_000, 60_000, rows),
        card.astype(np.int64) * 10_000,
        _online_distance(rng, rows),
    )


def _online_distance(rng: np.random.Generator, rows: int) -> np.ndarray:
    return np.round(rng.lognormal(np.log(25.0), 1.3, rows), 1)


def _frame(card, t, amount, mcc, country, channel, entry_mode, shop, device, distance) -> pd.DataFrame:
    n = card.size
    return pd.DataFrame(
        {
            "card": card,
            "t": t,
            "amount": amount,
            "mcc": mcc,
            "merchant_country": country,
            "channel": np.broadcast_to(channel, n),
            "entry_mode": np.broadcast_to(entry_mode, n),
            "merchant_key": merchant_keys(mcc, country, shop),
            "device_key": device,
            "distance_km": np.round(np.minimum(distance, 20_000.0), 1),
            "scenario": np.zeros(n, dtype=np.int64),
            "in_warmup": np.zeros(n, dtype=bool),
        }
    )

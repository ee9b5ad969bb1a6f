"""Legitimate card activity drawn from each card's habits, as an event frame before aggregates.

Event frame columns (internal, shared with fraud_scenarios and aggregates): card, t (seconds from the start
of the stream; negative in the warm-up history), amount (USD equivalent), mcc, merchant_country, channel,
entry_mode (indices into catalogue tables), merchant_key, device_key (-1: no device, card present),
distance_km, scenario (0 = legitimate), in_warmup.
"""

import numpy as np
import pandas as pd

from modelbuild import catalogue as cat
from modelbuild.card_profiles import FAVOURITES_PER_CARD, CardProfiles

DAY = 86_400
FAVOURITE_SHARE = 0.65  # share of a card's spending at its favourite categories
REGULAR_MERCHANT_SHARE = 0.55  # share of spending at one of the card's ~3 regular shops per category
SESSION_FOLLOWER_SHARE = 0.25  # transactions that follow another one of the same card within minutes
REGULAR_MERCHANT_POOL = 50_000


def categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One draw per row of a [rows, k] probability matrix."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random((probabilities.shape[0], 1)) * cumulative[:, -1:]
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def entry_modes_for(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """How the card details reached the terminal, given the channel."""
    by_channel = np.array(
        [
            # chip, swipe, contactless, manual, card_on_file, wallet
            [0.90, 0.10, 0.00, 0.00, 0.00, 0.00],  # card_present
            [0.00, 0.00, 0.70, 0.00, 0.00, 0.30],  # contactless
            [0.00, 0.00, 0.00, 0.35, 0.45, 0.20],  # ecommerce
            [0.00, 0.00, 0.00, 1.00, 0.00, 0.00],  # mail_phone
            [0.00, 0.00, 0.00, 0.00, 1.00, 0.00],  # recurring
        ]
    )
    return categorical(rng, by_channel[channel])


def amounts_for(
    rng: np.random.Generator, mcc: np.ndarray, spend_level: np.ndarray, local_hour: np.ndarray
) -> np.ndarray:
    """Lognormal amounts: category median, the card's level, and the hour of day."""
    log_amount = cat.MCC_LOG_MEDIAN[mcc] + spend_level + rng.normal(0.0, 1.0, mcc.size) * cat.MCC_SIGMA[mcc]
    log_amount += np.where(cat.MCC_NIGHT_OWL[mcc], 0.0, cat.HOUR_LOG_EFFECT[local_hour])
    log_amount += np.where(np.isin(mcc, cat.DINING_MCCS), cat.DINING_EVENING_LOG_EFFECT[local_hour], 0.0)
    return np.round(np.clip(np.exp(log_amount), 0.5, 25_000.0), 2)


def merchant_keys(mcc: np.ndarray, country: np.ndarray, shop: np.ndarray) -> np.ndarray:
    """One integer per merchant: category, country and shop number."""
    return (mcc.astype(np.int64) * 100 + country) * 10_000_000 + shop


def local_hours(t: np.ndarray, country: np.ndarray) -> np.ndarray:
    return ((t // 3600 + cat.UTC_OFFSETS[country]) % 24).astype(np.int64)


def generate_legit_events(
    rng: np.random.Generator,
    cards: CardProfiles,
    rows: int,
    warmup_rows: int,
    days: float,
    warmup_days: float,
) -> pd.DataFrame:
    """`rows` transactions in [0, days) plus `warmup_rows` of history in [-warmup_days, 0)."""
    n = rows + warmup_rows
    in_warmup = np.arange(n) < warmup_rows
    card = rng.choice(cards.count, size=n, p=cards.daily_rate / cards.daily_rate.sum())
    home = cards.home_country[card]
    day = np.where(in_warmup, rng.uniform(-warmup_days, 0.0, n), rng.uniform(0.0, days, n)).astype(np.int64)
    hour = rng.normal(cards.active_hour_local[card], cards.active_hour_spread[card]) % 24.0
    t = day * DAY + (hour * 3600).astype(np.int64) - cat.UTC_OFFSETS[home] * 3600
    t = _cluster_sessions(rng, card, t, in_warmup)
    # Keep every row inside its period (time zones and sessions can push a few across the edges).
    t = np.where(in_warmup, np.clip(t, -warmup_days * DAY, -1), np.clip(t, 0, days * DAY - 1)).astype(
        np.int64
    )
    return describe_purchases(rng, cards, card, t, in_warmup)


def describe_purchases(
    rng: np.random.Generator, cards: CardProfiles, card: np.ndarray, t: np.ndarray, in_warmup: np.ndarray
) -> pd.DataFrame:
    """Everything about a purchase the card's holder makes at time `t`, drawn from the card's habits."""
    n = card.size
    home = cards.home_country[card]
    favourite = cards.favourite_mccs[card, rng.integers(0, FAVOURITES_PER_CARD, n)]
    anywhere = rng.choice(len(cat.MERCHANT_CATEGORIES), size=n, p=cat.MCC_POPULARITY)
    mcc = np.where(rng.random(n) < FAVOURITE_SHARE, favourite, anywhere)
    channel = categorical(rng, cat.MCC_CHANNEL_MIX[mcc])
    entry_mode = entry_modes_for(rng, channel)

    in_person = channel <= cat.CONTACTLESS
    online_foreign = rng.choice(len(cat.COUNTRIES), size=n, p=cat.MERCHANT_WEIGHTS)
    travelling = in_person & (rng.random(n) < cards.travel_share[card])
    buys_abroad = (channel == cat.ECOMMERCE) & (rng.random(n) < cards.online_abroad_share[card])
    merchant_country = np.where(
        travelling, cards.travel_country[card], np.where(buys_abroad, online_foreign, home)
    )

    regular = rng.random(n) < REGULAR_MERCHANT_SHARE
    regular_shop = (card * 7_919 + mcc * 104_729 + rng.integers(0, 3, n)) % REGULAR_MERCHANT_POOL
    popular_shop = REGULAR_MERCHANT_POOL + np.minimum(rng.zipf(1.6, n), 5_000_000)
    merchant_key = merchant_keys(mcc, merchant_country, np.where(regular, regular_shop, popular_shop))

    online = (channel == cat.ECOMMERCE) | (channel == cat.MAIL_PHONE)
    slot = (rng.random(n) * cards.devices[card]).astype(np.int64)
    slot = np.where(t >= cards.new_device_day[card] * DAY, cards.devices[card], slot)  # the new phone
    slot = np.where(rng.random(n) < 0.03, 10 + rng.integers(0, 1000, n), slot)  # new browser, borrowed laptop
    device_key = np.where(online, card.astype(np.int64) * 10_000 + slot, -1)

    distance = _legit_distance(rng, home, merchant_country, travelling, online)
    local = local_hours(t, np.where(travelling, merchant_country, home))
    return pd.DataFrame(
        {
            "card": card,
            "t": t,
            "amount": amounts_for(rng, mcc, cards.spend_level[card], local),
            "mcc": mcc,
            "merchant_country": merchant_country,
            "channel": channel,
            "entry_mode": entry_mode,
            "merchant_key": merchant_key,
            "device_key": device_key,
            "distance_km": distance,
            "scenario": np.zeros(n, dtype=np.int64),
            "in_warmup": in_warmup,
        }
    )


def _cluster_sessions(
    rng: np.random.Generator, card: np.ndarray, t: np.ndarray, period: np.ndarray
) -> np.ndarray:
    """Move some transactions to a few minutes after the card's previous one (errands, shopping trips)."""
    order = np.lexsort((t, card))
    sorted_t = t[order]
    same_card = np.r_[
        False, (card[order][1:] == card[order][:-1]) & (period[order][1:] == period[order][:-1])
    ]
    follows = same_card & (rng.random(t.size) < SESSION_FOLLOWER_SHARE)
    gap = rng.exponential(900.0, t.size).astype(np.int64) + 30
    previous = np.r_[sorted_t[:1], sorted_t[:-1]]
    sorted_t = np.where(follows, previous + gap, sorted_t)
    clustered = np.empty_like(t)
    clustered[order] = sorted_t
    return clustered


def _legit_distance(
    rng: np.random.Generator,
    home: np.ndarray,
    merchant_country: np.ndarray,
    travelling: np.ndarray,
    online: np.ndarray,
) -> np.ndarray:
    """Distance from the cardholder's home to the terminal (in person) or to the IP location (online;
    geolocation of mobile and carrier IPs is often tens of km off)."""
    day_trip = rng.random(home.size) < 0.06
    local = np.where(
        day_trip, rng.lognormal(np.log(180.0), 0.7, home.size), rng.lognormal(np.log(6.0), 1.1, home.size)
    )
    local = np.where(online, rng.lognormal(np.log(25.0), 1.3, home.size), local)
    abroad = cat.haversine_km(
        cat.COUNTRY_LAT[home],
        cat.COUNTRY_LON[home],
        cat.COUNTRY_LAT[merchant_country],
        cat.COUNTRY_LON[merchant_country],
    ) * rng.uniform(0.8, 1.2, home.size) + rng.uniform(50.0, 400.0, home.size)
    return np.round(np.minimum(np.where(travelling, abroad, local), 20_000.0), 1)

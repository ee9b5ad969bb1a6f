"""Per-card spending habits: home country, typical ticket size, favourite categories, active hours."""

from dataclasses import dataclass

import numpy as np

from modelbuild import catalogue as cat

FAVOURITES_PER_CARD = 4


@dataclass(frozen=True)
class CardProfiles:
    """Column arrays, one entry per card (index = card number)."""

    home_country: np.ndarray  # index into catalogue.COUNTRIES
    spend_level: np.ndarray  # log-scale offset of the card's amounts vs the category median
    favourite_mccs: np.ndarray  # [cards, FAVOURITES_PER_CARD] indices into MERCHANT_CATEGORIES
    active_hour_local: np.ndarray  # centre of the card's day, local hours
    active_hour_spread: np.ndarray  # standard deviation of the hour of use
    daily_rate: np.ndarray  # expected transactions per day
    travel_share: np.ndarray  # share of in-person spending abroad
    travel_country: np.ndarray  # where the card travels to when it does
    online_abroad_share: np.ndarray  # share of online purchases from foreign merchants
    devices: np.ndarray  # usual online devices (1-3)
    new_device_day: np.ndarray  # day a legitimate new phone/laptop appears (inf: never)

    @property
    def count(self) -> int:
        return int(self.home_country.size)


def _top_k_weighted(rng: np.random.Generator, weights: np.ndarray, rows: int, k: int) -> np.ndarray:
    """k distinct draws per row, proportional to `weights` (Gumbel top-k trick, vectorized)."""
    gumbel = -np.log(-np.log(rng.random((rows, weights.size))))
    return np.argsort(-(np.log(weights) + gumbel), axis=1)[:, :k]


def generate_card_profiles(rng: np.random.Generator, cards: int, days: float) -> CardProfiles:
    """Draw `cards` independent cardholders."""
    home = rng.choice(len(cat.COUNTRIES), size=cards, p=cat.ISSUER_WEIGHTS)
    favourites = _top_k_weighted(rng, cat.MCC_POPULARITY, cards, FAVOURITES_PER_CARD)
    # A few cardholders gamble, buy crypto or wire money legitimately, mostly late in the evening.
    risky = rng.random(cards) < 0.04
    favourites[risky, -1] = rng.choice(cat.HIGH_RISK_MCCS, size=int(risky.sum()))
    night_owl = (rng.random(cards) < 0.06) | (risky & (rng.random(cards) < 0.5))
    active_hour = np.where(night_owl, rng.normal(23.0, 1.5, cards), rng.normal(14.0, 2.0, cards))
    travel_share = np.where(rng.random(cards) < 0.12, rng.beta(2, 5, cards), rng.beta(1, 60, cards))
    travel_weights = cat.MERCHANT_WEIGHTS[None, :].repeat(cards, axis=0)
    travel_weights[np.arange(cards), home] = 0.0
    # Travel destinations by attractiveness, never home.
    cumulative = np.cumsum(travel_weights / travel_weights.sum(axis=1, keepdims=True), axis=1)
    travel_country = np.minimum((rng.random((cards, 1)) > cumulative).sum(axis=1), len(cat.COUNTRIES) - 1)
    new_device = rng.random(cards) < 0.10
    return CardProfiles(
        home_country=home,
        spend_level=rng.normal(0.0, 0.45, cards),
        favourite_mccs=favourites,
        active_hour_local=active_hour,
        active_hour_spread=rng.uniform(2.0, 4.0, cards),
        daily_rate=np.clip(rng.lognormal(np.log(1.5), 0.6, cards), 0.15, 15.0),
        travel_share=travel_share,
        travel_country=travel_country,
        online_abroad_share=rng.beta(1.5, 8.0, cards),
        devices=rng.choice([1, 2, 3], size=cards, p=[0.5, 0.35, 0.15]),
        new_device_day=np.where(new_device, rng.uniform(0.0, days, cards), np.inf),
    )

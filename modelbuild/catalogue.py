"""Reference tables of the synthetic card world: countries, merchant categories, channels, entry modes.

The numbers are plausible, not measured: median ticket sizes per merchant category code (MCC), how each
category is paid for (in store, tapped, online, by phone, recurring), and where issuers and merchants sit.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    lat: float
    lon: float
    utc_offset: int  # hours; local time = UTC + offset (no daylight saving in this world)
    issuer_weight: float  # share of cards issued there
    merchant_weight: float  # attractiveness as a foreign merchant / travel destination


COUNTRIES: tuple[Country, ...] = (
    Country("US", "USD", 39.8, -98.6, -6, 0.30, 0.20),
    Country("GB", "GBP", 52.5, -1.5, 0, 0.16, 0.10),
    Country("DE", "EUR", 51.2, 10.4, 1, 0.10, 0.07),
    Country("FR", "EUR", 46.6, 2.4, 1, 0.08, 0.09),
    Country("ES", "EUR", 40.4, -3.7, 1, 0.05, 0.08),
    Country("IT", "EUR", 42.8, 12.5, 1, 0.04, 0.06),
    Country("NL", "EUR", 52.2, 5.3, 1, 0.03, 0.04),
    Country("PL", "PLN", 52.0, 19.1, 1, 0.03, 0.02),
    Country("CA", "CAD", 56.1, -106.3, -5, 0.05, 0.04),
    Country("MX", "MXN", 23.6, -102.5, -6, 0.03, 0.04),
    Country("BR", "BRL", -14.2, -51.9, -3, 0.03, 0.03),
    Country("IN", "INR", 20.6, 79.0, 5, 0.03, 0.03),
    Country("JP", "JPY", 36.2, 138.3, 9, 0.03, 0.04),
    Country("AU", "AUD", -25.3, 133.8, 10, 0.02, 0.03),
    Country("SG", "SGD", 1.35, 103.8, 8, 0.01, 0.03),
    Country("AE", "AED", 23.4, 53.8, 4, 0.01, 0.03),
    Country("NG", "NGN", 9.1, 8.7, 1, 0.005, 0.01),
    Country("RO", "RON", 45.9, 24.97, 2, 0.005, 0.01),
    Country("CN", "CNY", 35.9, 104.2, 8, 0.005, 0.04),
    Country("TH", "THB", 15.9, 100.99, 7, 0.005, 0.03),
)
COUNTRY_CODES = np.array([c.code for c in COUNTRIES])
CURRENCIES = np.array([c.currency for c in COUNTRIES])
COUNTRY_LAT = np.radians([c.lat for c in COUNTRIES])
COUNTRY_LON = np.radians([c.lon for c in COUNTRIES])
UTC_OFFSETS = np.array([c.utc_offset for c in COUNTRIES])
ISSUER_WEIGHTS = np.array([c.issuer_weight for c in COUNTRIES]) / sum(c.issuer_weight for c in COUNTRIES)
MERCHANT_WEIGHTS = np.array([c.merchant_weight for c in COUNTRIES]) / sum(
    c.merchant_weight for c in COUNTRIES
)
# Countries that cross-border fraud rings cash out in more often than travellers visit them.
FRAUD_COUNTRY_WEIGHTS = MERCHANT_WEIGHTS * np.array(
    [1.0 if c.code not in {"NG", "RO", "CN", "TH", "BR", "MX", "IN", "AE"} else 4.0 for c in COUNTRIES]
)
FRAUD_COUNTRY_WEIGHTS = FRAUD_COUNTRY_WEIGHTS / FRAUD_COUNTRY_WEIGHTS.sum()

CHANNELS = np.array(["card_present", "contactless", "ecommerce", "mail_phone", "recurring"])
CARD_PRESENT, CONTACTLESS, ECOMMERCE, MAIL_PHONE, RECURRING = range(5)
ENTRY_MODES = np.array(["chip", "swipe", "contactless", "manual", "card_on_file", "tokenized_wallet"])
CHIP, SWIPE, TAP, MANUAL, CARD_ON_FILE, WALLET = range(6)


@dataclass(frozen=True)
class MerchantCategory:
    mcc: str
    name: str
    median_amount: float  # in USD-equivalent
    sigma: float  # lognormal spread of the amount
    channel_mix: tuple[
        float, float, float, float, float
    ]  # card_present, contactless, ecommerce, moto, recurring
    popularity: float  # share of everyday spending transactions
    night_owl: bool = False  # spends do not shrink at night (gambling, crypto, wire, travel)


MERCHANT_CATEGORIES: tuple[MerchantCategory, ...] = (
    MerchantCategory("5411", "grocery", 42.0, 0.75, (0.45, 0.45, 0.10, 0.0, 0.0), 0.20),
    MerchantCategory("5812", "restaurants", 38.0, 0.70, (0.50, 0.45, 0.05, 0.0, 0.0), 0.11),
    MerchantCategory("5814", "fast_food", 11.0, 0.55, (0.25, 0.65, 0.10, 0.0, 0.0), 0.12),
    MerchantCategory("5541", "fuel", 48.0, 0.45, (0.60, 0.40, 0.0, 0.0, 0.0), 0.08),
    MerchantCategory("5912", "pharmacy", 22.0, 0.70, (0.45, 0.50, 0.05, 0.0, 0.0), 0.05),
    MerchantCategory("5311", "department_store", 65.0, 0.85, (0.50, 0.30, 0.20, 0.0, 0.0), 0.05),
    MerchantCategory("5651", "clothing", 70.0, 0.80, (0.40, 0.25, 0.35, 0.0, 0.0), 0.05),
    MerchantCategory("5732", "electronics", 160.0, 1.00, (0.35, 0.15, 0.50, 0.0, 0.0), 0.03),
    MerchantCategory("5944", "jewelry", 240.0, 1.00, (0.70, 0.10, 0.20, 0.0, 0.0), 0.005),
    MerchantCategory("4111", "transit", 6.0, 0.60, (0.10, 0.80, 0.10, 0.0, 0.0), 0.07),
    MerchantCategory("4121", "taxi_rideshare", 19.0, 0.60, (0.05, 0.15, 0.80, 0.0, 0.0), 0.05),
    MerchantCategory("4511", "airlines", 380.0, 0.80, (0.02, 0.0, 0.90, 0.08, 0.0), 0.01, True),
    MerchantCategory("7011", "hotels", 210.0, 0.75, (0.55, 0.10, 0.30, 0.05, 0.0), 0.01, True),
    MerchantCategory("5815", "digital_media", 12.0, 0.60, (0.0, 0.0, 0.45, 0.0, 0.55), 0.04),
    MerchantCategory("5818", "digital_goods", 9.0, 0.90, (0.0, 0.0, 0.85, 0.0, 0.15), 0.03),
    MerchantCategory("5999", "misc_retail", 35.0, 1.00, (0.40, 0.25, 0.35, 0.0, 0.0), 0.04),
    MerchantCategory("4900", "utilities", 95.0, 0.55, (0.0, 0.0, 0.20, 0.10, 0.70), 0.02),
    MerchantCategory("4814", "telecom", 55.0, 0.45, (0.05, 0.0, 0.25, 0.10, 0.60), 0.02),
    MerchantCategory("7995", "gambling", 60.0, 1.10, (0.10, 0.0, 0.90, 0.0, 0.0), 0.006, True),
    MerchantCategory("6051", "crypto_quasi_cash", 180.0, 1.10, (0.0, 0.0, 1.0, 0.0, 0.0), 0.003, True),
    MerchantCategory("4829", "wire_transfer", 260.0, 1.00, (0.05, 0.0, 0.85, 0.10, 0.0), 0.003, True),
)
MCC_CODES = np.array([m.mcc for m in MERCHANT_CATEGORIES])
MCC_LOG_MEDIAN = np.log([m.median_amount for m in MERCHANT_CATEGORIES])
MCC_SIGMA = np.array([m.sigma for m in MERCHANT_CATEGORIES])
MCC_CHANNEL_MIX = np.array([m.channel_mix for m in MERCHANT_CATEGORIES])
MCC_CHANNEL_MIX = MCC_CHANNEL_MIX / MCC_CHANNEL_MIX.sum(axis=1, keepdims=True)
MCC_POPULARITY = np.array([m.popularity for m in MERCHANT_CATEGORIES])
MCC_POPULARITY = MCC_POPULARITY / MCC_POPULARITY.sum()
MCC_NIGHT_OWL = np.array([m.night_owl for m in MERCHANT_CATEGORIES])


def mcc_index(*codes: str) -> np.ndarray:
    """Row positions of the given MCC codes in MERCHANT_CATEGORIES."""
    return np.array([int(np.flatnonzero(code == MCC_CODES)[0]) for code in codes])


HIGH_RISK_MCCS = mcc_index("7995", "6051", "4829")
TESTING_MCCS = mcc_index("5815", "5818", "5999")
TAKEOVER_MCCS = mcc_index("5732", "5944", "6051", "4829", "5651")
DINING_MCCS = mcc_index("5812", "5814")

# Hour-of-day (local) multiplier of the amount, on the log scale: dining peaks in the evening, small
# purchases dominate the small hours, except where night activity is normal.
_HOURS = np.arange(24)
HOUR_LOG_EFFECT = np.where((_HOURS >= 0) & (_HOURS < 6), -0.35, 0.0) + np.where(
    (_HOURS >= 11) & (_HOURS < 14), 0.05, 0.0
)
DINING_EVENING_LOG_EFFECT = np.where((_HOURS >= 18) & (_HOURS < 23), 0.40, 0.0)


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points given in radians."""
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))

"""The raw named features of each bundled model: ONNX input names, dtypes, how they are pre-processed."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSet:
    """The ONNX inputs of one model (in input order) and the pre-processing the graph applies to them."""

    floats: tuple[str, ...]  # float32 inputs, in ONNX input order
    log_scaled: tuple[str, ...]  # the heavy-tailed ones (amounts, counts): log1p, then standardized
    categorical: tuple[str, ...]  # strings, one-hot encoded (unknown values encode as all zeros)
    label: str

    @property
    def scaled(self) -> tuple[str, ...]:
        """Float inputs standardized as they are."""
        return tuple(name for name in self.floats if name not in self.log_scaled)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.floats + self.categorical


FRAUD_FEATURES = FeatureSet(
    floats=(
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
    ),
    log_scaled=(
        "amount",
        "txn_count_1h",
        "txn_count_24h",
        "amount_sum_1h",
        "amount_sum_24h",
        "seconds_since_last_txn",
        "distance_from_home_km",
    ),
    categorical=("currency", "mcc", "card_country", "merchant_country", "channel", "entry_mode"),
    label="is_fraud",
)

CREDIT_FEATURES = FeatureSet(
    floats=(
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
    ),
    log_scaled=(
        "annual_income",
        "delinquencies_2y",
        "inquiries_6m",
        "credit_history_months",
        "loan_amount",
        "employment_years",
        "open_accounts",
    ),
    categorical=("purpose", "home_ownership"),
    label="is_default",
)

# Float inputs that are counts, amounts or flags (never negative) and their obvious upper bounds.
NON_NEGATIVE = frozenset(FRAUD_FEATURES.floats + CREDIT_FEATURES.floats)
UPPER_BOUNDS = {
    "hour_of_day": 23.0,
    "is_new_merchant": 1.0,
    "is_new_device": 1.0,
    "distance_from_home_km": 20_040.0,  # half the Earth's circumference
    "debt_to_income": 10.0,
    "revolving_utilization": 5.0,
    "term_months": 600.0,
}

FEATURE_DESCRIPTIONS = {
    "amount": "transaction amount, USD equivalent",
    "hour_of_day": "UTC hour of the transaction timestamp",
    "txn_count_1h": "card's transactions in the previous hour (current excluded)",
    "txn_count_24h": "card's transactions in the previous 24 hours (current excluded)",
    "amount_sum_1h": "card's spend in the previous hour, USD equivalent",
    "amount_sum_24h": "card's spend in the previous 24 hours, USD equivalent",
    "seconds_since_last_txn": "seconds since the card's previous transaction",
    "distance_from_home_km": "distance from the cardholder's home to the terminal or IP location",
    "is_new_merchant": "1 if the card has not paid this merchant before",
    "is_new_device": "1 if an online transaction comes from a device not seen on this card",
    "currency": "ISO 4217 currency of the transaction (the merchant country's)",
    "mcc": "ISO 18245 merchant category code",
    "card_country": "issuing country of the card (ISO 3166 alpha-2)",
    "merchant_country": "merchant's country (ISO 3166 alpha-2)",
    "channel": "card_present, contactless, ecommerce, mail_phone or recurring",
    "entry_mode": "chip, swipe, contactless, manual, card_on_file or tokenized_wallet",
    "annual_income": "stated annual income, USD",
    "debt_to_income": "monthly debt payments / monthly income",
    "revolving_utilization": "revolving balances / revolving limits",
    "delinquencies_2y": "30+ days past-due events in the last 2 years",
    "inquiries_6m": "hard credit inquiries in the last 6 months",
    "credit_history_months": "age of the oldest tradeline, months",
    "loan_amount": "requested loan amount, USD",
    "term_months": "loan term, 36 or 60 months",
    "employment_years": "years with the current employer (0: under one year)",
    "open_accounts": "open credit tradelines",
    "purpose": "stated loan purpose",
    "home_ownership": "rent, mortgage, own or other",
}


def fraud_vocabulary() -> dict[str, list[str]]:
    """Every value each fraud string input can take: the one-hot layout and config.yaml's categories."""
    from modelbuild import catalogue as cat

    return {
        "currency": sorted(set(cat.CURRENCIES.tolist())),
        "mcc": sorted(cat.MCC_CODES.tolist()),
        "card_country": sorted(cat.COUNTRY_CODES.tolist()),
        "merchant_country": sorted(cat.COUNTRY_CODES.tolist()),
        "channel": cat.CHANNELS.tolist(),
        "entry_mode": cat.ENTRY_MODES.tolist(),
    }


def credit_vocabulary() -> dict[str, list[str]]:
    """Every value each credit string input can take."""
    from modelbuild.credit_applications import HOME_OWNERSHIP, PURPOSES

    return {"purpose": list(PURPOSES), "home_ownership": list(HOME_OWNERSHIP)}

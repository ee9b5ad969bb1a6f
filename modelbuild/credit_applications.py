"""Synthetic consumer-loan applications with bureau-style features and a non-linear default truth.

A hidden creditworthiness factor drives utilization, debt-to-income, delinquencies and inquiries together
(as in real bureau data); the probability of default then combines thresholds (utilization above 90 %,
DTI above 43 %), interactions (recent delinquencies on a thin file, long terms on large loans) and an
unobserved shock, so no model can be perfect. The intercept is solved so the mean PD equals the
configured default rate.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from modelbuild.errors import GeneratorConfigError

PURPOSES = {
    "debt_consolidation": (0.42, 0.10),
    "credit_card": (0.20, -0.10),
    "home_improvement": (0.10, -0.15),
    "major_purchase": (0.06, 0.0),
    "car": (0.05, -0.10),
    "medical": (0.04, 0.30),
    "small_business": (0.04, 0.60),
    "vacation": (0.02, 0.15),
    "moving": (0.02, 0.20),
    "other": (0.05, 0.15),
}  # name: (share of applications, log-odds effect on default)
HOME_OWNERSHIP = {"rent": 0.20, "mortgage": -0.20, "own": -0.15, "other": 0.25}  # log-odds effect
SIGNAL_STRENGTH = (
    1.15  # scales the observable log-odds; with the noise below it sets how separable defaults are
)
CREDIT_COLUMNS = (
    "application_id",
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
    "purpose",
    "home_ownership",
    "is_default",
)


@dataclass(frozen=True)
class CreditApplicationConfig:
    rows: int = 60_000
    default_rate: float = 0.12
    unobserved_noise: float = 0.6  # std of the log-odds shock no feature explains (lower: easier problem)
    seed: int = 11

    def __post_init__(self) -> None:
        if self.rows < 1_000:
            raise GeneratorConfigError(f"rows must be at least 1000, got {self.rows}")
        if not 0.01 <= self.default_rate <= 0.5:
            raise GeneratorConfigError(f"default_rate must be in [0.01, 0.5], got {self.default_rate}")
        if self.unobserved_noise < 0:
            raise GeneratorConfigError(f"unobserved_noise must be >= 0, got {self.unobserved_noise}")


def generate_applications(config: CreditApplicationConfig) -> pd.DataFrame:
    """Labelled applications (columns CREDIT_COLUMNS); the same config gives the same frame."""
    rng = np.random.default_rng(config.seed)
    n = config.rows
    risk = rng.normal(0.0, 1.0, n)  # hidden creditworthiness: higher is riskier
    age = rng.uniform(21.0, 70.0, n)
    income = np.round(
        np.clip(rng.lognormal(np.log(58_000) + 0.006 * (age - 40) - 0.12 * risk, 0.5), 12_000, 1_500_000), -2
    )
    history = np.round(np.clip((age - 18) * 12 * rng.uniform(0.25, 1.0, n), 3, 600))
    employment = np.where(
        rng.random(n) < 0.1, 0.0, np.minimum(np.round(rng.gamma(2.0, 3.5, n)), np.floor(age - 18))
    )
    utilization = np.round(np.clip(rng.beta(2.0, 3.5, n) + 0.14 * risk, 0.0, 1.2), 3)
    dti = np.round(np.clip(rng.beta(2.5, 7.0, n) + 0.05 * risk, 0.0, 0.65), 3)
    delinquencies = rng.poisson(0.18 * np.exp(0.8 * risk)).astype(float)
    inquiries = rng.poisson(0.9 * np.exp(0.35 * risk)).astype(float)
    open_accounts = np.clip(rng.poisson(3.0 + history / 60.0), 0, 40).astype(float)
    loan = np.round(np.clip(rng.lognormal(np.log(0.22 * income), 0.55), 1_000, 40_000) / 25) * 25
    term = np.where(rng.random(n) < expit((loan - 15_000) / 6_000), 60.0, 36.0)
    purpose_names = np.array(list(PURPOSES))
    purpose = rng.choice(purpose_names.size, size=n, p=[share for share, _ in PURPOSES.values()])
    home_names = np.array(list(HOME_OWNERSHIP))
    owner_odds = expit(0.08 * (age - 38) + 0.6 * np.log(income / 58_000))
    home = np.where(
        rng.random(n) < owner_odds, np.where(rng.random(n) < 0.75, 1, 2), np.where(rng.random(n) < 0.95, 0, 3)
    )

    loan_to_income = loan / income
    observed_log_odds = (
        1.6 * utilization
        + 1.1 * (utilization > 0.9)
        + 4.0 * np.maximum(dti - 0.36, 0.0)
        + 0.5 * (dti > 0.43)
        + 0.45 * np.minimum(delinquencies, 3)
        + 0.7 * ((delinquencies > 0) & (history < 48))
        + 0.16 * inquiries
        + 0.4 * (inquiries >= 4)
        - 0.35 * np.log1p(history / 12)
        + 0.7 * (loan_to_income > 0.35)
        + 0.3 * (term == 60) * (1 + (loan_to_income > 0.25))
        - 0.2 * np.log1p(employment)
        + 0.4 * (employment < 1)
        - 0.45 * np.log(income / 58_000)
        + np.array([effect for _, effect in PURPOSES.values()])[purpose]
        + np.array(list(HOME_OWNERSHIP.values()))[home]
    )
    log_odds = SIGNAL_STRENGTH * observed_log_odds + rng.normal(0.0, config.unobserved_noise, n)
    intercept = brentq(lambda b: expit(log_odds + b).mean() - config.default_rate, -30.0, 30.0)
    is_default = (rng.random(n) < expit(log_odds + intercept)).astype(np.int8)

    frame = pd.DataFrame(
        {
            "application_id": pd.Series(np.arange(n)).map("app_{:08d}".format),
            "annual_income": income,
            "debt_to_income": dti,
            "revolving_utilization": utilization,
            "delinquencies_2y": delinquencies,
            "inquiries_6m": inquiries,
            "credit_history_months": history,
            "loan_amount": loan,
            "term_months": term,
            "employment_years": employment,
            "open_accounts": open_accounts,
            "purpose": purpose_names[purpose],
            "home_ownership": home_names[home],
            "is_default": is_default,
        }
    )
    floats = [c for c in CREDIT_COLUMNS if frame[c].dtype == np.float64]
    frame[floats] = frame[floats].astype(np.float32)
    return frame[list(CREDIT_COLUMNS)]

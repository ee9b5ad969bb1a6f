"""Credit reason codes: which inputs push this applicant's probability of default up, most first.

Method (one batched ONNX Runtime call): row 0 is the application; row i is the application with input i
replaced by its reference value (the calibration set's median, or mode for a category). An input's
contribution is PD(application) - PD(row i): how much lower the PD would be if that input were typical.
Inputs with a positive contribution are reasons, largest first, at most MAX_REASONS (US adverse-action
notices cite up to four). Inputs already at their reference value contribute 0 and are never reasons.
"""

from dataclasses import dataclass

import numpy as np

from server.config.model_config import ModelConfig

MAX_REASONS = 4
MIN_CONTRIBUTION = 1e-6  # below this a "reason" is numerical noise

# Adverse-action wording for the bundled credit model's inputs; other inputs use their config description.
_DESCRIPTIONS = {
    "annual_income": "Income insufficient for amount of credit requested",
    "debt_to_income": "Debt-to-income ratio too high",
    "revolving_utilization": "Proportion of revolving balances to credit limits too high",
    "delinquencies_2y": "Delinquency on accounts in the last two years",
    "inquiries_6m": "Too many recent credit inquiries",
    "credit_history_months": "Length of credit history too short",
    "loan_amount": "Amount of credit requested too high",
    "term_months": "Requested loan term",
    "employment_years": "Length of employment too short",
    "open_accounts": "Number of open accounts",
    "purpose": "Purpose of the loan",
    "home_ownership": "Housing status",
}


@dataclass(frozen=True)
class Reason:
    code: str
    feature: str
    description: str
    contribution: float


def counterfactual_rows(
    application: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Feature columns: row 0 = the application, then one row per feature that differs from its
    reference value (both given as 1-value columns per feature)."""
    changed = [name for name in application if application[name][0] != reference[name][0]]
    rows = 1 + len(changed)
    columns = {name: np.repeat(values, rows) for name, values in application.items()}
    for i, name in enumerate(changed, start=1):
        columns[name][i] = reference[name][0]
    return columns, changed


def top_reasons(pd_rows: np.ndarray, changed: list[str], config: ModelConfig) -> list[Reason]:
    """Reasons from the PDs of `counterfactual_rows` (pd_rows[0] is the application's PD)."""
    contributions = pd_rows[0] - pd_rows[1:]
    order = np.argsort(-contributions, kind="stable")
    reasons = []
    for i in order[:MAX_REASONS]:
        if contributions[i] < MIN_CONTRIBUTION:
            break
        name = changed[i]
        description = _DESCRIPTIONS.get(name) or config.feature(name).description or f"Value of {name}"
        reasons.append(Reason(f"RC_{name.upper()}", name, description, float(contributions[i])))
    return reasons

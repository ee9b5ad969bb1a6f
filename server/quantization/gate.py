"""The accuracy gate: is the quantized model within the model's budget relative to FP32?"""

from dataclasses import dataclass

from server.config.quantization_config import AccuracyBudget
from server.quantization.evaluation import AccuracyComparison


@dataclass(frozen=True)
class BudgetCheck:
    name: str
    value: float
    limit: float
    kind: str  # "min" or "max"
    passed: bool

    @property
    def shortfall(self) -> float:
        """How far outside the budget, relative to the allowed slack; 0 when within it."""
        if self.passed:
            return 0.0
        slack = (1.0 - self.limit) if self.kind == "min" else self.limit
        return abs(self.value - self.limit) / max(slack, 1e-9)


@dataclass(frozen=True)
class GateResult:
    checks: tuple[BudgetCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def shortfall(self) -> float:
        return sum(check.shortfall for check in self.checks)

    def failures(self) -> list[str]:
        return [f"{c.name} {c.value:.6g} ({c.kind} {c.limit:g})" for c in self.checks if not c.passed]


def _at_least(name: str, value: float, limit: float) -> BudgetCheck:
    return BudgetCheck(name, value, limit, "min", value >= limit)


def _at_most(name: str, value: float, limit: float) -> BudgetCheck:
    return BudgetCheck(name, value, limit, "max", value <= limit)


def check_budget(comparison: AccuracyComparison, budget: AccuracyBudget) -> GateResult:
    """One check per budget item; the flip rate is checked at every decision threshold."""
    checks = [_at_least("roc_auc_ratio", comparison.roc_auc_ratio, budget.min_auc_ratio)]
    checks += [
        _at_most(f"flip_rate_{name}", rate, budget.max_decision_flip_rate)
        for name, rate in comparison.flip_rates.items()
    ]
    checks.append(
        _at_least("distinct_score_ratio", comparison.distinct_score_ratio, budget.min_distinct_score_ratio)
    )
    return GateResult(tuple(checks))

"""`--find-max`: the highest open-loop rate that still meets the scenario's SLA.

Short trials at a constant rate: double from the scenario's rate until a trial fails (or halve until one
passes), then bisect between the best pass and the first failure until they are within `precision`.
A trial where the generator fell behind counts as a failure and is marked, so a limit set by the client
machine is never reported as the server's capacity.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass

from loadtest.errors import ScenarioError
from loadtest.figures import compute_figures
from loadtest.plan import RequestPool
from loadtest.runner import RunResult, run_scenario
from loadtest.scenario import LoadMode, Scenario, with_overrides
from loadtest.sla import evaluate

MIN_RATE = 1.0


@dataclass(frozen=True)
class Trial:
    rate_rps: float
    passed: bool
    fell_behind: bool
    p99_ms: float | None
    throughput_rps: float
    failed_lines: list[str]


@dataclass(frozen=True)
class FindMaxResult:
    max_rate_rps: float | None  # None: not even the lowest rate tried passed
    limited_by_generator: bool  # the first failure above it was the generator falling behind, nothing else
    trials: list[Trial]
    best_run: RunResult | None

    def as_dict(self) -> dict:
        return {
            "max_rate_rps": self.max_rate_rps,
            "limited_by_generator": self.limited_by_generator,
            "trials": [asdict(trial) for trial in self.trials],
        }


def find_max_rate(
    scenario: Scenario,
    pools: tuple[RequestPool, ...],
    *,
    trial_s: float = 5.0,
    warmup_s: float = 1.0,
    precision: float = 0.05,
    max_trials: int = 14,
    on_trial: Callable[[Trial], None] | None = None,
) -> FindMaxResult:
    """Search the highest passing rate with at most `max_trials` short trials."""
    if scenario.load.mode is LoadMode.CLOSED:
        raise ScenarioError("--find-max searches an open-loop rate; this scenario is mode: closed")
    trials: list[Trial] = []
    runs: dict[float, RunResult] = {}

    def attempt(rate: float) -> Trial:
        trial_scenario = with_overrides(scenario, rate=rate, duration_s=trial_s, warmup_s=warmup_s)
        result = run_scenario(trial_scenario, pools=pools)
        figures = compute_figures(result)
        verdict = evaluate(trial_scenario.sla, figures)
        trial = Trial(
            rate,
            verdict.passed,
            verdict.fell_behind,
            figures.latency_ms["p99"],
            figures.throughput_rps,
            verdict.failed_lines,
        )
        trials.append(trial)
        runs[rate] = result
        if on_trial is not None:
            on_trial(trial)
        return trial

    best, failing = None, None
    rate = scenario.load.peak_rate
    while len(trials) < max_trials:  # bracket: grow while passing, shrink while failing
        trial = attempt(rate)
        if trial.passed:
            best = trial
            if failing is not None:
                break
            rate *= 2
        else:
            failing = trial
            if best is not None or rate <= MIN_RATE:
                break
            rate = max(MIN_RATE, rate / 2)
    while best is not None and failing is not None and len(trials) < max_trials:
        if (failing.rate_rps - best.rate_rps) <= precision * best.rate_rps:
            break
        trial = attempt((best.rate_rps + failing.rate_rps) / 2)
        if trial.passed:
            best = trial
        else:
            failing = trial
    return FindMaxResult(
        max_rate_rps=best.rate_rps if best else None,
        # a trial the server failed too (errors, latency) was the server's limit, whatever the generator did
        limited_by_generator=bool(failing and failing.fell_behind and len(failing.failed_lines) == 1),
        trials=trials,
        best_run=runs.get(best.rate_rps) if best else None,
    )

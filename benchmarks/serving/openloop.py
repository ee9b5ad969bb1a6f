"""Open-loop load at rising rates through the project's load generator (loadtest/), one short trial per rate.

A trial is a constant-rate open-loop run timed from the intended send (coordinated-omission free, HDR
histograms merged across generator processes). A rate is *sustained* when the trial meets: client p99 from
intended send under the limit, at most 0.1 % errors, at least 98 % of the scheduled rate answered OK, and
the generator kept its schedule (else the client, not the server, was the limit).

The search is shared by every target: all targets climb the same ladder of rates, interleaved rate by rate
(so they see the same background load on the shared cores), each stopping at its first failure; then each
bisects between its last pass and first failure a few times.
"""

import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from benchmarks.serving.payloads import mix_entry
from benchmarks.serving.stream_generator import run_stream
from loadtest.figures import compute_figures
from loadtest.plan import RequestPool
from loadtest.runner import run_scenario
from loadtest.scenario import parse_scenario
from loadtest.sla import evaluate

MAX_ERROR_RATE = 0.001
MIN_ANSWERED_SHARE = 0.98
MAX_SEND_LAG_MS = 10.0  # loadtest's default: a generator later than this at p99 fell behind


@dataclass(frozen=True)
class LoadTarget:
    """One server and one kind of call to load it with."""

    name: str  # e.g. "riskserve Score"
    target: str  # host:port
    kind: str  # payload kind: score | score_batch | infer | infer_batch | stream
    pool: RequestPool
    metrics_url: str | None = None


@dataclass(frozen=True)
class Trial:
    target: str
    rate_rps: float
    sustained: bool
    failed_lines: list[str]
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    uncorrected_p99_ms: float | None
    throughput_rps: float
    rows_per_s: float
    error_rate: float
    codes: dict[str, int]
    send_lag_p99_ms: float | None
    generator_workers: int
    generator_cpu_cores: float
    server_p99_ms: float | None  # the server's own histogram p99 over the run (riskserve only)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrialTiming:
    measured_s: float
    warmup_s: float
    timeout_ms: float = 1000.0


def run_trial(load: LoadTarget, rate: float, p99_limit_ms: float, timing: TrialTiming) -> Trial:
    """One constant-rate open-loop trial judged against the sustained-rate criteria. ScoreStream goes
    through the cheap stream sender (benchmarks/serving/stream_generator.py), the rest through loadtest."""
    if load.kind == "stream":
        return _stream_trial(load, rate, p99_limit_ms, timing)
    return loadtest_trial(load, rate, p99_limit_ms, timing)


def loadtest_trial(load: LoadTarget, rate: float, p99_limit_ms: float, timing: TrialTiming) -> Trial:
    """The trial through the project's load generator (loadtest/), any kind of call."""
    entry = mix_entry(load.kind).model_dump(mode="python", exclude_none=True)
    raw = {
        "name": f"bench-{load.name}-{rate:g}".replace(" ", "-"),
        "target": load.target,
        "protocol": "oip" if load.kind.startswith("infer") else "riskserve",
        "mix": [entry],
        "load": {
            "mode": "open",
            "arrival": "constant",
            "rate": rate,
            "duration_s": timing.measured_s,
            "warmup_s": timing.warmup_s,
            "timeout_ms": timing.timeout_ms,
        },
        "sla": {
            "p99_ms": p99_limit_ms,
            "max_error_rate": MAX_ERROR_RATE,
            "min_throughput_rps": MIN_ANSWERED_SHARE * rate,
        },
    }
    if load.metrics_url:
        raw["metrics_url"] = load.metrics_url
    scenario = parse_scenario(raw, f"benchmark trial {load.name}")
    result = run_scenario(scenario, pools=(load.pool,))
    figures = compute_figures(result)
    verdict = evaluate(scenario.sla, figures)
    server_p99 = next((s.run_p99_ms for s in result.server if s.run_p99_ms is not None), None)
    return Trial(
        target=load.name,
        rate_rps=rate,
        sustained=verdict.passed,
        failed_lines=verdict.failed_lines,
        p50_ms=figures.latency_ms["p50"],
        p99_ms=figures.latency_ms["p99"],
        p999_ms=figures.latency_ms["p999"],
        uncorrected_p99_ms=figures.uncorrected_latency_ms["p99"],
        throughput_rps=figures.throughput_rps,
        rows_per_s=figures.rows_per_s,
        error_rate=figures.error_rate,
        codes=figures.codes,
        send_lag_p99_ms=figures.send_lag_p99_ms,
        generator_workers=figures.workers,
        generator_cpu_cores=figures.generator_cpu_cores,
        server_p99_ms=server_p99,
    )


def _stream_trial(load: LoadTarget, rate: float, p99_limit_ms: float, timing: TrialTiming) -> Trial:
    run = run_stream(
        load.target,
        load.pool.method_path,
        load.pool.bodies,
        rate,
        timing.warmup_s,
        timing.measured_s,
        timing.timeout_ms / 1e3,
    )

    def pct(values, p: float) -> float | None:
        return float(np.percentile(values, p)) if values.size else None

    p99, lag = pct(run.latency_ms, 99), pct(run.send_lag_ms, 99)
    errors = run.scheduled - run.answered
    error_rate = errors / run.scheduled if run.scheduled else 1.0
    throughput = run.answered / run.measured_s
    checks = {
        f"p99 < {p99_limit_ms:g} ms": p99 is not None and p99 < p99_limit_ms,
        "error rate": error_rate <= MAX_ERROR_RATE,
        "throughput": throughput >= MIN_ANSWERED_SHARE * rate,
        "generator kept schedule": lag is not None and lag <= MAX_SEND_LAG_MS and run.sent == run.scheduled,
    }
    codes = {"OK": run.answered} | ({run.code if run.code != "OK" else "UNKNOWN": errors} if errors else {})
    return Trial(
        target=load.name,
        rate_rps=rate,
        sustained=all(checks.values()),
        failed_lines=[line for line, passed in checks.items() if not passed],
        p50_ms=pct(run.latency_ms, 50),
        p99_ms=p99,
        p999_ms=pct(run.latency_ms, 99.9),
        uncorrected_p99_ms=pct(run.uncorrected_ms, 99),
        throughput_rps=throughput,
        rows_per_s=throughput,
        error_rate=error_rate,
        codes=codes,
        send_lag_p99_ms=lag,
        generator_workers=1,
        generator_cpu_cores=run.cpu_cores,
        server_p99_ms=None,
    )


@dataclass
class Search:
    """A target's climb: every trial; a rate counts as sustained when any of its trials was."""

    load: LoadTarget
    trials: list[Trial] = field(default_factory=list)
    stopped_listening_after: float | None = None  # rate of the trial after which the port refused

    def record(self, trial: Trial) -> None:
        self.trials.append(trial)

    @property
    def best(self) -> Trial | None:
        """The best trial at the highest sustained rate."""
        passed = [t for t in self.trials if t.sustained]
        return max(passed, key=lambda t: (t.rate_rps, -(t.p99_ms or 0.0))) if passed else None

    @property
    def first_failure(self) -> Trial | None:
        """The lowest rate above the best where every trial failed."""
        floor = self.best.rate_rps if self.best else 0.0
        sustained = {t.rate_rps for t in self.trials if t.sustained}
        failed = [t for t in self.trials if t.rate_rps > floor and t.rate_rps not in sustained]
        return min(failed, key=lambda t: t.rate_rps) if failed else None

    @property
    def max_rate_rps(self) -> float | None:
        return self.best.rate_rps if self.best else None

    def as_dict(self) -> dict:
        failure = self.first_failure
        return {
            "target": self.load.name,
            "max_sustained_rps": self.max_rate_rps,
            "limited_by_generator": bool(failure and "generator kept schedule" in failure.failed_lines),
            "stopped_listening_after_rate": self.stopped_listening_after,
            "trials": [t.as_dict() for t in sorted(self.trials, key=lambda t: t.rate_rps)],
        }


def _try_rate(
    search: Search,
    rate: float,
    p99_limit_ms: float,
    timing: TrialTiming,
    retries: int,
    on_trial: Callable[[Trial], None],
) -> bool:
    """Run trials at `rate` until one is sustained or `1 + retries` failed (a noisy neighbour on the
    shared cores can spoil one short trial); True when sustained."""
    for _ in range(1 + retries):
        trial = run_trial(search.load, rate, p99_limit_ms, timing)
        search.record(trial)
        on_trial(trial)
        if trial.sustained:
            return True
        if trial.throughput_rps == 0 and not listening(search.load.target):
            search.stopped_listening_after = rate
            return False
    return False


def listening(target: str) -> bool:
    """Whether host:port still accepts a TCP connection (a server that stopped listening gets no more)."""
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def climb(
    loads: list[LoadTarget],
    ladder: list[float],
    p99_limit_ms: float,
    timing: TrialTiming,
    refine_steps: int,
    on_trial: Callable[[Trial], None],
    retries: int = 1,
) -> list[Search]:
    """Climb the shared ladder interleaved, then bisect each target's bracket `refine_steps` times."""
    searches = [Search(load) for load in loads]
    stopped: set[str] = set()
    for rate in ladder:
        climbing = [s for s in searches if s.load.name not in stopped]
        if not climbing:
            break
        for search in climbing:
            if search.stopped_listening_after is not None:
                stopped.add(search.load.name)
                continue
            if not _try_rate(search, rate, p99_limit_ms, timing, retries, on_trial):
                stopped.add(search.load.name)
    for search in searches:
        for _ in range(refine_steps):
            best, failure = search.best, search.first_failure
            if search.stopped_listening_after is not None or best is None or failure is None:
                break
            low, high = best.rate_rps, failure.rate_rps
            if high - low <= 0.05 * low:
                break
            _try_rate(search, round((low + high) / 2), p99_limit_ms, timing, 0, on_trial)
    return searches

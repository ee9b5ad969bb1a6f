"""Issue 5's goals, each judged as a ratio from one run's figures, and the markdown tables of that run."""

import statistics
from dataclasses import asdict, dataclass

from benchmarks.serving.openloop import Search, Trial

UNARY_P50_MAX_RATIO = 1.3
UNARY_P99_MAX_RATIO = 2.0
SUSTAINED_RATE_MIN_RATIO = 3.0
SAME_RATE_P99_MAX_RATIO = 1 / 3
BATCH_MIN_ROWS_PER_S = 50_000


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    measured: str
    ratio: float | None
    met: bool | None  # None: not measured in this run

    def as_dict(self) -> dict:
        return asdict(self)


def median(values: list[float]) -> float:
    return statistics.median(values)


def sequential_goals(echo_runs: list[dict], riskserve_runs: list[dict]) -> list[Goal]:
    """Riskserve unary Score vs the echo floor, medians of the interleaved repeats."""
    goals = []
    for key, limit in (("p50_us", UNARY_P50_MAX_RATIO), ("p99_us", UNARY_P99_MAX_RATIO)):
        floor = median([run[key] for run in echo_runs])
        ours = median([run[key] for run in riskserve_runs])
        ratio = ours / floor
        goals.append(
            Goal(
                f"unary Score {key[:3]} vs echo floor",
                f"<= {limit:g}x",
                f"{ours:.0f} µs vs {floor:.0f} µs = {ratio:.2f}x",
                ratio,
                ratio <= limit,
            )
        )
    return goals


def rate_goal(ours: Search, peer: Search | None) -> Goal:
    if peer is None or peer.max_rate_rps is None or ours.max_rate_rps is None:
        return Goal(
            "sustained rate (p99 < 10 ms) vs MLServer",
            f">= {SUSTAINED_RATE_MIN_RATIO:g}x",
            "not measured",
            None,
            None,
        )
    ratio = ours.max_rate_rps / peer.max_rate_rps
    return Goal(
        "sustained rate (p99 < 10 ms) vs MLServer",
        f">= {SUSTAINED_RATE_MIN_RATIO:g}x",
        f"{ours.load.name} {ours.max_rate_rps:g} req/s vs {peer.max_rate_rps:g} req/s = {ratio:.2f}x",
        ratio,
        ratio >= SUSTAINED_RATE_MIN_RATIO,
    )


def same_rate_goal(rate: float | None, ours: list[Trial], peer: list[Trial]) -> Goal:
    name = "p99 at MLServer's highest sustained rate"
    ours_p99 = [t.p99_ms for t in ours if t.p99_ms is not None]
    peer_p99 = [t.p99_ms for t in peer if t.p99_ms is not None]
    if rate is None or not ours_p99 or not peer_p99:
        return Goal(name, "<= 1/3 of MLServer's", "not measured", None, None)
    ratio = median(ours_p99) / median(peer_p99)
    return Goal(
        name,
        "<= 1/3 of MLServer's",
        f"at {rate:g} req/s: {median(ours_p99):.2f} ms vs {median(peer_p99):.2f} ms = {ratio:.2f}x",
        ratio,
        ratio <= SAME_RATE_P99_MAX_RATIO,
    )


def batch_goal(batch: Search, rows: int) -> Goal:
    name = f"ScoreBatch of {rows}, p99/call < 25 ms"
    if batch.best is None:
        return Goal(name, f">= {BATCH_MIN_ROWS_PER_S:,} transactions/s", "no rate sustained", 0.0, False)
    rows_per_s = batch.best.rows_per_s
    ratio = rows_per_s / BATCH_MIN_ROWS_PER_S
    return Goal(
        name,
        f">= {BATCH_MIN_ROWS_PER_S:,} transactions/s",
        f"{batch.load.name}: {rows_per_s:,.0f} transactions/s ({batch.best.rate_rps:g} calls/s, "
        f"p99 {batch.best.p99_ms:.1f} ms) = {ratio:.2f}x the goal",
        ratio,
        rows_per_s >= BATCH_MIN_ROWS_PER_S,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def goals_table(goals: list[Goal]) -> str:
    lines = ["| goal | target | measured (this run) | met |", "|---|---|---|---|"]
    for goal in goals:
        met = "n/a" if goal.met is None else ("yes" if goal.met else "**no**")
        lines.append(f"| {goal.name} | {goal.target} | {goal.measured} | {met} |")
    return "\n".join(lines)


def sequential_table(summary: dict[str, dict]) -> str:
    """summary: label -> {"p50_us": median, "p99_us": ..., "floor_label": ...}."""
    lines = [
        "| sequential, one connection | p50 µs | p90 µs | p99 µs | p99.9 µs | p50 / floor | p99 / floor "
        "| client CPU cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in summary.items():
        floor = summary.get(row["floor"]) if row.get("floor") else None
        p50_ratio = f"{row['p50_us'] / floor['p50_us']:.2f}x" if floor else "-"
        p99_ratio = f"{row['p99_us'] / floor['p99_us']:.2f}x" if floor else "-"
        lines.append(
            f"| {label} | {row['p50_us']:.0f} | {row['p90_us']:.0f} | {row['p99_us']:.0f} | "
            f"{row['p999_us']:.0f} | {p50_ratio} | {p99_ratio} | {row.get('client_cpu_cores', 0):.2f} |"
        )
    return "\n".join(lines)


def climb_table(searches: list[Search], unit: str = "req/s") -> str:
    """Every trial, by rate: client p50/p99 from intended send, server p99, generator CPU."""
    lines = [
        f"| target | rate {unit} | sustained | p50 ms | p99 ms | server p99 ms | answered/s | "
        "generator CPU cores | failed |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for search in searches:
        for trial in sorted(search.trials, key=lambda t: t.rate_rps):
            lines.append(
                f"| {trial.target} | {trial.rate_rps:g} | {'yes' if trial.sustained else 'no'} | "
                f"{_ms(trial.p50_ms)} | {_ms(trial.p99_ms)} | {_ms(trial.server_p99_ms)} | "
                f"{trial.throughput_rps:.0f} | {trial.generator_cpu_cores:.2f} | "
                f"{', '.join(trial.failed_lines) or '-'} |"
            )
    return "\n".join(lines)


def max_rates_table(searches: list[Search]) -> str:
    lines = [
        "| target | highest sustained rate | p99 there ms | generator CPU cores there |",
        "|---|---:|---:|---:|",
    ]
    for search in searches:
        best = search.best
        rate = "none" if best is None else f"{best.rate_rps:g}"
        if search.stopped_listening_after is not None:
            rate += f" (stopped accepting connections at {search.stopped_listening_after:g}/s)"
        lines.append(
            f"| {search.load.name} | {rate} | "
            f"{_ms(best.p99_ms if best else None)} | "
            f"{'-' if best is None else f'{best.generator_cpu_cores:.2f}'} |"
        )
    return "\n".join(lines)


# ---- "more calls per core": riskserve's own cost against the two floors and MLServer -------------------

CPU_PER_CALL_MAX_RATIO = 1.1
BULK_ROWS_MIN_RATIO = 0.8
STREAM_CAPACITY_MIN_RATIO = 2.5
FLOOR = "ORT-inline floor"
FLOOR_UVLOOP = "ORT-inline floor on uvloop"  # the same floor on riskserve's default event loop
ECHO = "echo floor"
METHOD_OF_KIND = {
    "score": "Score",
    "infer": "ModelInfer",
    "score_batch": "ScoreBatch",
    "score_batch_columns": "ScoreBatch (answer_layout COLUMNS)",
    "infer_batch": "ModelInfer",
    "stream": "ScoreStream",
}


def cpu_goals(unary: dict) -> list[Goal]:
    """riskserve's server CPU per unary call against the ORT-inline floor as defined (standard event loop)
    and against the same floor on uvloop, riskserve's loop: the second is riskserve's own work alone."""
    goals = []
    for kind, reference in (
        ("score", FLOOR),
        ("infer", FLOOR),
        ("score", FLOOR_UVLOOP),
        ("infer", FLOOR_UVLOOP),
    ):
        rows = unary.get(kind, {})
        name = f"server CPU per unary {METHOD_OF_KIND[kind]} vs {reference}"
        if "riskserve" not in rows or reference not in rows:
            goals.append(Goal(name, f"<= {CPU_PER_CALL_MAX_RATIO:g}x", "not measured", None, None))
            continue
        ours, floor = rows["riskserve"]["server_us_per_call"], rows[reference]["server_us_per_call"]
        ratio = ours / floor
        goals.append(
            Goal(
                name,
                f"<= {CPU_PER_CALL_MAX_RATIO:g}x",
                f"{ours:.0f} µs vs {floor:.0f} µs = {ratio:.2f}x",
                ratio,
                ratio <= CPU_PER_CALL_MAX_RATIO,
            )
        )
    return goals


def bulk_goals(bulk: dict, rows: int) -> list[Goal]:
    """Best rows/s over the concurrencies, riskserve vs the ORT-inline floor, per bulk kind."""
    goals = []
    for kind, floor_kind in (
        ("score_batch", "score_batch"),
        ("score_batch_columns", "score_batch"),
        ("infer_batch", "infer_batch"),
    ):
        name = f"{METHOD_OF_KIND[kind]} of {rows} rows, rows/s vs ORT-inline floor (best of c=1/2/4)"
        by_concurrency = bulk.get(kind, {})
        ours = [v["riskserve"]["rows_per_s"] for v in by_concurrency.values() if "riskserve" in v]
        floor = [v[FLOOR]["rows_per_s"] for v in bulk.get(floor_kind, {}).values() if FLOOR in v]
        if not ours or not floor:
            goals.append(Goal(name, f">= {BULK_ROWS_MIN_RATIO:g}x", "not measured", None, None))
            continue
        ratio = max(ours) / max(floor)
        goals.append(
            Goal(
                name,
                f">= {BULK_ROWS_MIN_RATIO:g}x",
                f"{max(ours):,.0f} vs {max(floor):,.0f} rows/s = {ratio:.2f}x",
                ratio,
                ratio >= BULK_ROWS_MIN_RATIO,
            )
        )
    return goals


def open_loop_unusable(floor: Search | None) -> str | None:
    """Why this run's open-loop trials cannot judge a server, or None. The ORT-inline floor's first trial at
    the ladder's lowest rate is the machine's own check: a bare server with nothing to queue that misses
    the p99 limit there shows the box's scheduling jitter reaching the generator, not any server's limit."""
    if floor is None or not floor.trials:
        return "the ORT-inline floor was not measured in open loop"
    first = floor.trials[0]
    if first.sustained:
        return None
    p99 = "no p99" if first.p99_ms is None else f"p99 {first.p99_ms:.1f} ms"
    return (
        f"not usable: the ORT-inline floor itself failed at {first.rate_rps:g} req/s ({p99}, "
        f"{', '.join(first.failed_lines) or 'failed'}): the box's jitter"
    )


def stream_goal(
    stream: Search | None, unary: Search | None, p99_ms: float, unusable: str | None = None
) -> Goal:
    name = f"ScoreStream vs unary Score, highest rate with p99 < {p99_ms:g} ms"
    if unusable:
        return Goal(name, f">= {STREAM_CAPACITY_MIN_RATIO:g}x", unusable, None, None)
    if stream is None or unary is None or not unary.max_rate_rps or not stream.max_rate_rps:
        return Goal(name, f">= {STREAM_CAPACITY_MIN_RATIO:g}x", "not measured", None, None)
    ratio = stream.max_rate_rps / unary.max_rate_rps
    limited = " (the generator's limit)" if "generator kept schedule" in (_first_failure(stream)) else ""
    return Goal(
        name,
        f">= {STREAM_CAPACITY_MIN_RATIO:g}x",
        f"{stream.max_rate_rps:g} vs {unary.max_rate_rps:g} msg/s = {ratio:.2f}x{limited}",
        ratio,
        ratio >= STREAM_CAPACITY_MIN_RATIO,
    )


def _first_failure(search: Search) -> list[str]:
    failure = search.first_failure
    return failure.failed_lines if failure else []


def cancelled_goal(searches: list[Search], unusable: str | None = None) -> Goal:
    """No CANCELLED answer in any riskserve trial at or below that target's highest sustained rate."""
    name = "no CANCELLED below the knee (riskserve, open loop)"
    if unusable:
        return Goal(name, "0 CANCELLED", unusable, None, None)
    cancelled = []
    for search in searches:
        if not search.load.name.startswith("riskserve") or search.best is None:
            continue
        for trial in search.trials:
            count = trial.codes.get("CANCELLED", 0)
            if trial.rate_rps <= search.best.rate_rps and count:
                cancelled.append(f"{trial.target} at {trial.rate_rps:g}/s: {count}")
    measured = "none" if not cancelled else "; ".join(cancelled)
    return Goal(name, "0 CANCELLED", measured, float(len(cancelled)), not cancelled)


def cost_table(unary: dict) -> str:
    lines = [
        "| server CPU per unary call (/proc, sequential) | µs/call | / echo floor | / ORT-inline floor | "
        "/ ORT-inline floor on uvloop | / MLServer | per repeat |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, rows in unary.items():
        echo = rows.get(ECHO, {}).get("server_us_per_call")
        floor = rows.get(FLOOR, {}).get("server_us_per_call")
        same_loop = rows.get(FLOOR_UVLOOP, {}).get("server_us_per_call")
        peer = next((v["server_us_per_call"] for k, v in rows.items() if k.startswith("MLServer")), None)
        for label, row in rows.items():
            us = row["server_us_per_call"]
            ratios = [f"{us / ref:.2f}x" if ref else "-" for ref in (echo, floor, same_loop, peer)]
            lines.append(
                f"| {label} {METHOD_OF_KIND[kind]} | {us:.0f} | {' | '.join(ratios)} | "
                f"{', '.join(f'{v:.0f}' for v in row['per_repeat_us_per_call'])} |"
            )
    return "\n".join(lines)


def bulk_table(bulk: dict, rows: int) -> str:
    lines = [
        f"| {rows} rows per call | concurrency | rows/s | / ORT-inline floor | server µs per row |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, by_concurrency in bulk.items():
        for concurrency, by_label in by_concurrency.items():
            floor = by_label.get(FLOOR, {}).get("rows_per_s")
            for label, row in by_label.items():
                ratio = f"{row['rows_per_s'] / floor:.2f}x" if floor else "-"
                lines.append(
                    f"| {label} {METHOD_OF_KIND[kind]} | {concurrency} | {row['rows_per_s']:,.0f} | "
                    f"{ratio} | {row['server_us_per_row']:.2f} |"
                )
    return "\n".join(lines)


def stream_cost_table(stream: dict, unary: dict) -> str:
    lines = [
        "| ScoreStream, one stream, 64 unanswered at most | messages/s | server µs per message | "
        "/ unary Score's µs per call |",
        "|---|---:|---:|---:|",
    ]
    for label, row in stream.items():
        score = unary.get("score", {}).get(label, {}).get("server_us_per_call")
        ratio = f"{row['server_us_per_call'] / score:.2f}x" if score else "-"
        lines.append(f"| {label} | {row['calls_per_s']:,.0f} | {row['server_us_per_call']:.0f} | {ratio} |")
    return "\n".join(lines)


def perf_analyzer_table(runs: list[dict], p99_ms: float) -> str:
    lines = [
        f"| perf_analyzer (ModelInfer, 1 row) | capacity: best inferences/s with p99 < {p99_ms:g} ms | "
        "per concurrency: inferences/s (p99 ms) | stopped by |",
        "|---|---:|---|---|",
    ]
    for run in runs:
        fits = [
            p["inferences_per_s"]
            for p in run["points"]
            if p["ok"] and p["p99_us"] is not None and p["p99_us"] < p99_ms * 1e3
        ]
        points = ", ".join(
            f"c{p['concurrency']}: {p['inferences_per_s']:.0f} ({p['p99_us'] / 1e3:.1f})"
            if p["ok"]
            else f"c{p['concurrency']}: failed"
            for p in run["points"]
        )
        capacity = f"{max(fits):,.0f}" if fits else "none"
        lines.append(f"| {run['target']} | {capacity} | {points} | {run['error'] or '-'} |")
    return "\n".join(lines)

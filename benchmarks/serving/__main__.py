"""Side-by-side serving benchmark: two floors (echo; grpc.aio + ONNX Runtime inline), riskserve, MLServer;
one invocation, 127.0.0.1.

    .venv/bin/python -m benchmarks.serving            # about 25 minutes
    .venv/bin/python -m benchmarks.serving --quick    # about 8 minutes, coarser

Every server runs as its own process for the whole run; the same request bytes (loadtest's request pools
built from the fraud holdout) go to each. Sequential latency uses one blocking grpcio channel, repeats
interleaved target by target; load uses the project's open-loop generator (loadtest/) at rising rates,
targets interleaved rate by rate. Server CPU per call comes from /proc (utime + stime of each server's
process tree), repeats interleaved; bulk rows/s at concurrency 1, 2 and 4; ScoreStream against unary
Score at p99 < 5 ms; perf_analyzer's capacity for every Open Inference Protocol target. Prints the tables,
writes results JSON and a markdown copy.
"""

import argparse
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import onnxruntime

from benchmarks.server_process import ServerProcess, ServerStartError
from benchmarks.serving import goals as g
from benchmarks.serving import perf_analyzer_phase as pa
from benchmarks.serving.cost_phase import CostTarget, run_costs
from benchmarks.serving.mlserver_peer import MLSERVER_VERSION, start_mlserver
from benchmarks.serving.openloop import LoadTarget, Search, Trial, TrialTiming, climb, run_trial
from benchmarks.serving.payloads import BATCH_ROWS, MODEL, Payloads, build_payloads
from benchmarks.serving.sequential import run_sequential
from benchmarks.serving.targets import (
    quantized_model,
    start_echo,
    start_ort_floor,
    start_riskserve,
    wait_listening,
    wait_model_ready,
)

HERE = Path(__file__).resolve().parent
UNARY_LADDER = [100, 200, 400, 700, 1000, 1400, 2000, 2800, 4000, 5600]
BATCH_LADDER = [50, 100, 150, 200, 250, 300, 400, 500, 700]
STREAM_LADDER = [400, 700, 1000, 1400, 2000, 2800, 4000, 5600, 8000, 11000]
UNARY_P99_MS = 10.0
BATCH_P99_MS = 25.0
STREAM_P99_MS = 5.0
OVERLOAD_FACTOR = 1.5  # the overload trial: this many times riskserve Score's highest sustained rate


@dataclass(frozen=True)
class Plan:
    sequential_calls: int
    sequential_repeats: int
    timing: TrialTiming
    refine_steps: int
    same_rate_repeats: int
    retries: int  # extra trials at a failed rate before a target stops climbing (neighbours' bursts)
    cost_calls: int  # unary calls per CPU-per-call repeat
    bulk_calls: int  # 256-row calls per bulk repeat
    stream_messages: int
    cost_repeats: int
    perf_analyzer_concurrency: tuple[int, ...]
    perf_analyzer_interval_ms: int


FULL = Plan(
    2000,
    3,
    TrialTiming(measured_s=4.0, warmup_s=1.0),
    refine_steps=2,
    same_rate_repeats=2,
    retries=2,
    cost_calls=2000,
    bulk_calls=200,
    stream_messages=6000,
    cost_repeats=5,
    perf_analyzer_concurrency=(1, 2, 4, 8, 16, 32),
    perf_analyzer_interval_ms=2000,
)
QUICK = Plan(
    800,
    3,
    TrialTiming(measured_s=2.0, warmup_s=0.5),
    refine_steps=1,
    same_rate_repeats=1,
    retries=1,
    cost_calls=800,
    bulk_calls=80,
    stream_messages=2000,
    cost_repeats=3,
    perf_analyzer_concurrency=(1, 4, 16),
    perf_analyzer_interval_ms=1000,
)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="shorter trials and fewer steps (~2-3 min)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=HERE / "work",
        help="logs, quantization cache, MLServer venv and model folder",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--markdown", type=Path, default=None, help="default: <work-dir>/results.md")
    parser.add_argument("--no-mlserver", action="store_true", help="skip the peer (no venv install)")
    parser.add_argument("--no-perf-analyzer", action="store_true", help="skip the perf_analyzer phase")
    parser.add_argument(
        "--mlserver-workers",
        type=int,
        default=1,
        help="MLServer parallel_workers (default 1, its own default; 0 = in-process)",
    )
    parser.add_argument(
        "--riskserve-workers",
        type=int,
        default=2,
        help="also measure `riskserve serve --workers N` (0 or 1: skip)",
    )
    return parser.parse_args(argv)


class Servers:
    """Starts every server up front and stops them all at the end, whatever happens."""

    def __init__(self) -> None:
        self.started: list[ServerProcess] = []

    def add(self, server: ServerProcess, ready: bool) -> ServerProcess | None:
        self.started.append(server)
        if not ready:
            log(f"{server.label} did not become ready; see {server.log_path}")
            server.stop()
            return None
        log(f"{server.label} ready on {server.target}")
        return server

    def add_riskserve(self, work: Path, cache: Path, workers: int | None = None) -> ServerProcess | None:
        try:
            server = start_riskserve(work, cache, workers)
        except ServerStartError as error:  # already stopped
            log(str(error))
            return None
        return self.add(server, True)

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()


def start_servers(args: argparse.Namespace, servers: Servers) -> dict[str, ServerProcess | None]:
    work, cache = args.work_dir, args.work_dir / "cache"
    echo = start_echo(work)
    found: dict[str, ServerProcess | None] = {
        "echo": servers.add(echo, wait_listening(echo)),
        "riskserve": servers.add_riskserve(work, cache),
    }
    if found["echo"] is None or found["riskserve"] is None:
        raise SystemExit("the echo floor and riskserve must both start")
    floor = start_ort_floor(work, quantized_model(cache, MODEL))  # riskserve's INT8 file, byte for byte
    found["ort_floor"] = servers.add(floor, wait_listening(floor))
    if found["ort_floor"] is None:
        raise SystemExit("the ORT-inline floor must start")
    same_loop = start_ort_floor(work, quantized_model(cache, MODEL), "uvloop")  # riskserve's default loop
    found["ort_floor_uvloop"] = servers.add(same_loop, wait_listening(same_loop))
    found["riskserve_workers"] = None
    if args.riskserve_workers > 1:
        found["riskserve_workers"] = servers.add_riskserve(work, cache, args.riskserve_workers)
    found["mlserver"] = None
    if not args.no_mlserver:
        onnx = quantized_model(cache, MODEL)  # riskserve's gated INT8 file, byte for byte
        peer = start_mlserver(work, MODEL, onnx, args.mlserver_workers)
        ready = wait_model_ready(peer, MODEL, timeout_s=120)
        if not ready and args.mlserver_workers > 0:
            peer.stop()
            log(
                f"MLServer with parallel_workers: {args.mlserver_workers} did not start; "
                "retrying with parallel_workers: 0"
            )
            args.mlserver_workers = 0
            peer = start_mlserver(work, MODEL, onnx, 0)
            ready = wait_model_ready(peer, MODEL, timeout_s=120)
        found["mlserver"] = servers.add(peer, ready)
    return found


def sequential_phase(targets: list[tuple[str, str, str, str | None]], payloads: Payloads, plan: Plan) -> dict:
    """(label, target, kind, floor label) run `repeats` times interleaved; medians per label."""
    runs: dict[str, list[dict]] = {label: [] for label, _, _, _ in targets}
    pools = payloads.pools()
    for repeat in range(plan.sequential_repeats):
        for label, target, kind, _ in targets:
            summary = run_sequential(target, pools[kind], plan.sequential_calls)
            runs[label].append(summary.as_dict())
            log(
                f"sequential {repeat + 1}/{plan.sequential_repeats} {label}: p50 {summary.p50_us} µs, "
                f"p99 {summary.p99_us} µs"
            )
    medians = {}
    for label, _, _, floor in targets:
        rows = runs[label]
        medians[label] = {
            key: g.median([r[key] for r in rows]) for key in ("p50_us", "p90_us", "p99_us", "p999_us")
        }
        medians[label]["floor"] = floor
        medians[label]["client_cpu_cores"] = g.median([r["client_cpu_s"] / r["seconds"] for r in rows])
    return {"runs": runs, "medians": medians}


def show(trial: Trial) -> None:
    verdict = "sustained" if trial.sustained else f"FAIL ({', '.join(trial.failed_lines)})"
    p99 = "-" if trial.p99_ms is None else f"{trial.p99_ms:.2f} ms"
    log(
        f"  {trial.target:<32} {trial.rate_rps:7g}/s  p99 {p99:>10}  "
        f"generator {trial.generator_cpu_cores:.2f} cores  {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    args.work_dir.mkdir(parents=True, exist_ok=True)
    markdown_path = args.markdown or args.work_dir / "results.md"
    started = time.monotonic()
    load_before = load_average()
    log("building request payloads from the fraud holdout (same bytes for every server)")
    payloads = build_payloads()
    servers = Servers()
    try:
        found = start_servers(args, servers)
        results = run_phases(found, payloads, plan, args)
    finally:
        servers.stop_all()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_1_5_15"] = {"before": load_before, "after": load_average()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    try:
        markdown = render_markdown(results, args)
    except Exception:
        markdown = f"rendering failed:\n{traceback.format_exc()}"
    markdown_path.write_text(markdown)
    print("\n" + markdown)
    log(f"results: {args.output}; markdown: {markdown_path}; {results['elapsed_s']:.0f} s")
    return 0


def run_phases(found: dict, payloads: Payloads, plan: Plan, args: argparse.Namespace) -> dict:
    echo, rs, multi, peer = found["echo"], found["riskserve"], found["riskserve_workers"], found["mlserver"]
    floor = found["ort_floor"]
    seq_targets = [
        ("echo floor Score", echo.target, "score", None),
        ("ORT-inline floor Score", floor.target, "score", "echo floor Score"),
        ("riskserve Score", rs.target, "score", "echo floor Score"),
        ("echo floor ModelInfer", echo.target, "infer", None),
        ("ORT-inline floor ModelInfer", floor.target, "infer", "echo floor ModelInfer"),
        ("riskserve ModelInfer", rs.target, "infer", "echo floor ModelInfer"),
    ]
    if multi:
        seq_targets.append((f"{multi.label} Score", multi.target, "score", "echo floor Score"))
    if peer:
        seq_targets.append(("MLServer ModelInfer", peer.target, "infer", "echo floor ModelInfer"))
    log("sequential unary calls, one connection, repeats interleaved")
    sequential = sequential_phase(seq_targets, payloads, plan)

    pools = payloads.pools()
    log("server CPU per call (/proc), bulk rows/s at concurrency 1/2/4, ScoreStream; repeats interleaved")
    cost_targets = [
        CostTarget(g.ECHO, echo.target, echo.pid, ("score", "infer")),
        CostTarget(g.FLOOR, floor.target, floor.pid, ("score", "infer", "score_batch", "infer_batch")),
        CostTarget(
            "riskserve",
            rs.target,
            rs.pid,
            ("score", "infer", "score_batch", "score_batch_columns", "infer_batch", "stream"),
        ),
    ]
    if same_loop := found["ort_floor_uvloop"]:
        cost_targets.insert(
            2, CostTarget(g.FLOOR_UVLOOP, same_loop.target, same_loop.pid, ("score", "infer"))
        )
    if multi:
        cost_targets.append(
            CostTarget(multi.label, multi.target, multi.pid, ("score", "infer", "score_batch"))
        )
    if peer:
        cost_targets.append(CostTarget("MLServer", peer.target, peer.pid, ("infer", "infer_batch")))
    costs = run_costs(
        cost_targets, pools, plan.cost_calls, plan.bulk_calls, plan.stream_messages, plan.cost_repeats, log
    )

    unary = [
        LoadTarget("ORT-inline floor Score", floor.target, "score", pools["score"]),
        LoadTarget("ORT-inline floor ModelInfer", floor.target, "infer", pools["infer"]),
        LoadTarget("riskserve Score", rs.target, "score", pools["score"], rs.metrics_url),
        LoadTarget("riskserve ModelInfer", rs.target, "infer", pools["infer"], rs.metrics_url),
    ]
    if multi:
        unary += [
            LoadTarget(f"{multi.label} Score", multi.target, "score", pools["score"], multi.metrics_url),
            LoadTarget(f"{multi.label} ModelInfer", multi.target, "infer", pools["infer"], multi.metrics_url),
        ]
    if peer:
        unary.append(LoadTarget("MLServer ModelInfer", peer.target, "infer", pools["infer"]))
    log(f"open loop, unary, rising rates (sustained: p99 < {UNARY_P99_MS:g} ms, <= 0.1 % errors)")
    unary_searches = climb(
        unary, UNARY_LADDER, UNARY_P99_MS, plan.timing, plan.refine_steps, show, plan.retries
    )
    by_name = {s.load.name: s for s in unary_searches}

    overload: dict = {"rate_rps": None, "trial": None}
    knee = by_name["riskserve Score"].max_rate_rps
    if knee:
        rate = round(knee * OVERLOAD_FACTOR)
        log(f"overload: riskserve Score at {OVERLOAD_FACTOR:g}x its highest sustained rate, {rate:g} req/s")
        trial = run_trial(unary[2], rate, UNARY_P99_MS, plan.timing)
        show(trial)
        overload = {"rate_rps": rate, "trial": trial.as_dict()}

    stream_loads = [
        LoadTarget("riskserve Score (p99 < 5 ms)", rs.target, "score", pools["score"], rs.metrics_url),
        LoadTarget("riskserve ScoreStream", rs.target, "stream", pools["stream"], rs.metrics_url),
    ]
    log(f"open loop, ScoreStream vs unary Score, rising rates (sustained: p99 < {STREAM_P99_MS:g} ms)")
    stream_searches = climb(
        stream_loads, STREAM_LADDER, STREAM_P99_MS, plan.timing, plan.refine_steps, show, plan.retries
    )

    peer_search = by_name.get("MLServer ModelInfer")
    same_rate: dict = {"rate_rps": None, "trials": {}}
    if peer_search and peer_search.max_rate_rps:
        rate = peer_search.max_rate_rps
        compared = [t for t in unary if t.kind == "infer"]
        log(f"same rate, ABAB: every ModelInfer target at MLServer's highest sustained rate, {rate:g} req/s")
        trials: dict[str, list[Trial]] = {t.name: [] for t in compared}
        for _ in range(plan.same_rate_repeats):
            for load in compared:
                trial = run_trial(load, rate, UNARY_P99_MS, plan.timing)
                trials[load.name].append(trial)
                show(trial)
        same_rate = {"rate_rps": rate, "trials": {k: [t.as_dict() for t in v] for k, v in trials.items()}}

    batch = [
        LoadTarget(
            f"riskserve ScoreBatch[{BATCH_ROWS}]",
            rs.target,
            "score_batch",
            pools["score_batch"],
            rs.metrics_url,
        )
    ]
    if multi:
        batch.append(
            LoadTarget(
                f"{multi.label} ScoreBatch[{BATCH_ROWS}]",
                multi.target,
                "score_batch",
                pools["score_batch"],
                multi.metrics_url,
            )
        )
    log(f"open loop, ScoreBatch of {BATCH_ROWS}, rising rates (sustained: p99/call < {BATCH_P99_MS:g} ms)")
    batch_searches = climb(
        batch, BATCH_LADDER, BATCH_P99_MS, plan.timing, plan.refine_steps, show, plan.retries
    )

    perf_runs = []
    if not args.no_perf_analyzer:
        data = pa.input_data(pools["infer"].bodies[0], args.work_dir / "perf-input.json")
        oip = [(g.ECHO, echo), (g.FLOOR, floor), ("riskserve", rs)]
        oip += [(multi.label, multi)] if multi else []
        oip += [("MLServer", peer)] if peer else []
        for label, server in oip:
            log(f"perf_analyzer {label}: concurrency {', '.join(map(str, plan.perf_analyzer_concurrency))}")
            run = pa.sweep(
                label,
                server.target,
                data,
                list(plan.perf_analyzer_concurrency),
                plan.perf_analyzer_interval_ms,
                args.work_dir,
            )
            log(f"  capacity {run.capacity(UNARY_P99_MS)}; {run.error or 'no error'}")
            perf_runs.append(run.as_dict())

    try:  # a judging bug must not lose the run's figures
        goal_list = judge(sequential, by_name, same_rate, batch_searches, multi)
        streams = {s.load.name: s for s in stream_searches}
        goal_list += g.cpu_goals(costs["unary"])
        goal_list += g.bulk_goals(costs["bulk"], BATCH_ROWS)
        unusable = g.open_loop_unusable(by_name.get("ORT-inline floor Score"))
        goal_list.append(
            g.stream_goal(
                streams.get("riskserve ScoreStream"),
                streams.get("riskserve Score (p99 < 5 ms)"),
                STREAM_P99_MS,
                unusable,
            )
        )
        goal_list.append(g.cancelled_goal(unary_searches + stream_searches, unusable))
    except Exception:
        log(f"judging the goals failed:\n{traceback.format_exc()}")
        goal_list = []
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.serving" + (" --quick" if args.quick else ""),
        "machine": {
            "cpus": _cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "grpcio": grpc.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "servers": {k: (v.label if v else None) for k, v in found.items()},
        "mlserver": {"version": MLSERVER_VERSION, "parallel_workers": args.mlserver_workers}
        if peer
        else None,
        "plan": {
            "sequential_calls": plan.sequential_calls,
            "sequential_repeats": plan.sequential_repeats,
            "trial_measured_s": plan.timing.measured_s,
            "trial_warmup_s": plan.timing.warmup_s,
            "unary_ladder": UNARY_LADDER,
            "batch_ladder": BATCH_LADDER,
            "stream_ladder": STREAM_LADDER,
            "cost_calls": plan.cost_calls,
            "cost_repeats": plan.cost_repeats,
        },
        "sequential": sequential,
        "unary_load": [s.as_dict() for s in unary_searches],
        "same_rate": same_rate,
        "batch_load": [s.as_dict() for s in batch_searches],
        "costs": costs,
        "overload": overload,
        "stream_load": [s.as_dict() for s in stream_searches],
        "perf_analyzer": perf_runs,
        "goals": [goal.as_dict() for goal in goal_list],
    }


def _cpu_count() -> int:
    return os.cpu_count() or 0


def judge(
    sequential: dict,
    by_name: dict[str, Search],
    same_rate: dict,
    batch: list[Search],
    multi: ServerProcess | None,
) -> list[g.Goal]:
    runs = sequential["runs"]
    goal_list = g.sequential_goals(runs["echo floor Score"], runs["riskserve Score"])
    peer = by_name.get("MLServer ModelInfer")
    candidates = [by_name["riskserve ModelInfer"]]
    if multi:
        candidates.append(by_name[f"{multi.label} ModelInfer"])
    best = max(candidates, key=lambda s: s.max_rate_rps or 0.0)
    goal_list.append(g.rate_goal(best, peer))
    rate = same_rate["rate_rps"]
    if rate is not None:
        ours_name = best.load.name
        ours = [Trial(**t) for t in same_rate["trials"].get(ours_name, [])]
        theirs = [Trial(**t) for t in same_rate["trials"].get("MLServer ModelInfer", [])]
        goal_list.append(g.same_rate_goal(rate, ours, theirs))
    else:
        goal_list.append(g.same_rate_goal(None, [], []))
    best_batch = max(batch, key=lambda s: s.best.rows_per_s if s.best else 0.0)
    goal_list.append(g.batch_goal(best_batch, BATCH_ROWS))
    return goal_list


def render_markdown(results: dict, args: argparse.Namespace) -> str:
    def searches(key: str) -> list[Search]:
        return [_search_from_dict(d) for d in results[key]]

    goals = [g.Goal(**d) for d in results["goals"]]
    unary, batch = searches("unary_load"), searches("batch_load")
    streams = searches("stream_load") if "stream_load" in results else []
    costs = results.get("costs", {})
    parts = [
        f"Run {results['generated_at']}, `{results['command']}`, {results['machine']['cpus']} cores shared "
        f"by servers, generator and other work; {results['elapsed_s']:.0f} s; load average (1/5/15 min) "
        f"{results['machine']['load_average_1_5_15']['before']} before, "
        f"{results['machine']['load_average_1_5_15']['after']} after.",
        "",
        g.goals_table(goals),
        "",
        g.sequential_table(results["sequential"]["medians"]),
        "",
        g.cost_table(costs.get("unary", {})),
        "",
        g.bulk_table(costs.get("bulk", {}), BATCH_ROWS),
        "",
        g.stream_cost_table(costs.get("stream", {}), costs.get("unary", {})),
        "",
        g.max_rates_table(unary + streams + batch),
        "",
        g.perf_analyzer_table(results.get("perf_analyzer", []), UNARY_P99_MS),
        "",
        _overload_line(results.get("overload", {})),
        "",
        "<details><summary>every open-loop trial</summary>",
        "",
        g.climb_table(unary),
        "",
        g.climb_table(streams, unit="msg/s"),
        "",
        g.climb_table(batch, unit="calls/s"),
        "",
        "</details>",
        "",
    ]
    same = results["same_rate"]
    if same["rate_rps"] is not None:
        parts += [f"Same rate ({same['rate_rps']:g} req/s, MLServer's highest sustained), ABAB:", ""]
        for name, trials in same["trials"].items():
            p99s = ", ".join(f"{t['p99_ms']:.2f}" for t in trials if t["p99_ms"] is not None)
            parts.append(f"- {name}: p99 {p99s} ms")
        parts.append("")
    return "\n".join(parts)


def _overload_line(overload: dict) -> str:
    trial = overload.get("trial")
    if not trial:
        return "Overload trial: not run (no sustained riskserve Score rate)."
    codes = ", ".join(f"{k} {v}" for k, v in sorted(trial["codes"].items()))
    return (
        f"Overload trial: riskserve Score at {overload['rate_rps']:g} req/s ({OVERLOAD_FACTOR:g}x its "
        f"highest sustained rate): {trial['throughput_rps']:.0f} OK/s, answers by code: {codes}."
    )


def _search_from_dict(data: dict) -> Search:
    trials = [Trial(**t) for t in data["trials"]]
    name = data["target"]
    search = Search(LoadTarget(name, "", "", None, None), trials)  # type: ignore[arg-type]
    search.stopped_listening_after = data.get("stopped_listening_after_rate")
    return search


if __name__ == "__main__":
    sys.exit(main())

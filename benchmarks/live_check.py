"""What the live check costs the served calls: sequential FraudScoring.Score against the bundled fraud model
(INT8) with live_check_sample_rate 0, 0.01 and 0.1, side by side.

    .venv/bin/python -m benchmarks.live_check                 # about 2 minutes on 2 shared cores
    .venv/bin/python -m benchmarks.live_check --calls 3000 --repeats 5 --output results.json

One `riskserve serve` process per rate, all up for the whole run; rounds interleave the rates (the order
rotating each round), so a noisy neighbour hits every rate alike. Per run: client-side p50 / p99 of one
blocking caller and the server's CPU per call (utime + stime of its process tree, the FP32 thread
included, and that thread's own CPU per call from /proc/<pid>/task: the part of the cost that wall-clock
noise cannot hide). Medians over the rounds, and ratios against rate 0; the servers' RSS and the live
check's own counters (rows compared, rows dropped) at the end.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.server_process import RiskServe
from benchmarks.serving.cpu_cost import process_tree_cpu_s
from benchmarks.serving.payloads import mix_entry
from benchmarks.serving.sequential import run_sequential
from loadtest.request_bodies import build_pool
from server.config.paths import BUNDLED_MODELS_DIR
from server.monitoring.shadow import THREAD_NICENESS

RATES = (0.0, 0.01, 0.1)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _live_thread_cpu_s(pid: int) -> float:
    """CPU seconds so far of the server's live-check threads: the threads at niceness THREAD_NICENESS
    (Python 3.11 gives its threads no OS name to find them by)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[16]) == THREAD_NICENESS:  # field 19 of stat, `nice`
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _counter(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _scrape(server: RiskServe) -> str:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as page:
        return page.read().decode()


def run(calls: int, repeats: int, cache_dir: Path) -> dict:
    pool = build_pool(mix_entry("score"))
    load_avg_start = os.getloadavg()[0]
    servers = {}
    for rate in RATES:
        settings = {"models": "fraud", "live_check_sample_rate": rate, "drain_pause_s": 0}
        servers[rate] = RiskServe(
            models_dir=BUNDLED_MODELS_DIR, cache_dir=cache_dir, settings=settings
        ).start()
    try:
        for server in servers.values():  # warm every server before any measured round
            run_sequential(server.target, pool, 300, warmup_calls=0)
        runs: dict[float, list[dict]] = {rate: [] for rate in RATES}
        for round_index in range(repeats):
            for rate in RATES[round_index % len(RATES) :] + RATES[: round_index % len(RATES)]:
                server = servers[rate]
                cpu0, live0 = process_tree_cpu_s(server.pid), _live_thread_cpu_s(server.pid)
                latency = run_sequential(server.target, pool, calls, warmup_calls=0)
                time.sleep(0.2)  # let the FP32 thread finish this run's sample before reading the CPU
                cpu_us = (process_tree_cpu_s(server.pid) - cpu0) / calls * 1e6
                live_us = (_live_thread_cpu_s(server.pid) - live0) / calls * 1e6
                runs[rate].append(
                    {"p50_us": latency.p50_us, "p99_us": latency.p99_us, "server_cpu_us": cpu_us}
                    | {"live_cpu_us": live_us}
                )
        results = {
            "calls_per_run": calls,
            "repeats": repeats,
            "load_avg_start": load_avg_start,
            "rates": {},
        }
        for rate, measured in runs.items():
            text = _scrape(servers[rate])
            results["rates"][str(rate)] = {
                key: statistics.median(r[key] for r in measured)
                for key in ("p50_us", "p99_us", "server_cpu_us", "live_cpu_us")
            } | {
                "rss_mib": _rss_mib(servers[rate].pid),
                "rows_compared": _counter(text, "riskserve_live_check_rows_total"),
                "rows_dropped": _counter(text, "riskserve_live_check_dropped_rows_total"),
                "runs": measured,
            }
        results["load_avg_end"] = os.getloadavg()[0]
        return results
    finally:
        for server in servers.values():
            server.stop()


def print_table(results: dict) -> None:
    base = results["rates"]["0.0"]
    print(
        f"{results['repeats']} rounds x {results['calls_per_run']} sequential Score calls, bundled fraud "
        f"INT8; load average {results['load_avg_start']:.2f} -> {results['load_avg_end']:.2f}"
    )
    print(
        "rate   p50 us  (x)     p99 us  (x)     CPU us/call (x)   of it FP32 thread  RSS MiB  compared  "
        "dropped"
    )
    for rate, row in results["rates"].items():
        print(
            f"{float(rate):<5g}  {row['p50_us']:6.0f} ({row['p50_us'] / base['p50_us']:.2f})  "
            f"{row['p99_us']:6.0f} ({row['p99_us'] / base['p99_us']:.2f})  "
            f"{row['server_cpu_us']:7.1f} ({row['server_cpu_us'] / base['server_cpu_us']:.2f})   "
            f"{row['live_cpu_us']:10.1f}        "
            f"{row['rss_mib']:7.1f}  {row['rows_compared']:8.0f}  {row['rows_dropped']:7.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per run")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, the rates interleaved in each")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="quantization cache (default: a temp dir)"
    )
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="riskserve-live-bench-") as scratch:
        results = run(args.calls, args.repeats, args.cache_dir or Path(scratch))
    print_table(results)
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""What shadow scoring costs the served calls, side by side: sequential FraudScoring.Score against one
`riskserve serve` process per variant (a sample rate of the live check, with or without a challenger), all
up for the whole run; rounds interleave the variants (the order rotating each round), so a noisy neighbour
hits every variant alike. Used by benchmarks/live_check.py and benchmarks/challenger.py.

Per run: client-side p50 / p99 of one blocking caller and the server's CPU per call (utime + stime of its
process tree, shadow threads included, and the shadow threads' own CPU per call from /proc/<pid>/task: the
part of the cost that wall-clock noise cannot hide). Medians over the rounds, ratios against the first
variant; the servers' RSS and the named counters (rows compared, rows dropped) at the end.
"""

import os
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.server_process import RiskServe
from benchmarks.serving.cpu_cost import process_tree_cpu_s
from benchmarks.serving.payloads import mix_entry
from benchmarks.serving.sequential import run_sequential
from loadtest.request_bodies import build_pool
from server.monitoring.shadow import THREAD_NICENESS


@dataclass(frozen=True)
class Variant:
    """One server of the comparison: its models folder and settings."""

    models_dir: Path
    settings: dict[str, object] = field(default_factory=dict)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def shadow_thread_cpu_s(pid: int) -> float:
    """CPU seconds so far of the server's shadow-scoring threads: the threads at niceness THREAD_NICENESS
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


def counter_total(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _scrape(server: RiskServe) -> str:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as page:
        return page.read().decode()


def run(
    variants: dict[str, Variant], calls: int, repeats: int, cache_dir: Path, counters: dict[str, str]
) -> dict:
    """Interleaved rounds over `variants`; `counters`: result key -> metric summed at the end."""
    pool = build_pool(mix_entry("score"))
    load_avg_start = os.getloadavg()[0]
    names = list(variants)
    servers = {}
    try:
        for name, variant in variants.items():
            settings = {"drain_pause_s": 0, **variant.settings}
            servers[name] = RiskServe(
                models_dir=variant.models_dir, cache_dir=cache_dir, settings=settings
            ).start()
        for server in servers.values():  # warm every server before any measured round
            run_sequential(server.target, pool, 300, warmup_calls=0)
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for round_index in range(repeats):
            for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
                server = servers[name]
                cpu0, shadow0 = process_tree_cpu_s(server.pid), shadow_thread_cpu_s(server.pid)
                latency = run_sequential(server.target, pool, calls, warmup_calls=0)
                time.sleep(0.2)  # let the shadow thread finish this run's sample before reading the CPU
                cpu_us = (process_tree_cpu_s(server.pid) - cpu0) / calls * 1e6
                shadow_us = (shadow_thread_cpu_s(server.pid) - shadow0) / calls * 1e6
                runs[name].append(
                    {"p50_us": latency.p50_us, "p99_us": latency.p99_us, "server_cpu_us": cpu_us}
                    | {"shadow_cpu_us": shadow_us}
                )
        results = {
            "calls_per_run": calls,
            "repeats": repeats,
            "load_avg_start": load_avg_start,
            "variants": {},
        }
        for name, measured in runs.items():
            text = _scrape(servers[name])
            results["variants"][name] = {
                key: statistics.median(r[key] for r in measured)
                for key in ("p50_us", "p99_us", "server_cpu_us", "shadow_cpu_us")
            } | {
                "rss_mib": rss_mib(servers[name].pid),
                **{key: counter_total(text, metric) for key, metric in counters.items()},
                "runs": measured,
            }
        results["load_avg_end"] = os.getloadavg()[0]
        return results
    finally:
        for server in servers.values():
            server.stop()


def print_table(results: dict, title: str) -> None:
    variants = results["variants"]
    base = next(iter(variants.values()))
    print(
        f"{results['repeats']} rounds x {results['calls_per_run']} sequential Score calls, {title}; "
        f"load average {results['load_avg_start']:.2f} -> {results['load_avg_end']:.2f}"
    )
    print(
        f"{'variant':<22} p50 us  (x)     p99 us  (x)     CPU us/call (x)   of it shadow thread  RSS MiB  "
        "compared  dropped"
    )
    for name, row in variants.items():
        print(
            f"{name:<22} {row['p50_us']:6.0f} ({row['p50_us'] / base['p50_us']:.2f})  "
            f"{row['p99_us']:6.0f} ({row['p99_us'] / base['p99_us']:.2f})  "
            f"{row['server_cpu_us']:7.1f} ({row['server_cpu_us'] / base['server_cpu_us']:.2f})   "
            f"{row['shadow_cpu_us']:10.1f}          "
            f"{row['rss_mib']:7.1f}  {row['rows_compared']:8.0f}  {row['rows_dropped']:7.0f}"
        )

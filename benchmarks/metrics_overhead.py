"""Hot-path cost of recording one RPC's metrics, side by side with prometheus_client's own Histogram.

    .venv/bin/python benchmarks/metrics_overhead.py [--calls 100000] [--repeats 7] [--json out.json]

Prints the median µs per call over the repeats for:
  riskserve_full      ServingMetrics.observe_call with total, queue and inference (3 histograms + HDR window)
  riskserve_total     observe_call with the total only (1 histogram + HDR window)
  prom_client_labels  three prometheus_client Histograms (same 47 buckets), .labels(...).observe() each
  prom_client_child   same, children resolved once beforehand (its best case)
and the ratio of each to riskserve_full. Then the cost of one scrape (merge + text exposition) of a
realistic state: 6 model/method pairs x 3 status codes, 2,000 calls each, in one process.
"""

import argparse
import json
import statistics
import time

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from server.metrics import ServingMetrics
from server.metrics.buckets import LATENCY_BUCKETS_S

LABELS = (("fraud", "Score", "OK"), ("fraud", "ScoreBatch", "OK"), ("credit", "Assess", "OK"))


def _latencies(calls: int) -> np.ndarray:
    return np.random.default_rng(7).lognormal(mean=np.log(6e-4), sigma=0.5, size=calls).tolist()


def bench_riskserve(calls: int, phases: bool) -> float:
    metrics = ServingMetrics()
    values = _latencies(calls)
    labels = LABELS
    try:
        start = time.perf_counter()
        if phases:
            for i, v in enumerate(values):
                model, method, code = labels[i % 3]
                metrics.observe_call(model, method, code, v, v * 0.1, v * 0.05)
        else:
            for i, v in enumerate(values):
                model, method, code = labels[i % 3]
                metrics.observe_call(model, method, code, v)
        return (time.perf_counter() - start) / calls
    finally:
        metrics.close()


def bench_prometheus_client(calls: int, resolve_children: bool) -> float:
    registry = CollectorRegistry()
    names = ("request", "queue", "inference")
    histograms = [
        Histogram(
            f"bench_{n}_seconds", n, ("model", "method", "code"), buckets=LATENCY_BUCKETS_S, registry=registry
        )
        for n in names
    ]
    values = _latencies(calls)
    if resolve_children:
        children = [[h.labels(*labels) for h in histograms] for labels in LABELS]
        start = time.perf_counter()
        for i, v in enumerate(values):
            total, queue, inference = children[i % 3]
            total.observe(v)
            queue.observe(v * 0.1)
            inference.observe(v * 0.05)
    else:
        total_h, queue_h, inference_h = histograms
        start = time.perf_counter()
        for i, v in enumerate(values):
            model, method, code = LABELS[i % 3]
            total_h.labels(model, method, code).observe(v)
            queue_h.labels(model, method, code).observe(v * 0.1)
            inference_h.labels(model, method, code).observe(v * 0.05)
    return (time.perf_counter() - start) / calls


SCRAPE_KEYS = [("fraud", m) for m in ("Score", "ScoreBatch", "ScoreStream", "ModelInfer")] + [
    ("credit", m) for m in ("Assess", "ModelInfer")
]


def bench_scrape(repeats: int) -> tuple[float, int]:
    """Median seconds per scrape and the size of the exposition text."""
    metrics = ServingMetrics()
    try:
        values = _latencies(2_000)
        for model, method in SCRAPE_KEYS:
            for code in ("OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"):
                for v in values:
                    metrics.observe_call(model, method, code, v, v * 0.1, v * 0.05)
        timings, size = [], 0
        for _ in range(repeats):
            start = time.perf_counter()
            size = len(generate_latest(metrics.registry))
            timings.append(time.perf_counter() - start)
        return statistics.median(timings), size
    finally:
        metrics.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    cases = {
        "riskserve_full": lambda: bench_riskserve(args.calls, phases=True),
        "riskserve_total": lambda: bench_riskserve(args.calls, phases=False),
        "prom_client_labels": lambda: bench_prometheus_client(args.calls, resolve_children=False),
        "prom_client_child": lambda: bench_prometheus_client(args.calls, resolve_children=True),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every case alike
        for name, case in cases.items():
            samples[name].append(case())
    medians_us = {name: statistics.median(s) * 1e6 for name, s in samples.items()}
    reference = medians_us["riskserve_full"]
    print(f"{'case':<20} {'median µs/call':>15} {'vs riskserve_full':>18}")
    for name, value in medians_us.items():
        print(f"{name:<20} {value:>15.2f} {value / reference:>17.2f}x")
    scrape_s, scrape_bytes = bench_scrape(args.repeats)
    print(f"scrape (merge + exposition): {scrape_s * 1e3:.1f} ms median, {scrape_bytes / 1024:.0f} KiB")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "calls": args.calls,
                    "repeats": args.repeats,
                    "median_us_per_call": medians_us,
                    "scrape_ms": scrape_s * 1e3,
                    "scrape_bytes": scrape_bytes,
                },
                out,
                indent=2,
            )


if __name__ == "__main__":
    main()

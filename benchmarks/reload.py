"""p99 of open-loop unary Score before vs during a model reload, side by side in one run.

One `riskserve serve` (fraud only, ModelAdmin on) with the bundled fraud model as version 1 of a
versioned folder. Each repeat adds a new version (the bundled model with `quantization.calibration_rows`
lowered by one, so its cache key misses: a cold quantize + gate in the background process, as a new model
gets) and runs one open loop of unary Score at `--rate`: `--before-s` seconds, then ModelAdmin.Reload
while the same loop runs on until the reload answers. Latency is from each call's intended send (no
coordinated omission); "before" is the window before the reload (its first second left out), "during"
the reload's own window. The table gives each repeat and the medians.

    python -m benchmarks.reload [--rate 300] [--repeats 3] [--before-s 10] [--json PATH]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import yaml

from benchmarks.reliability.openloop import Record, open_loop, settle_gc
from benchmarks.reliability.payloads import SCORE, holdout_transactions, unary
from benchmarks.server_process import RiskServe, free_port
from loadtest.open_loop import precise_timer_loop
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.config.paths import BUNDLED_MODELS_DIR

TIMEOUT_S = 2.0
WARMUP_S = 1.0  # of the "before" window, not counted


def add_version(model_dir: Path, version: str, calibration_rows: int) -> None:
    """The bundled fraud model as `model_dir/<version>/`, with a calibration size of its own."""
    folder = model_dir / version
    shutil.copytree(BUNDLED_MODELS_DIR / "fraud", folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["version"] = version
    config.setdefault("quantization", {})["calibration_rows"] = calibration_rows
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def p99_ms(records: list[Record]) -> float | None:
    latencies = [r.latency_s for r in records if r.code is grpc.StatusCode.OK]
    return float(np.percentile(latencies, 99) * 1e3) if latencies else None


async def one_repeat(
    server: RiskServe, admin: str, bodies: list[bytes], rate: float, before_s: float
) -> dict:
    window: dict[str, float] = {}
    outcome: dict[str, str] = {}

    async def reload_later() -> None:
        await asyncio.sleep(before_s)
        async with grpc.aio.insecure_channel(admin) as channel:
            window["start"] = time.monotonic()
            answer = await scoring_pb2_grpc.ModelAdminStub(channel).Reload(
                scoring_pb2.ReloadRequest(model="fraud"), timeout=900
            )
            window["end"] = time.monotonic()
        status = answer.models[0]
        outcome.update(outcome=status.outcome, version=status.serving.version, reason=status.kept_out_reason)

    async with grpc.aio.insecure_channel(server.target) as channel:
        reloading = asyncio.create_task(reload_later())
        run = await open_loop(
            unary(channel, SCORE), bodies, rate, before_s + 900, TIMEOUT_S, lambda now: "end" not in window
        )
        records = await run.finish()
        await reloading
    before = [r for r in records if run.start + WARMUP_S <= r.intended < window["start"]]
    during = [r for r in records if window["start"] <= r.intended < window["end"]]
    return {
        **outcome,
        "reload_s": window["end"] - window["start"],
        "before_p99_ms": p99_ms(before),
        "during_p99_ms": p99_ms(during),
        "before_calls": len(before),
        "during_calls": len(during),
        "failed_calls": sum(r.code is not grpc.StatusCode.OK for r in records),
        "failed_before": dict(Counter(r.code.name for r in before if r.code is not grpc.StatusCode.OK)),
        "failed_during": dict(Counter(r.code.name for r in during if r.code is not grpc.StatusCode.OK)),
        # where in the reload the tail is: p99 of each second of it
        "during_p99_ms_by_second": [
            p99_ms([r for r in during if second <= r.intended - window["start"] < second + 1])
            for second in range(int(window["end"] - window["start"]) + 1)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=300.0, help="unary Score calls per second")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before-s", type=float, default=10.0, help="load before each reload starts")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="riskserve-reload-bench-"))
    try:
        models = scratch / "models"
        add_version(models / "fraud", "1", 2000)
        admin_port = free_port()
        settings = {"models": "fraud", "admin_enabled": "true", "admin_port": admin_port, "drain_pause_s": 0}
        bodies = [t.SerializeToString() for t in holdout_transactions(2000, seed=7)]
        settle_gc()
        load_average = os.getloadavg()[0]
        results = []
        with RiskServe(models_dir=models, cache_dir=scratch / "cache", settings=settings) as server:
            for repeat in range(args.repeats):
                add_version(models / "fraud", str(repeat + 2), 2000 - repeat - 1)
                with asyncio.Runner(loop_factory=precise_timer_loop) as runner:
                    results.append(
                        runner.run(
                            one_repeat(server, f"127.0.0.1:{admin_port}", bodies, args.rate, args.before_s)
                        )
                    )
                print(json.dumps(results[-1]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    medians = {
        key: statistics.median(r[key] for r in results)
        for key in ("before_p99_ms", "during_p99_ms", "reload_s")
        if all(r[key] is not None for r in results)
    }
    print(f"\nrate {args.rate:g}/s, {args.repeats} repeats, load average at start {load_average:.2f}")
    print("| repeat | p99 before (ms) | p99 during (ms) | reload (s) | outcome | failed before / during |")
    print("|---|---|---|---|---|---|")
    for index, r in enumerate(results, 1):
        print(
            f"| {index} | {r['before_p99_ms']:.2f} | {r['during_p99_ms']:.2f} | {r['reload_s']:.1f} | "
            f"{r['outcome']} v{r['version']} | {r['failed_before'] or 0} / {r['failed_during'] or 0} |"
        )
    keys = ("before_p99_ms", "during_p99_ms", "reload_s")
    before, during, seconds = (medians.get(k, float("nan")) for k in keys)
    print(f"| median | {before:.2f} | {during:.2f} | {seconds:.1f} | | |")
    if args.json is not None:
        summary = {"rate": args.rate, "load_average": load_average, "repeats": results, "medians": medians}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

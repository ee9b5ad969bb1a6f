"""What the shipped Grafana dashboard's "INT8 vs FP32 on live traffic" row reads for a real server: riskserve
on the bundled fraud model (INT8), Debian's real Prometheus scraping it with the shipped config and rules, and
each of the row's panel queries (the dashboard's own PromQL, as Grafana sends it) evaluated through
Prometheus' HTTP API after each phase of open-loop traffic:

  1. holdout-like: the holdout file's transactions, as the model was gated on;
  2. drifted: the same transactions, a third of them turned into a card-not-present campaign (ecommerce,
     manual entry, a new device, a new merchant): the traffic moves off the holdout, and the live check
     shows whether INT8 still tracks FP32 there.

The live check samples `--sample-rate` of the calls (the default 0.01 needs minutes for a readable window;
0.2 fills one in seconds) over a `--window-s` window. Also printed: the alerts Prometheus has pending or
firing. This is a readout, not a speed figure: the load generator shares the machine with the server.

    .venv/bin/python -m benchmarks.dashboard_readout                    # about 2 minutes
    .venv/bin/python -m benchmarks.dashboard_readout --rate 300 --phase-s 60 --output readout.json
"""

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd

from benchmarks.server_process import RiskServe
from loadtest.request_bodies import read_rows, transactions
from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.config.paths import BUNDLED_MODELS_DIR
from tests.metrics.dashboard_queries import DASHBOARD, as_sent_by_grafana
from tests.metrics.prometheus_server import running_prometheus

ROW_TITLE = "INT8 vs FP32 on live traffic"
HOLDOUT = BUNDLED_MODELS_DIR / "fraud" / "holdout.parquet"
CAMPAIGN = {"channel": "ecommerce", "entry_mode": "manual", "is_new_device": 1, "is_new_merchant": 1}
CAMPAIGN_SHARE = 1 / 3


def row_panels(title: str = ROW_TITLE) -> list[dict]:
    """The dashboard's panels under the row `title` (up to the next row)."""
    panels, inside = [], False
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel.get("type") == "row":
            inside = panel.get("title") == title
        elif inside:
            panels.append(panel)
    return panels


def drifted(frame: pd.DataFrame) -> pd.DataFrame:
    moved = frame.copy()
    hit = np.random.default_rng(0).random(len(moved)) < CAMPAIGN_SHARE
    for column, value in CAMPAIGN.items():
        moved.loc[hit, column] = value
    return moved


async def open_loop(target: str, requests: list, rate: float, seconds: float) -> dict[str, int]:
    """Send `requests` round robin at `rate` calls/s from the intended send times for `seconds`; codes."""
    codes: dict[str, int] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = scoring_pb2_grpc.FraudScoringStub(channel)

        async def one(request) -> None:
            try:
                await stub.Score(request, timeout=2)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            codes[code] = codes.get(code, 0) + 1

        calls, started = [], time.monotonic()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            calls.append(asyncio.ensure_future(one(requests[i % len(requests)])))
        await asyncio.gather(*calls)
    return codes


def readout(prom, panels: list[dict]) -> list[dict]:
    """Every series each panel shows now: panel title, legend, value."""
    rows = []
    for panel in panels:
        for target in panel.get("targets", []):
            for series in prom.query(as_sent_by_grafana(target["expr"])):
                legend = target.get("legendFormat", "")
                for label, value in series["metric"].items():
                    legend = legend.replace("{{" + label + "}}", value)
                rows.append({"panel": panel["title"], "series": legend, "value": float(series["value"][1])})
    return rows


def alerts(prom) -> list[str]:
    return [
        f"{a['labels']['alertname']} ({a['state']}, {a['labels'].get('model', '')})"
        for a in prom.get("/api/v1/alerts")["data"]["alerts"]
    ]


def print_readout(phase: str, codes: dict[str, int], rows: list[dict], active: list[str]) -> None:
    print(f"\n### {phase}: calls {codes}\n")
    print("| panel | series | value |\n|---|---|---:|")
    for row in rows:
        print(f"| {row['panel']} | {row['series']} | {row['value']:.4g} |")
    print(f"\nalerts pending or firing: {', '.join(active) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop Score calls per second")
    parser.add_argument("--phase-s", type=float, default=45.0, help="seconds of traffic per phase")
    parser.add_argument("--sample-rate", type=float, default=0.2, help="live_check_sample_rate")
    parser.add_argument("--window-s", type=float, default=30.0, help="live_check_window_s")
    parser.add_argument("--output", type=Path, default=None, help="write the readouts as JSON here")
    args = parser.parse_args()
    frame = read_rows(HOLDOUT)
    phases = {
        "holdout-like traffic": transactions(frame, HOLDOUT, "fraud"),
        "drifted traffic (a third: card-not-present campaign)": transactions(
            drifted(frame), HOLDOUT, "fraud"
        ),
    }
    settings = {
        "models": "fraud",
        "live_check_sample_rate": args.sample_rate,
        "live_check_window_s": args.window_s,
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="riskserve-readout-") as scratch:
        folder = Path(scratch)
        with (
            RiskServe(
                cache_dir=folder / "cache", settings=settings, log_path=folder / "server.log"
            ) as server,
            running_prometheus(folder, server.metrics_port) as prom,
        ):
            panels = row_panels()
            for phase, requests in phases.items():
                codes = asyncio.run(open_loop(server.target, requests, args.rate, args.phase_s))
                time.sleep(3)  # two scrapes and a rule evaluation after the last call
                rows, active = readout(prom, panels), alerts(prom)
                print_readout(phase, codes, rows, active)
                results.append({"phase": phase, "calls": codes, "panels": rows, "alerts": active})
    if args.output is not None:
        args.output.write_text(
            json.dumps({"settings": settings, "rate": args.rate, "phases": results}, indent=2)
        )


if __name__ == "__main__":
    main()

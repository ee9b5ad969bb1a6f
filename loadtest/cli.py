"""`riskserve loadtest <scenario.yaml>`: run a scenario, print the verdict, write report.json and latency.png.

Exit codes: 0 every SLA line passed; 1 a line failed; 2 bad scenario or usage, or the run could not
take place (target unreachable, request data missing).
"""

import argparse
from pathlib import Path

BUNDLED_SCENARIOS = Path(__file__).parent / "scenarios"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "loadtest",
        help="load-test a server against an SLA scenario and print a PASS/FAIL verdict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario",
        help="scenario YAML file, or the name of a bundled one "
        f"({', '.join(sorted(p.stem for p in BUNDLED_SCENARIOS.glob('*.yaml')))})",
    )
    parser.add_argument("--find-max", action="store_true", help="search the highest rate that meets the SLA")
    parser.add_argument(
        "--out", type=Path, help="report folder (default: loadtest-results/<scenario>-<time>)"
    )
    parser.add_argument("--target", help="HOST:PORT, overrides the scenario's target")
    parser.add_argument("--metrics-url", help="the server's /metrics URL, overrides the scenario's")
    parser.add_argument("--duration", type=float, help="measured seconds (find-max: per trial)")
    parser.add_argument("--rate", type=float, help="constant open-loop rate, requests/s (find-max: start)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds, overrides the scenario")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from loadtest.command import run  # heavy imports (pandas, matplotlib) only when the command runs

    return run(args)

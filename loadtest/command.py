"""What `riskserve loadtest` does once its arguments are parsed: run, judge, report; or search the max rate.

Imported only when the subcommand runs, so other `riskserve` commands never load matplotlib or pandas.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from loadtest.cli import BUNDLED_SCENARIOS
from loadtest.errors import LoadTestError, ScenarioError
from loadtest.figures import compute_figures
from loadtest.find_max import Trial, find_max_rate
from loadtest.live import LiveProgress
from loadtest.plot import PNG_NAME, write_png
from loadtest.preflight import check
from loadtest.report import JSON_NAME, print_summary, report_dict, write_json
from loadtest.request_bodies import build_pool
from loadtest.runner import RunResult, run_scenario
from loadtest.scenario import load_scenario, with_overrides
from loadtest.sla import evaluate

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
CI_LOG_WIDTH = 130


def resolve_scenario_path(name: str) -> Path:
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    return BUNDLED_SCENARIOS / f"{name}.yaml"


def run(args: argparse.Namespace) -> int:
    """Run the `loadtest` subcommand; returns the exit code."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, CI_LOG_WIDTH)  # CI logs: no wrapped table cells
    try:
        scenario = load_scenario(resolve_scenario_path(args.scenario))
        find_max = args.find_max
        scenario = with_overrides(
            scenario,
            target=args.target,
            metrics_url=args.metrics_url,
            rate=args.rate,
            warmup_s=args.warmup,
            duration_s=None if find_max else args.duration,
        )
        out = args.out or Path("loadtest-results") / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if find_max:
            return _find_max(console, scenario, out, args.duration or 5.0)
        return _single_run(console, scenario, out)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LoadTestError as exc:
        print(f"load test could not run: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _describe_load(scenario) -> str:
    load = scenario.load
    if load.mode.value == "closed":
        return f"closed loop, {load.concurrency} callers"
    stages = ", ".join(
        f"{s.rate:g}" + (f"->{s.to_rate:g}" if s.to_rate else "") + f" req/s for {s.duration_s:g} s"
        for s in load.schedule
    )
    return f"open loop, {load.arrival.value} arrivals: {stages}"


def _single_run(console: Console, scenario, out: Path) -> int:
    pools = tuple(build_pool(entry) for entry in scenario.mix)
    check(scenario, pools)  # LoadTestError: not the server the scenario is for
    console.print(
        f"[bold]{scenario.name}[/] -> {scenario.target} ({scenario.protocol.value}); "
        f"{_describe_load(scenario)}; warm-up {scenario.load.warmup_s:g} s"
    )
    with LiveProgress(console, scenario) as progress:
        result = run_scenario(scenario, on_progress=progress, pools=pools)
    console.line()
    return _finish(console, result, out)


def _finish(console: Console, result: RunResult, out: Path, extra: dict | None = None) -> int:
    figures = compute_figures(result)
    verdict = evaluate(result.scenario.sla, figures)
    print_summary(console, result, figures, verdict)
    report = report_dict(result, figures, verdict)
    if extra:
        report.update(extra)
    json_path = write_json(out / JSON_NAME, report)
    png_path = write_png(out / PNG_NAME, result)
    console.print(f"report: {json_path}\npicture: {png_path}")
    return EXIT_PASS if verdict.passed else EXIT_FAIL


def _find_max(console: Console, scenario, out: Path, trial_s: float) -> int:
    pools = tuple(build_pool(entry) for entry in scenario.mix)
    check(scenario, pools)
    console.print(
        f"[bold]find-max[/] {scenario.name} -> {scenario.target}: trials of {trial_s:g} s, "
        f"starting at {scenario.load.peak_rate:g} req/s"
    )

    def show(trial: Trial) -> None:
        mark = "[green]PASS[/]" if trial.passed else "[red]FAIL[/]"
        behind = " (generator fell behind)" if trial.fell_behind else ""
        p99 = "-" if trial.p99_ms is None else f"{trial.p99_ms:.3f} ms"
        console.print(
            f"  {trial.rate_rps:9.1f} req/s  p99 {p99:>12}  {mark}{behind}  {', '.join(trial.failed_lines)}"
        )

    found = find_max_rate(
        scenario, pools, trial_s=trial_s, warmup_s=min(1.0, scenario.load.warmup_s), on_trial=show
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "find_max.json").write_text(json.dumps(found.as_dict(), indent=2) + "\n")
    if found.max_rate_rps is None:
        console.print("[bold red]no rate tried met the SLA[/]")
        return EXIT_FAIL
    note = " (the generator, not the server, set this limit)" if found.limited_by_generator else ""
    console.print(f"[bold]highest rate meeting the SLA: {found.max_rate_rps:.1f} req/s[/]{note}")
    assert found.best_run is not None
    _finish(console, found.best_run, out, {"find_max": found.as_dict()})
    return EXIT_PASS

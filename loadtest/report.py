"""Reports of a run: the verdict table and summary on the console, and a JSON file for CI."""

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loadtest.figures import Figures
from loadtest.recording import PERCENTILES
from loadtest.runner import RunResult
from loadtest.sla import Verdict

JSON_NAME = "report.json"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def report_dict(result: RunResult, figures: Figures, verdict: Verdict) -> dict:
    """The JSON report: scenario, figures, server view, per-second percentiles, SLA lines and verdict."""
    rec = result.recording
    over_time = []
    for index in sorted(rec.per_slice):
        hist = rec.per_slice[index]
        over_time.append(
            {
                "start_s": round(index * rec.slice_s, 3),
                "count": hist.get_total_count(),
                **{f"p{p:g}_ms": hist.get_value_at_percentile(p) / 1000 for p in PERCENTILES},
            }
        )
    return {
        "scenario": result.scenario.name,
        "started_at": result.started_at,
        "target": result.scenario.target,
        "protocol": result.scenario.protocol.value,
        "verdict": "PASS" if verdict.passed else "FAIL",
        "failed_lines": verdict.failed_lines,
        "fell_behind": verdict.fell_behind,
        "sla": [line.as_dict() for line in verdict.lines],
        "figures": figures.as_dict(),
        "calls": dict(rec.calls),
        "error_details": rec.error_details,
        "server": [vars(s) for s in result.server],
        "server_metrics_scraped": result.server_metrics_scraped,
        "latency_over_time": over_time,
        "scenario_definition": result.scenario.model_dump(mode="json"),
    }


def write_json(path: Path, report: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path


def print_summary(console: Console, result: RunResult, figures: Figures, verdict: Verdict) -> None:
    """Latency side by side (corrected vs uncorrected, client vs server), load, errors, generator, verdict."""
    open_loop = result.open_loop
    latency = Table(title=f"Latency, ms ({figures.requests} requests in {figures.measured_s:g} s)")
    latency.add_column("")
    for p in PERCENTILES:
        latency.add_column(f"p{p:g}", justify="right")
    latency.add_column("max", justify="right")
    main_label = "client, from intended send" if open_loop else "client, closed loop"
    latency.add_row(main_label, *[_fmt(v) for v in figures.latency_ms.values()], _fmt(figures.max_latency_ms))
    if open_loop:
        latency.add_row(
            "client, from actual send (hides stalls)",
            *[_fmt(v) for v in figures.uncorrected_latency_ms.values()],
            "",
        )
    for server in result.server:
        latency.add_row(
            f"server {server.model}/{server.method}: run (histogram)", "", "", _fmt(server.run_p99_ms), "", ""
        )
        latency.add_row(
            f"server {server.model}/{server.method}: rolling window",
            "",
            "",
            _fmt(server.window_p99_ms),
            "",
            "",
        )
    console.print(latency)
    if result.scenario.metrics_url and not result.server_metrics_scraped:
        console.print(f"[yellow]server metrics at {result.scenario.metrics_url} did not answer[/]")

    rate = f" of {figures.target_rate_rps:.1f} scheduled" if figures.target_rate_rps is not None else ""
    console.print(
        f"throughput {figures.throughput_rps:.1f} req/s{rate}, {figures.rows_per_s:.0f} rows/s; "
        f"status codes: {', '.join(f'{k} {v}' for k, v in figures.codes.items()) or 'none'}"
    )
    if figures.timeouts:
        console.print(
            f"  {figures.timeouts} calls waited out their {result.scenario.load.timeout_ms:g} ms deadline"
        )
    for code, details in sorted(result.recording.error_details.items()):
        console.print(f"  first {code}: {details or '(no details)'}", markup=False)
    console.print(
        f"generator: {figures.workers} worker process(es), {figures.generator_cpu_cores:.2f} CPU cores "
        f"busy ({figures.generator_cpu_s:.1f} CPU s); {figures.cpu_count_note}"
    )
    if open_loop:
        console.print(
            f"schedule: {figures.sent} of {figures.scheduled} sent, send lag p99 "
            f"{_fmt(figures.send_lag_p99_ms)} ms, max {_fmt(figures.send_lag_max_ms)} ms; "
            f"{figures.slot_waits} sends waited for an in-flight slot"
        )
    if verdict.fell_behind:
        console.print(
            "[bold red]THE GENERATOR FELL BEHIND ITS SCHEDULE: the server did not get the load the "
            "scenario asked for. Use more workers, a lower rate, or a bigger machine.[/]"
        )

    table = Table(title=f"SLA verdict: {result.scenario.name}")
    for column in ("SLA line", "target", "measured", "result"):
        table.add_column(column)
    for line in verdict.lines:
        table.add_row(
            line.name, line.target, line.measured, "[green]PASS[/]" if line.passed else "[red]FAIL[/]"
        )
    console.print(table)
    if verdict.passed:
        console.print("[bold green]PASS[/]: every SLA line met")
    else:
        console.print(f"[bold red]FAIL[/]: {', '.join(verdict.failed_lines)}")

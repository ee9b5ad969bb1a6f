"""The run's headline figures, computed once from the merged recording."""

import os
from dataclasses import asdict, dataclass

from loadtest.recording import PERCENTILES, percentile_ms
from loadtest.runner import RunResult


@dataclass(frozen=True)
class Figures:
    mode: str
    measured_s: float
    requests: int  # answered or failed, in the measured window
    ok: int
    error_rate: float
    codes: dict[str, int]
    throughput_rps: float  # successful requests per second
    rows_per_s: float
    target_rate_rps: float | None  # open loop: mean scheduled rate
    latency_ms: dict[str, float | None]  # corrected in open loop (from intended send)
    uncorrected_latency_ms: dict[str, float | None]  # from the actual send
    max_latency_ms: float | None
    scheduled: int
    sent: int
    send_lag_p99_ms: float | None
    send_lag_max_ms: float | None
    slot_waits: int
    timeouts: int  # calls that waited out their deadline
    timeout_rate: float
    generator_cpu_cores: float  # CPU seconds of all workers / wall seconds
    generator_cpu_s: float
    workers: int
    cpu_count_note: str

    def as_dict(self) -> dict:
        return asdict(self)


def percentile_key(percentile: float) -> str:
    """50.0 -> "p50", 99.9 -> "p999"."""
    return "p" + f"{percentile:g}".replace(".", "")


def compute_figures(result: RunResult) -> Figures:
    rec = result.recording
    measured = result.measured_s
    requests = rec.requests
    cpu_s = rec.cpu_s
    wall = rec.wall_s or measured
    main = rec.corrected if result.open_loop else rec.uncorrected
    return Figures(
        mode=result.scenario.load.mode.value,
        measured_s=measured,
        requests=requests,
        ok=rec.ok,
        error_rate=(requests - rec.ok) / requests if requests else 0.0,
        codes=dict(sorted(rec.codes.items())),
        throughput_rps=rec.ok / measured if measured else 0.0,
        rows_per_s=rec.rows_ok / measured if measured else 0.0,
        target_rate_rps=rec.scheduled / measured if result.open_loop and measured else None,
        latency_ms={percentile_key(p): percentile_ms(main, p) for p in PERCENTILES},
        uncorrected_latency_ms={percentile_key(p): percentile_ms(rec.uncorrected, p) for p in PERCENTILES},
        max_latency_ms=main.get_max_value() / 1000 if main.get_total_count() else None,
        scheduled=rec.scheduled,
        sent=rec.sent,
        send_lag_p99_ms=percentile_ms(rec.send_lag, 99.0),
        send_lag_max_ms=rec.send_lag.get_max_value() / 1000 if rec.send_lag.get_total_count() else None,
        slot_waits=rec.slot_waits,
        timeouts=rec.timeouts,
        timeout_rate=rec.timeouts / requests if requests else 0.0,
        generator_cpu_cores=cpu_s / wall if wall else 0.0,
        generator_cpu_s=cpu_s,
        workers=result.workers,
        cpu_count_note=f"this machine has {os.cpu_count()} cores, shared by the generator and anything else "
        "running here (on a one-box test, the server): CPU the generator uses is CPU the server did not get",
    )

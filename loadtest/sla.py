"""The verdict: each SLA line with its target, the measured value and PASS/FAIL.

Open-loop latency lines judge the corrected figure (from the intended send time). A generator that fell
behind its schedule fails its own line, so a run that quietly sent less can never pass.
"""

from dataclasses import asdict, dataclass

from loadtest.figures import Figures
from loadtest.scenario import Sla

LATENCY_LINES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p999"))


@dataclass(frozen=True)
class SlaLine:
    name: str
    target: str
    measured: str
    passed: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    lines: tuple[SlaLine, ...]
    fell_behind: bool

    @property
    def passed(self) -> bool:
        return all(line.passed for line in self.lines)

    @property
    def failed_lines(self) -> list[str]:
        return [line.name for line in self.lines if not line.passed]


def _ms(value: float | None) -> str:
    return "no answers" if value is None else f"{value:.3f} ms"


def _latency_lines(sla: Sla, figures: Figures, label: str) -> list[SlaLine]:
    lines = []
    for field, key in LATENCY_LINES:
        target = getattr(sla, field)
        if target is None:
            continue
        measured = figures.latency_ms[key]
        lines.append(
            SlaLine(
                f"{key} latency ({label})",
                f"<= {target:g} ms",
                _ms(measured),
                measured is not None and measured <= target,
            )
        )
    return lines


def _code_lines(sla: Sla, figures: Figures) -> list[SlaLine]:
    lines = []
    for code in sla.expect_codes:
        seen = figures.codes.get(code, 0)
        lines.append(SlaLine(f"{code} seen", ">= 1 request", f"{seen} requests", seen >= 1))
    if sla.max_timeout_rate is not None:
        lines.append(
            SlaLine(
                "timeouts (caller waited out the deadline)",
                f"<= {sla.max_timeout_rate:.4%}",
                f"{figures.timeout_rate:.4%}",
                figures.timeout_rate <= sla.max_timeout_rate,
            )
        )
    for code, limit in sla.max_code_rate.items():
        rate = figures.codes.get(code, 0) / figures.requests if figures.requests else 0.0
        lines.append(SlaLine(f"{code} rate", f"<= {limit:.4%}", f"{rate:.4%}", rate <= limit))
    return lines


def schedule_line(sla: Sla, figures: Figures) -> SlaLine:
    """Open loop: every scheduled request sent, and sent on time (p99 generator lag within the limit)."""
    lag = figures.send_lag_p99_ms
    unsent = figures.scheduled - figures.sent
    on_time = lag is not None and lag <= sla.max_send_lag_ms
    measured = f"p99 lag {_ms(lag)}, {unsent} of {figures.scheduled} unsent"
    return SlaLine(
        "generator kept schedule",
        f"p99 lag <= {sla.max_send_lag_ms:g} ms, 0 unsent",
        measured,
        on_time and unsent == 0,
    )


def evaluate(sla: Sla, figures: Figures) -> Verdict:
    """Judge the figures against the SLA."""
    open_loop = figures.mode == "open"
    lines = _latency_lines(sla, figures, "from intended send" if open_loop else "closed loop")
    if sla.max_error_rate is not None:
        lines.append(
            SlaLine(
                "error rate",
                f"<= {sla.max_error_rate:.4%}",
                f"{figures.error_rate:.4%}",
                figures.requests > 0 and figures.error_rate <= sla.max_error_rate,
            )
        )
    if sla.min_throughput_rps is not None:
        lines.append(
            SlaLine(
                "throughput",
                f">= {sla.min_throughput_rps:g} req/s",
                f"{figures.throughput_rps:.1f} req/s",
                figures.throughput_rps >= sla.min_throughput_rps,
            )
        )
    lines.extend(_code_lines(sla, figures))
    fell_behind = False
    if open_loop:
        line = schedule_line(sla, figures)
        fell_behind = not line.passed
        lines.append(line)
    return Verdict(tuple(lines), fell_behind)

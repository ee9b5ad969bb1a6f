"""The live progress line: achieved rate, p99 so far (from intended send), errors."""

import time
from collections import deque

from rich.console import Console
from rich.live import Live
from rich.text import Text

from loadtest.recording import Progress, new_histogram
from loadtest.scenario import Scenario

RATE_WINDOW_S = 2.0


class LiveProgress:
    """A ProgressSink for run_scenario that redraws one line as workers report in."""

    def __init__(self, console: Console, scenario: Scenario) -> None:
        self._console = console
        self._scenario = scenario
        self._latency = new_histogram()
        self._answered = 0
        self._errors = 0
        self._recent: deque[tuple[float, int]] = deque()
        self._live = Live(Text("starting workers..."), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> "LiveProgress":
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._live.__exit__(*exc_info)

    def __call__(self, elapsed_s: float, progress: Progress) -> None:
        self._latency.decode_and_add(progress.latency)
        self._answered += progress.answered
        self._errors += progress.errors
        now = time.monotonic()
        self._recent.append((now, progress.answered + progress.errors))
        while self._recent and now - self._recent[0][0] > RATE_WINDOW_S:
            self._recent.popleft()
        self._live.update(Text(self.line(elapsed_s)))

    def line(self, elapsed_s: float) -> str:
        load = self._scenario.load
        if elapsed_s < load.warmup_s:
            return f"warm-up {elapsed_s:4.1f}/{load.warmup_s:g} s"
        rate = sum(count for _, count in self._recent) / RATE_WINDOW_S
        p99 = self._latency.get_value_at_percentile(99.0) / 1000 if self._latency.get_total_count() else 0.0
        return (
            f"{elapsed_s - load.warmup_s:5.1f}/{load.measured_s:g} s  rate {rate:7.1f} req/s  "
            f"p99 so far {p99:8.3f} ms  answered {self._answered}  errors {self._errors}"
        )

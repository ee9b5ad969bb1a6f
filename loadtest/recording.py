"""What a worker records, and how per-worker recordings merge into the run's figures.

Latencies go into HDR histograms in microseconds (1 µs to 1 h, 3 significant digits). Workers ship
their histograms encoded; the parent decodes and adds them. Percentiles are always read from a merged
histogram, never averaged across workers.
"""

from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_us(histogram: HdrHistogram, seconds: float) -> None:
    """Record a duration (seconds) as whole microseconds, clamped into the histogram's range."""
    histogram.record_value(min(HIGHEST_US, max(1, int(seconds * 1e6))))


def percentile_ms(histogram: HdrHistogram, percentile: float) -> float | None:
    if histogram.get_total_count() == 0:
        return None
    return histogram.get_value_at_percentile(percentile) / 1000.0


@dataclass
class Recording:
    """Counts and histograms of the measured window (warm-up excluded)."""

    corrected: HdrHistogram = field(default_factory=new_histogram)  # from the intended send time
    uncorrected: HdrHistogram = field(default_factory=new_histogram)  # from the actual send time
    send_lag: HdrHistogram = field(default_factory=new_histogram)  # generator lag behind schedule
    per_slice: dict[int, HdrHistogram] = field(default_factory=dict)  # corrected, by intended send time
    uncorrected_per_slice: dict[int, HdrHistogram] = field(default_factory=dict)
    codes: Counter = field(default_factory=Counter)  # gRPC status name -> requests
    error_details: dict[str, str] = field(default_factory=dict)  # status name -> first message seen
    ok_per_slice: Counter = field(default_factory=Counter)  # slice -> answered requests
    errors_per_slice: Counter = field(default_factory=Counter)  # slice -> failed requests
    calls: Counter = field(default_factory=Counter)  # mix label -> requests answered
    scheduled: int = 0  # arrivals the schedule put in the measured window
    sent: int = 0  # of those, actually sent before the end of the run
    rows_ok: int = 0  # rows scored successfully (batch calls carry many)
    slot_waits: int = 0  # sends that waited for an in-flight slot (server back-pressure)
    timeouts: int = 0  # calls the caller gave up on at its deadline (not the server's fast refusals)
    slice_s: float = 1.0  # width of the time slices of per_slice
    cpu_s: float = 0.0  # generator CPU time (user + system)
    wall_s: float = 0.0

    def record(self, slice_index: int, corrected_s: float, uncorrected_s: float) -> None:
        """Record one answered (or timed-out) request's latency from both start points."""
        record_us(self.corrected, corrected_s)
        record_us(self.uncorrected, uncorrected_s)
        per_slice = self.per_slice.get(slice_index)
        if per_slice is None:
            per_slice = self.per_slice[slice_index] = new_histogram()
            self.uncorrected_per_slice[slice_index] = new_histogram()
        record_us(per_slice, corrected_s)
        record_us(self.uncorrected_per_slice[slice_index], uncorrected_s)

    @property
    def requests(self) -> int:
        return sum(self.codes.values())

    @property
    def ok(self) -> int:
        return self.codes.get("OK", 0)

    def encode(self) -> dict:
        """A picklable, compact form for the trip from a worker process to the parent."""
        return {
            "corrected": self.corrected.encode(),
            "uncorrected": self.uncorrected.encode(),
            "send_lag": self.send_lag.encode(),
            "per_slice": {s: h.encode() for s, h in self.per_slice.items()},
            "uncorrected_per_slice": {s: h.encode() for s, h in self.uncorrected_per_slice.items()},
            "codes": dict(self.codes),
            "error_details": self.error_details,
            "ok_per_slice": dict(self.ok_per_slice),
            "errors_per_slice": dict(self.errors_per_slice),
            "calls": dict(self.calls),
            "scheduled": self.scheduled,
            "sent": self.sent,
            "rows_ok": self.rows_ok,
            "slot_waits": self.slot_waits,
            "timeouts": self.timeouts,
            "slice_s": self.slice_s,
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
        }

    def add_encoded(self, encoded: dict) -> None:
        """Merge a worker's encoded recording into this one (histograms are added, counts summed)."""
        self.corrected.decode_and_add(encoded["corrected"])
        self.uncorrected.decode_and_add(encoded["uncorrected"])
        self.send_lag.decode_and_add(encoded["send_lag"])
        for target, source in (
            (self.per_slice, "per_slice"),
            (self.uncorrected_per_slice, "uncorrected_per_slice"),
        ):
            for second, blob in encoded[source].items():
                target.setdefault(second, new_histogram()).decode_and_add(blob)
        self.codes.update(encoded["codes"])
        self.ok_per_slice.update(encoded["ok_per_slice"])
        self.errors_per_slice.update(encoded["errors_per_slice"])
        for code, details in encoded["error_details"].items():
            self.error_details.setdefault(code, details)
        self.calls.update(encoded["calls"])
        self.scheduled += encoded["scheduled"]
        self.sent += encoded["sent"]
        self.rows_ok += encoded["rows_ok"]
        self.slot_waits += encoded["slot_waits"]
        self.timeouts += encoded["timeouts"]
        self.slice_s = encoded["slice_s"]
        self.cpu_s += encoded["cpu_s"]
        self.wall_s = max(self.wall_s, encoded["wall_s"])


@dataclass
class Progress:
    """A worker's periodic report for the live line: what completed since its previous report."""

    worker: int
    answered: int
    errors: int
    latency: bytes  # encoded HDR histogram of corrected latencies since the previous report

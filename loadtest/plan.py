"""What a generator process is told to send: the request pools and its share of the schedule.

Kept free of heavy imports (pandas, pydantic): worker processes are spawned and import this on start.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RequestPool:
    """Serialized requests of one mix entry, ready for the wire."""

    label: str  # e.g. "fraud.score_batch[256]", used in reports
    method_path: str  # e.g. "/riskserve.v1.FraudScoring/Score"
    streaming: bool  # bidirectional stream (one message per arrival) instead of a unary call
    rows_per_request: int
    bodies: tuple[bytes, ...]


@dataclass(frozen=True)
class Schedule:
    """Intended send offsets (seconds from the start, warm-up first) and the mix entry of each arrival."""

    offsets_s: np.ndarray  # float64, ascending
    calls: np.ndarray  # int16 index into the scenario's mix
    warmup_s: float
    measured_s: float

    @property
    def measured_count(self) -> int:
        return int(np.count_nonzero(self.offsets_s >= self.warmup_s))

    def for_worker(self, worker: int, workers: int) -> "Schedule":
        """This worker's share: every `workers`-th arrival starting at `worker`."""
        return Schedule(
            self.offsets_s[worker::workers], self.calls[worker::workers], self.warmup_s, self.measured_s
        )

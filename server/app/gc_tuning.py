"""The garbage collector around a serving process: startup objects frozen, long pauses logged.

Startup leaves hundreds of thousands of long-lived objects (pandas, ONNX graphs, quantization reports) in
the oldest generation; the first full collections under traffic then walk all of them while every call
waits. `freeze_startup_objects` collects once before SERVING and moves the survivors to the permanent
generation (gc.freeze), so later full collections walk only what serving allocates. `GcPauseLog` logs
every collection that paused the process for PAUSE_LOG_MS or more (`event=gc_pause`), so a latency spike
can be told from a GC pause, and at shutdown the count and longest pause per generation (`event=gc_stats`).
"""

import gc
import logging
import time

log = logging.getLogger(__name__)

PAUSE_LOG_MS = 10.0


def freeze_startup_objects() -> None:
    started = time.perf_counter()
    collected = gc.collect()
    gc.freeze()
    log.info(
        "event=startup_gc_frozen collected=%d frozen=%d seconds=%.3f",
        collected,
        gc.get_freeze_count(),
        time.perf_counter() - started,
    )


class GcPauseLog:
    """A gc callback timing each collection; `install()` once, `remove()` at shutdown."""

    def __init__(self, threshold_ms: float = PAUSE_LOG_MS) -> None:
        self.threshold_s = threshold_ms / 1e3
        self.longest_s = [0.0, 0.0, 0.0]  # per generation
        self.count = [0, 0, 0]
        self._started = 0.0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        """Collections and the longest pause per generation since `install()`, for one log line."""
        return " ".join(
            f"gen{g}_collections={self.count[g]} gen{g}_longest_ms={self.longest_s[g] * 1e3:.1f}"
            for g in range(3)
        )

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        paused = time.perf_counter() - self._started
        generation = info.get("generation", 0)
        self.count[generation] += 1
        self.longest_s[generation] = max(self.longest_s[generation], paused)
        if paused >= self.threshold_s:
            log.info(
                "event=gc_pause generation=%d pause_ms=%.1f collected=%d",
                generation,
                paused * 1e3,
                info.get("collected", 0),
            )

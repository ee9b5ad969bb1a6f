"""`riskserve serve` with one fault injected, for the faults scenario: `python -m
benchmarks.reliability.fault_server serve ...` with RISKSERVE_BENCH_FAULT=KIND:MODEL:N[:SECONDS].

- `raise`: the Nth batch of MODEL raises before its ONNX Runtime call (where the concatenation runs,
  outside the call's own error handling: the fault that used to wedge a model for good);
- `hang`: the Nth batch's ONNX Runtime call blocks SECONDS (a hung session: what the watchdog is for).

Benchmark code only: the server itself has no fault hooks. The patch is applied before the CLI runs.
"""

import os
import sys
import threading
import time

from server.runtime import batcher

FAULT_VARIABLE = "RISKSERVE_BENCH_FAULT"


def install(spec: str) -> None:
    kind, model, nth, *rest = spec.split(":")
    seconds = float(rest[0]) if rest else 0.0
    count = {"batches": 0}
    lock = threading.Lock()
    real_run, real_timed = batcher.MicroBatcher._run, batcher.MicroBatcher._timed_run

    def due(self: batcher.MicroBatcher) -> bool:
        if self.model != model:
            return False
        with lock:
            count["batches"] += 1
            return count["batches"] == int(nth)

    async def run(self: batcher.MicroBatcher, batch: list) -> None:
        if kind == "raise" and due(self):
            raise RuntimeError(f"injected fault in batch {nth} of {model}")
        return await real_run(self, batch)

    def timed_run(self: batcher.MicroBatcher, feeds: dict, rows: int):
        if kind == "hang" and due(self):
            time.sleep(seconds)
        return real_timed(self, feeds, rows)

    batcher.MicroBatcher._run = run
    batcher.MicroBatcher._timed_run = timed_run


def main() -> int:
    spec = os.environ.get(FAULT_VARIABLE)
    if spec:
        install(spec)
    from server.cli.main import main as riskserve

    return riskserve(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

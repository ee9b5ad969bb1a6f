"""How busy the event loop's thread is: the batcher runs a bulk batch inline only while the loop has time
to spare (server/runtime/batcher.py, `auto`).

Every LOOP_PROBE_S, on the loop, `watch_loop_load` reads the thread's scheduler figures from
/proc/self/task/<tid>/schedstat: the time it ran plus the time it was runnable but waited for a core. Over
the last LOOP_WINDOW_S their sum's share of the wall time is the loop's busy share; the rest it slept in its
selector, waiting for work. The wait for a core counts because a loop starved on a shared or CPU-limited
machine is as saturated as a running one, while its CPU time alone would look idle. Without schedstat (not
Linux) the thread's CPU time is used.

Why it matters: a batch run inline holds the loop for its whole ONNX Runtime call. While the loop has time
to spare that saves the thread hand-off's CPU; once it is saturated, calls that arrive wait inside gRPC
core (Python accepts one per loop turn, and cannot see or time those that wait) until core cancels them.
Handing the batch to the model's thread then frees the loop during inference to accept calls, and the
door refuses the excess with RESOURCE_EXHAUSTED (server/app/concurrency_limit.py).
"""

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable

LOOP_PROBE_S = 0.01
LOOP_WINDOW_S = 0.1


class LoopLoad:
    """The loop's busy share over the last LOOP_WINDOW_S, and whether it is at least `busy_share`."""

    def __init__(self, busy_share: float = 1.0) -> None:
        self.busy_share = busy_share
        self.busy = 0.0
        self.saturated = False  # read by the batcher: no bulk batch inline while set


LOOP_LOAD = LoopLoad()  # of this process's serving loop (one per process)


def busy_seconds_reader() -> Callable[[], float]:
    """Seconds the calling thread has run or waited to run: schedstat's run time + run delay, else its
    CPU time."""
    path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
    try:
        stats = open(path, "rb", buffering=0)  # noqa: SIM115 (kept open: a read is a seek and a read)
    except OSError:
        return time.thread_time

    def read() -> float:
        stats.seek(0)
        run_ns, delay_ns, _ = stats.read().split()
        return (int(run_ns) + int(delay_ns)) / 1e9

    with contextlib.suppress(OSError, ValueError):
        read()
        return read
    stats.close()
    return time.thread_time


async def watch_loop_load(load: LoopLoad = LOOP_LOAD) -> None:
    """Keep `load` current every LOOP_PROBE_S until cancelled (on the loop it measures)."""
    busy_seconds = busy_seconds_reader()
    window = round(LOOP_WINDOW_S / LOOP_PROBE_S)
    marks: deque[tuple[float, float]] = deque(maxlen=window + 1)
    try:
        while True:
            marks.append((time.perf_counter(), busy_seconds()))
            if len(marks) > window:
                (wall_0, busy_0), (wall_1, busy_1) = marks[0], marks[-1]
                load.busy = (busy_1 - busy_0) / max(wall_1 - wall_0, 1e-9)
                load.saturated = load.busy >= load.busy_share
            await asyncio.sleep(LOOP_PROBE_S)
    finally:
        load.saturated = False

"""How busy the event loop's thread is: the batcher runs a bulk batch inline only while the loop has time
to spare (server/runtime/batcher.py, `auto`).

`LoopLoad.saturated()` is asked on the loop's thread, by the batcher, only about batches of more than
INLINE_MAX_ROWS rows (never on a unary call's path). It reads the thread's scheduler figures from
/proc/self/task/<tid>/schedstat: the time it ran plus the time it was runnable but waited for a core. Over
the last WINDOW_S (from marks it keeps at most every MARK_S) their sum's share of the wall time is the
loop's busy share; the rest it slept in its selector, waiting for work. The wait for a core counts because a
loop starved on a shared or CPU-limited machine is as saturated as a running one, while its CPU time alone
would look idle. Without schedstat (not Linux) the thread's CPU time is used. Nothing runs between asks: a
timer waking the loop every 10 ms cost about 1.7 % of a core on an idle server.

Why it matters: a batch run inline holds the loop for its whole ONNX Runtime call. While the loop has time
to spare that saves the thread hand-off's CPU; once it is saturated, calls that arrive wait inside gRPC
core (Python accepts one per loop turn, and cannot see or time those that wait) until core cancels them.
Handing the batch to the model's thread then frees the loop during inference to accept calls, and the
door refuses the excess with RESOURCE_EXHAUSTED (server/app/concurrency_limit.py).
"""

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 0.1
MARK_S = 0.01


def busy_seconds_reader() -> Callable[[], float]:
    """Seconds the calling thread has run or waited to run: schedstat's run time + run delay, else its
    CPU time."""
    try:
        stats = open(f"/proc/self/task/{threading.get_native_id()}/schedstat", "rb", buffering=0)  # noqa: SIM115
    except OSError:
        return time.thread_time

    def read() -> float:
        stats.seek(0)
        run_ns, delay_ns, _ = stats.read().split()
        return (int(run_ns) + int(delay_ns)) / 1e9

    try:
        read()
    except (OSError, ValueError):
        stats.close()
        return time.thread_time
    return read


class LoopLoad:
    """Whether the thread asking (the event loop's) was busy at least `busy_share` of the last WINDOW_S.
    Until a window's history exists it says no. `busy_share` 1 or more: never saturated."""

    def __init__(self, busy_share: float = 0.9) -> None:
        self.busy_share = busy_share
        self.busy = 0.0  # the share last computed
        self._read: Callable[[], float] | None = None
        self._marks: deque[tuple[float, float]] = deque()  # (wall, busy seconds), oldest first

    def saturated(self) -> bool:
        if self.busy_share >= 1.0:
            return False
        if self._read is None:
            self._read = busy_seconds_reader()  # opened on the asking thread: its own figures
        now, busy = time.perf_counter(), self._read()
        marks = self._marks
        while len(marks) > 1 and now - marks[1][0] >= WINDOW_S:  # base: the newest mark a window old
            marks.popleft()
        if not marks or now - marks[-1][0] >= MARK_S:
            marks.append((now, busy))
        base_wall, base_busy = marks[0]
        if now - base_wall < WINDOW_S:
            return False
        self.busy = (busy - base_busy) / (now - base_wall)
        return self.busy >= self.busy_share


LOOP_LOAD = LoopLoad()  # of this process's serving loop (one per process); busy_share set at start

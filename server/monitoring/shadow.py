"""Shadow scoring: a sample of a served model's calls scored again by another model, on a thread of its own,
off the hot path. The one core of the FP32 live check (server/monitoring/live_check.py) and of a challenger
(server/monitoring/challenger.py); each says what to do with the two score vectors. A runtime's `Shadows` may
also hold a consumer that scores nothing: the traffic file (server/monitoring/traffic_sample.py).

Only a sampled call reaches this module: ModelRuntime.predict counts calls down to the next sample and then
hands the call to its `Shadows` (every shadow of that runtime, each with its own sample rate). A
`ShadowScorer.offer` copies the call's feature tensors (no ids: the feeds only) and the served probabilities
into a bounded queue, or drops and counts them when the queue is full. Its thread, niced, scores the queued
rows with the shadow runtime in one batch and passes (served, shadow) probabilities to `compare`. Answers
never change, and no caller waits for the shadow.
"""

import contextlib
import logging
import math
import os
import random
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from server.model_io import probability_column
from server.runtime.batcher import Feeds

if TYPE_CHECKING:
    from server.runtime.model_runtime import ModelRuntime

log = logging.getLogger(__name__)

NOT_SAMPLING = -1  # ModelRuntime's countdown never reaches 0 from here: no further call is sampled
THREAD_NICENESS = 10  # the shadow thread yields the cores to the serving threads

Compare = Callable[[np.ndarray, np.ndarray], None]  # (served probabilities, shadow probabilities)


class ShadowConsumer(Protocol):
    """What `Shadows` hands sampled calls to: a ShadowScorer, or the traffic file."""

    def next_gap(self) -> int:
        """Calls until the next sampled one; NOT_SAMPLING: none."""
        ...

    def offer(self, feeds: Feeds, outputs: np.ndarray) -> int:
        """A sampled call's feeds and served outputs: copy what is kept, no I/O. Returns next_gap()."""
        ...


def geometric_gap(sample_rate: float, draw: random.Random) -> int:
    """Calls until the next sampled one: geometric, so every call is sampled with the rate's chance
    (no period for traffic to beat against)."""
    if sample_rate <= 0.0:
        return NOT_SAMPLING
    if sample_rate >= 1.0:
        return 1
    return 1 + int(math.log(1.0 - draw.random()) / math.log(1.0 - sample_rate))


def lower_thread_priority() -> None:
    """Nice the calling thread, so it yields the cores to the serving threads."""
    with contextlib.suppress(OSError):  # not permitted: the thread keeps the process's priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), THREAD_NICENESS)


class ShadowScorer:
    """`shadow` scoring a `sample_rate` share of `served`'s calls; `compare` hears of each scored batch,
    `count_dropped` of the rows a full queue (`queue_rows`) dropped. `start`, then `Shadows.add`."""

    def __init__(
        self,
        served: "ModelRuntime",
        shadow: "ModelRuntime",
        sample_rate: float,
        queue_rows: int,
        name: str,
    ) -> None:
        self.served, self.shadow = served, shadow
        self.sample_rate = sample_rate
        self.name = name  # the thread's name and the failure log's
        self._max_rows = queue_rows
        self._random = random.Random()
        self._queue: deque[tuple[Feeds, np.ndarray]] = deque()
        self._queued_rows = 0
        self._wake = threading.Condition()
        self._stopping = False
        self.paused = False  # no further call is sampled (the live check once it switched to FP32)
        self._compare: Compare | None = None
        self._count_dropped: Callable[[int], None] | None = None
        self._thread: threading.Thread | None = None

    def start(self, compare: Compare, count_dropped: Callable[[int], None]) -> None:
        self._compare, self._count_dropped = compare, count_dropped
        self._thread = threading.Thread(target=self._work, name=f"riskserve-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ---- the serving side: sampled calls only ----------------------------------------------------------

    def next_gap(self) -> int:
        """Calls until the next sampled one (geometric_gap)."""
        if self.paused or self._stopping:
            return NOT_SAMPLING
        return geometric_gap(self.sample_rate, self._random)

    def offer(self, feeds: Feeds, outputs: np.ndarray) -> int:
        """A sampled call's first len(outputs) feed rows and its served outputs: queue a copy for the shadow,
        or drop and count it when the queue has no room. Returns the calls until the next sample."""
        rows = len(outputs)
        queued = False
        with self._wake:
            if self._queued_rows + rows <= self._max_rows:
                copied = {name: column[:rows].copy() for name, column in feeds.items()}
                self._queue.append((copied, probability_column(outputs, self.served.positive_column)))
                self._queued_rows += rows
                queued = True
                self._wake.notify()
        if not queued and self._count_dropped is not None:
            self._count_dropped(rows)
        return self.next_gap()

    # ---- the shadow thread -----------------------------------------------------------------------------

    def _work(self) -> None:
        lower_thread_priority()
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._queued_rows = 0
            try:
                self._score(batch)
            except Exception:  # keep watching; one bad batch must not end the thread
                log.exception("event=shadow_scoring_failed shadow=%s", self.name)

    def _score(self, batch: list[tuple[Feeds, np.ndarray]]) -> None:
        feeds = {name: np.concatenate([f[name] for f, _ in batch]) for name in batch[0][0]}
        served = np.concatenate([scores for _, scores in batch])
        shadow = probability_column(self.shadow.run_batch(feeds), self.shadow.positive_column)
        assert self._compare is not None
        self._compare(served, shadow)


class Shadows:
    """Every shadow consumer of one served runtime, as the one sampler its countdown hook calls
    (ModelRuntime.watch): `next_gap` is the calls until the soonest consumer's next sample; `offer` gives the
    call to each consumer whose sample it is."""

    def __init__(self) -> None:
        self._consumers: list[ShadowConsumer] = []
        self._due: list[int] = []  # calls until each consumer's next sample (NOT_SAMPLING: none)
        self._gap = NOT_SAMPLING  # what the runtime's countdown was last set to

    def add(self, consumer: ShadowConsumer) -> None:
        self._consumers.append(consumer)
        self._due.append(consumer.next_gap())

    def next_gap(self) -> int:
        pending = [due for due in self._due if due > 0]
        self._gap = min(pending) if pending else NOT_SAMPLING
        return self._gap

    def offer(self, feeds: Feeds, outputs: np.ndarray) -> int:
        for i, consumer in enumerate(self._consumers):
            if self._due[i] > 0:
                self._due[i] -= self._gap
                if self._due[i] == 0:
                    self._due[i] = consumer.offer(feeds, outputs)
        return self.next_gap()

"""Server CPU per call, from /proc: utime + stime of the server's process tree over N closed-loop calls.

Wall-clock figures on shared cores swing with the neighbours; the CPU a server burns per call does not
(much): it is what its code costs, whoever else runs. The client sends the pools' pre-serialized bytes
with grpcio's blocking stub (identity serializers), `concurrency` threads, one channel each.
"""

import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from loadtest.plan import RequestPool

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _identity(data: bytes) -> bytes:
    return data


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) of `pid` and its live descendants so far."""
    tree, total, todo = _children(), 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime
        todo.extend(tree.get(current, ()))
    return total


@dataclass(frozen=True)
class CostRun:
    calls: int
    rows: int
    seconds: float
    server_cpu_s: float
    client_cpu_s: float

    @property
    def server_us_per_call(self) -> float:
        return self.server_cpu_s / self.calls * 1e6

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds

    @property
    def rows_per_server_cpu_s(self) -> float:
        return self.rows / self.server_cpu_s if self.server_cpu_s else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {
            "server_us_per_call": self.server_us_per_call,
            "rows_per_s": self.rows_per_s,
            "calls_per_s": self.calls_per_s,
        }


def closed_loop(
    target: str, pid: int, pool: RequestPool, calls: int, concurrency: int = 1, warmup_calls: int = 200
) -> CostRun:
    """`calls` unary calls in all, from `concurrency` callers each waiting for its answer."""
    bodies = pool.bodies
    channels = [grpc.insecure_channel(target) for _ in range(concurrency)]
    try:
        stubs = [
            c.unary_unary(pool.method_path, request_serializer=_identity, response_deserializer=_identity)
            for c in channels
        ]
        for i in range(warmup_calls):
            stubs[i % concurrency](bodies[i % len(bodies)], timeout=10)
        share = [calls // concurrency + (i < calls % concurrency) for i in range(concurrency)]

        def caller(index: int) -> None:
            stub = stubs[index]
            for i in range(share[index]):
                stub(bodies[(i * concurrency + index) % len(bodies)], timeout=30)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(concurrency)]
        cpu0, client0, wall0 = process_tree_cpu_s(pid), time.process_time(), time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall, client = time.perf_counter() - wall0, time.process_time() - client0
        server = process_tree_cpu_s(pid) - cpu0
    finally:
        for channel in channels:
            channel.close()
    return CostRun(calls, calls * pool.rows_per_request, wall, server, client)


def stream_loop(target: str, pid: int, pool: RequestPool, messages: int, window: int = 64) -> CostRun:
    """`messages` transactions on one ScoreStream, at most `window` unanswered at a time."""
    bodies = pool.bodies
    with grpc.insecure_channel(target) as channel:
        stub = channel.stream_stream(
            pool.method_path, request_serializer=_identity, response_deserializer=_identity
        )
        credit = threading.Semaphore(window)

        def requests(count: int):
            for i in range(count):
                credit.acquire()
                yield bodies[i % len(bodies)]

        for _ in stub(requests(200), timeout=60):  # warm-up
            credit.release()
        cpu0, client0, wall0 = process_tree_cpu_s(pid), time.process_time(), time.perf_counter()
        answered = 0
        for _ in stub(requests(messages), timeout=120):
            credit.release()
            answered += 1
        wall, client = time.perf_counter() - wall0, time.process_time() - client0
        server = process_tree_cpu_s(pid) - cpu0
    return CostRun(answered, answered, wall, server, client)


def median_run(runs: list[CostRun]) -> dict:
    """Medians of repeated runs' figures."""
    keys = ("server_us_per_call", "rows_per_s", "calls_per_s")
    return {key: statistics.median(getattr(r, key) for r in runs) for key in keys} | {"repeats": len(runs)}

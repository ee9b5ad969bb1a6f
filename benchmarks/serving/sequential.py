"""Sequential unary calls on one connection: the latency a single caller sees, with nothing queued.

The client is grpcio's blocking stub sending the pre-serialized request bytes (identity serializers), so
every server gets the same bytes and the client does the same work whatever answers.
"""

import time
from dataclasses import asdict, dataclass

import grpc
from hdrh.histogram import HdrHistogram

from loadtest.plan import RequestPool

# 1 µs to 60 s at 3 significant digits: finer than anything reported here.
LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3


def _identity(data: bytes) -> bytes:
    return data


@dataclass(frozen=True)
class LatencySummary:
    calls: int
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    seconds: float
    client_cpu_s: float  # CPU of this (client) process during the measured calls

    @staticmethod
    def of(histogram: HdrHistogram, seconds: float, cpu_s: float) -> "LatencySummary":
        return LatencySummary(
            calls=histogram.get_total_count(),
            p50_us=histogram.get_value_at_percentile(50),
            p90_us=histogram.get_value_at_percentile(90),
            p99_us=histogram.get_value_at_percentile(99),
            p999_us=histogram.get_value_at_percentile(99.9),
            max_us=histogram.get_max_value(),
            seconds=seconds,
            client_cpu_s=cpu_s,
        )

    def as_dict(self) -> dict:
        return asdict(self)


def run_sequential(target: str, pool: RequestPool, calls: int, warmup_calls: int = 300) -> LatencySummary:
    """Send `calls` unary requests one after another on one channel, cycling through the pool's bodies."""
    bodies = pool.bodies
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(
            pool.method_path, request_serializer=_identity, response_deserializer=_identity
        )
        for i in range(warmup_calls):
            stub(bodies[i % len(bodies)], timeout=10)
        histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        cpu_started = time.process_time()
        started = time.perf_counter()
        for i in range(calls):
            body = bodies[i % len(bodies)]
            sent = time.perf_counter_ns()
            stub(body, timeout=10)
            histogram.record_value(max(1, (time.perf_counter_ns() - sent) // 1000))
        seconds = time.perf_counter() - started
        return LatencySummary.of(histogram, seconds, time.process_time() - cpu_started)

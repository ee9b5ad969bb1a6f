"""Scenario: bursts of large messages against a fresh server, and what they do to its memory.

48 concurrent unary `Score` calls, each one transaction whose id is padded to the message size (the id is
echoed, not validated, so the size is all parse and copies), over 4 channels at once, with the server's RSS
(its process tree, /proc) sampled every 5 ms: once over `max_message_bytes` (15 MiB, what took a server to
1.19 GiB before: gRPC core now refuses it from its length prefix) and once under it (3.5 MiB). The
Deployment's memory limit is 1 GiB. `tests/e2e/test_memory_budget.py` runs the same bursts as tests.
"""

import threading
import time
from dataclasses import asdict, dataclass

import grpc

from benchmarks.reliability.payloads import holdout_transactions
from benchmarks.reliability.process_stats import rss_kb
from benchmarks.server_process import RiskServe
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc

CALLS = 48
CHANNELS = 4
OVER_LIMIT_BYTES = 15 * 2**20
UNDER_LIMIT_BYTES = int(3.5 * 2**20)
CLIENT_OPTIONS = [("grpc.max_send_message_length", 32 * 2**20)]


@dataclass(frozen=True)
class Burst:
    calls: int
    message_bytes: int
    rss_mib_before: float
    rss_mib_peak: float
    rss_mib_after: float
    outcomes: dict[str, int]  # status code name -> calls
    seconds: float


def padded_transaction(
    message_bytes: int, base: scoring_pb2.Transaction | None = None
) -> scoring_pb2.Transaction:
    """`base` (default: a fraud holdout transaction) with its id padded to about `message_bytes`."""
    padded = scoring_pb2.Transaction()
    padded.CopyFrom(base or holdout_transactions(1, seed=0)[0])
    padded.transaction_id = "x" * message_bytes
    return padded


def burst(
    target: str,
    pid: int,
    message_bytes: int,
    calls: int = CALLS,
    base: scoring_pb2.Transaction | None = None,
) -> Burst:
    """`calls` concurrent Score calls of about `message_bytes` each (`base` padded, see
    padded_transaction); RSS of `pid`'s tree meanwhile."""
    request = padded_transaction(message_bytes, base)
    samples, stop = [rss_kb(pid)], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_kb(pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    outcomes: dict[str, int] = {}
    began = time.monotonic()
    channels = [grpc.insecure_channel(target, options=CLIENT_OPTIONS) for _ in range(CHANNELS)]
    try:
        stubs = [scoring_pb2_grpc.FraudScoringStub(channel) for channel in channels]
        futures = [stubs[i % CHANNELS].Score.future(request, timeout=60) for i in range(calls)]
        for future in futures:
            try:
                future.result()
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            outcomes[code] = outcomes.get(code, 0) + 1
    finally:
        for channel in channels:
            channel.close()
    seconds = time.monotonic() - began
    time.sleep(0.2)
    stop.set()
    sampler.join(5)
    return Burst(
        calls,
        message_bytes,
        round(samples[0] / 1024, 1),
        round(max(samples) / 1024, 1),
        round(rss_kb(pid) / 1024, 1),
        outcomes,
        round(seconds, 2),
    )


def run(server: RiskServe) -> dict:
    """Both bursts against `server` (SERVING), over the limit first."""
    return {
        "over_limit": asdict(burst(server.target, server.pid, OVER_LIMIT_BYTES)),
        "under_limit": asdict(burst(server.target, server.pid, UNDER_LIMIT_BYTES)),
        "settings": {k: v for k, v in server.settings.items()},
    }

"""Python-level calls per unary call on the server's event loop: unary `Score` and one-row `ModelInfer`.

Counts every Python function call and every C call made from Python (`sys.setprofile` on the loop's
thread) while `--calls` sequential calls run against a warmed in-process server on the bundled models:
machine-independent, so it shows what a change adds to or takes from the request path on any box.

    .venv/bin/python -m benchmarks.serving.python_calls [--calls 20] [--top 15]
"""

import argparse
import asyncio
import collections
import struct
import sys
import tempfile
import threading
from pathlib import Path

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from benchmarks.reliability.payloads import holdout_transactions
from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.app.serving import RiskServer
from server.config.settings import ServerSettings
from server.runtime.features import FeatureSchema


def _infer_request(transaction, schema: FeatureSchema) -> service_pb2.ModelInferRequest:
    """The one-row ModelInferRequest for `transaction`'s fraud features, in `raw_input_contents` (as the
    serving benchmark and perf_analyzer send it)."""
    request = service_pb2.ModelInferRequest(model_name="fraud")
    row = {"amount": transaction.amount, "hour_of_day": (transaction.timestamp // 3600) % 24}
    for field in transaction.behaviour.DESCRIPTOR.fields:
        row[field.name] = float(getattr(transaction.behaviour, field.name))
    for name, _, _, _ in schema.numeric:
        request.inputs.add(name=name, datatype="FP32", shape=[1, 1])
        request.raw_input_contents.append(struct.pack("<f", float(row.get(name, 0.0))))
    for name, _ in schema.categorical:
        request.inputs.add(name=name, datatype="BYTES", shape=[1, 1])
        value = getattr(transaction, name).encode()
        request.raw_input_contents.append(struct.pack("<I", len(value)) + value)
    return request


def count(loop: asyncio.AbstractEventLoop, call, calls: int) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    started, stopped = threading.Event(), threading.Event()

    def profile(frame, event, arg):
        if event == "call":
            counts["/".join(frame.f_code.co_filename.split("/")[-2:]) + ":" + frame.f_code.co_name] += 1
        elif event == "c_call":
            counts["C:" + getattr(arg, "__qualname__", str(arg))] += 1

    loop.call_soon_threadsafe(lambda: (sys.setprofile(profile), started.set()))
    started.wait(5)
    for _ in range(calls):
        call()
    loop.call_soon_threadsafe(lambda: (sys.setprofile(None), stopped.set()))
    stopped.wait(5)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "riskserve-calls-cache"
    )
    args = parser.parse_args(argv)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    settings = ServerSettings(host="127.0.0.1", port=0, metrics_port=0, cache_dir=args.cache_dir)
    server = RiskServer(settings)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(300)
    asyncio.run_coroutine_threadsafe(server.wait_ready(), loop).result(300)
    transaction = holdout_transactions(1, seed=0)[0]
    schema = server.repository.get("fraud").schema
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        score = scoring_pb2_grpc.FraudScoringStub(channel).Score
        infer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer
        request = _infer_request(transaction, schema)
        for label, call in (
            ("Score", lambda: score(transaction, timeout=10)),
            ("ModelInfer", lambda: infer(request, timeout=10)),
        ):
            for _ in range(50):  # warm
                call()
            counts = count(loop, call, args.calls)
            print(f"{label}: {sum(counts.values()) / args.calls:.0f} Python-level calls per call")
            for name, n in counts.most_common(args.top):
                print(f"  {n / args.calls:6.1f}  {name}")
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    server.metrics.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

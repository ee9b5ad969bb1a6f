"""CPU per one-row ModelInfer in the Open Inference Protocol converters alone, in process: tensors -> ONNX
feeds (the one-row path, and the general path: `request_columns` then the schema's validation) and the
answer, for real one-row requests of the bundled fraud model in `raw_input_contents` and in typed
`contents`. With `--base REV`, that commit's converters too (loaded from git), in the same run.

    .venv/bin/python -m benchmarks.serving.infer_converter [--base main] [--calls 5000] [--repeats 7]

CPU time (time.process_time) over `--calls` calls per repeat, repeats interleaved, medians.
"""

import argparse
import importlib.util
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
from tritonclient.grpc import service_pb2

from loadtest.request_bodies import build_pool
from loadtest.scenario import CallKind, MixEntry
from server.api import inference_converters
from server.config.model_config import load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.runtime.features import FeatureSchema
from server.runtime.prediction import Prediction

REPO = Path(__file__).resolve().parents[2]
MAX_ROWS = 4096


def raw_requests(count: int = 20) -> list[service_pb2.ModelInferRequest]:
    """One-row fraud requests from the holdout, as the load generator sends them (raw contents)."""
    pool = build_pool(MixEntry(call=CallKind.OIP_INFER, model="fraud", batch_size=1))
    return [service_pb2.ModelInferRequest.FromString(body) for body in pool.bodies[:count]]


def typed(request: service_pb2.ModelInferRequest) -> service_pb2.ModelInferRequest:
    """The same request with each value in its tensor's typed contents."""
    copy = service_pb2.ModelInferRequest(model_name=request.model_name)
    for tensor, buffer in zip(request.inputs, request.raw_input_contents, strict=True):
        added = copy.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if tensor.datatype == "FP32":
            added.contents.fp32_contents.extend(np.frombuffer(buffer, "<f4").tolist())
        else:
            added.contents.bytes_contents.append(buffer[4:])
    return copy


def base_converters(rev: str) -> ModuleType:
    """`rev`'s server/api/inference_converters.py as a module of its own (its imports: this checkout's)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:server/api/inference_converters.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("base_inference_converters", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{rev}:inference_converters.py", "exec"), module.__dict__)
    return module


def cpu_us(work: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        work()
    return (time.process_time() - started) / calls * 1e6


def cases(base: ModuleType | None) -> dict[str, Callable[[], object]]:
    config = load_model_config(BUNDLED_MODELS_DIR / "fraud")
    schema = FeatureSchema.from_config(config)
    requests = {"raw": raw_requests(), "typed": [typed(r) for r in raw_requests()]}
    prediction = Prediction(np.array([[0.97, 0.03]], np.float32), [0.03], [30], [1], None, 0.0, 0.0)
    both = service_pb2.ModelInferRequest(id="a")
    both.outputs.add(name=config.output_name)
    both.outputs.add(name=inference_converters.DECISION_OUTPUT)

    def general(module: ModuleType, pool: list) -> Callable[[], object]:
        layout, each = module.TensorLayout.of(config), itertools.cycle(pool)

        def work():
            columns, rows = module.request_columns(next(each), layout, MAX_ROWS, config)
            return schema.validate(columns, rows, layout.namer)

        return work

    def one_row(pool: list) -> Callable[[], object]:
        layout, each = inference_converters.TensorLayout.of(config), itertools.cycle(pool)
        assert all(inference_converters.one_row_feeds(r, layout, schema, MAX_ROWS) for r in pool)
        return lambda: inference_converters.one_row_feeds(next(each), layout, schema, MAX_ROWS)

    found: dict[str, Callable[[], object]] = {}
    for kind, pool in requests.items():
        found[f"{kind}: one-row path"] = one_row(pool)
        found[f"{kind}: general path"] = general(inference_converters, pool)
        if base is not None:
            found[f"{kind}: base general path"] = general(base, pool)
    bare = service_pb2.ModelInferRequest(id="a")
    found["answer: all outputs (template copy)"] = lambda: inference_converters.infer_response(
        bare, config, "int8", "passed", prediction, 500
    )
    found["answer: outputs named (field by field)"] = lambda: inference_converters.infer_response(
        both, config, "int8", "passed", prediction, 500
    )
    if base is not None:
        found["answer: base all outputs"] = lambda: base.infer_response(
            bare, config, "int8", "passed", prediction, 500
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="also time this commit's converters (e.g. main)")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    work = cases(base_converters(args.base) if args.base else None)
    for run in work.values():
        cpu_us(run, 200)  # warm
    timings: dict[str, list[float]] = {label: [] for label in work}
    for _ in range(args.repeats):
        for label, run in work.items():
            timings[label].append(cpu_us(run, args.calls))
    for label, runs in timings.items():
        spread = f"{min(runs):.1f}-{max(runs):.1f}"
        print(f"{label:42} {statistics.median(runs):7.1f} µs CPU per call  (repeats {spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

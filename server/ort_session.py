"""ONNX Runtime session settings shared by the quantization benchmarks and the serving runtime.

One function, so the latency the startup report quotes is measured under the options the server serves
with: one intra-op thread, no inter-op parallelism, sequential execution, all graph optimizations and no
spinning (spinning burns the core the gRPC event loop needs when cores are shared).
"""

from pathlib import Path

import onnxruntime as ort


def latency_session_options(intra_op_threads: int = 1) -> ort.SessionOptions:
    """Session options tuned for low, stable per-request latency on a few shared cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise here
    return options


def create_session(model_path: Path, options: ort.SessionOptions | None = None) -> ort.InferenceSession:
    """A CPU inference session on `model_path` with the latency options unless others are given."""
    return ort.InferenceSession(
        str(model_path), sess_options=options or latency_session_options(), providers=["CPUExecutionProvider"]
    )

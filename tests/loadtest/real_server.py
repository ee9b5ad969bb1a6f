"""The real `riskserve serve` for the load tester's tests: bundled models, own cache, quick drain.

A thin setting of benchmarks/server_process.py's RiskServe (the one way tests and benchmarks start a
server): a context manager that returns once health says SERVING and stops it with SIGTERM.
"""

from pathlib import Path

from benchmarks.server_process import RiskServe


class RiskServeProcess(RiskServe):
    """`riskserve serve` in a subprocess; `target` and `metrics_url` once it reports SERVING.
    `debug_delay_ms` sleeps inside every ONNX Runtime call (the test-only `debug_inference_delay_ms`)."""

    def __init__(
        self, cache_dir: Path, log_file: Path, debug_delay_ms: float = 0.0, models_dir: Path | None = None
    ) -> None:
        settings = {"debug_inference_delay_ms": debug_delay_ms, "drain_pause_s": 0, "grace_period_s": 1}
        super().__init__(models_dir=models_dir, cache_dir=cache_dir, settings=settings, log_path=log_file)

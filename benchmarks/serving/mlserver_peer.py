"""Seldon MLServer 1.7 as the peer: its own venv in the benchmark's work folder, our minimal ONNX runtime."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnxruntime

from benchmarks.server_process import ServerProcess, free_port

MLSERVER_VERSION = "1.7.1"
# uvloop 0.21+ raises in asyncio.get_event_loop() without a running loop, which MLServer 1.7.1's parallel
# workers call at start: they die at once and the model never loads. With uvloop < 0.21 they start.
UVLOOP_PIN = "uvloop<0.21"
RUNTIME_MODULE = Path(__file__).with_name("mlserver_runtime.py")


def ensure_mlserver_venv(work_dir: Path) -> Path:
    """Create (once) a venv with MLServer and the same onnxruntime version riskserve uses."""
    venv = work_dir / "mlserver-venv"
    marker = venv / f".installed-{MLSERVER_VERSION}-ort{onnxruntime.__version__}-uvloop-pinned"
    if not marker.exists():
        print(f"installing MLServer {MLSERVER_VERSION} into {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "--quiet",
                f"mlserver=={MLSERVER_VERSION}",
                f"onnxruntime=={onnxruntime.__version__}",
                UVLOOP_PIN,
            ],
            check=True,
        )
        marker.touch()
    return venv


def start_mlserver(work_dir: Path, model_name: str, onnx_path: Path, parallel_workers: int) -> ServerProcess:
    """Start MLServer serving `onnx_path` as `model_name` on free 127.0.0.1 ports (not waiting for it)."""
    work_dir = work_dir.resolve()
    venv = ensure_mlserver_venv(work_dir)
    root = work_dir / "mlserver-repo"
    shutil.rmtree(root, ignore_errors=True)
    model_dir = root / model_name
    model_dir.mkdir(parents=True)
    shutil.copy(RUNTIME_MODULE, model_dir / "mlserver_runtime.py")
    shutil.copy(onnx_path, model_dir / "model.onnx")
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "grpc_port": grpc_port,
                "http_port": http_port,
                "metrics_port": metrics_port,
                "parallel_workers": parallel_workers,
                "debug": False,
            }
        )
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": model_name,
                "implementation": "mlserver_runtime.OnnxRiskRuntime",
                "parameters": {"uri": str(model_dir / "model.onnx")},
            }
        )
    )
    peer = ServerProcess(
        f"MLServer {MLSERVER_VERSION} (parallel_workers: {parallel_workers})",
        [str(venv / "bin" / "mlserver"), "start", str(root)],
        grpc_port,
        log_path=work_dir / f"mlserver-workers{parallel_workers}.log",
        env={"PYTHONPATH": str(model_dir)},
        cwd=root,
    )
    peer.launch()
    return peer

"""Scenario: what `riskserve serve` does with a damaged model file or quantization cache, case by case.

Each case is a fresh `riskserve serve` (models=fraud unless the case needs both) on a copy of the bundled
models and of the benchmark's warm cache, with one fault made before it starts:

- `scrambled_model`: 100 bytes in the middle of fraud's model.onnx overwritten (both models configured);
- `flipped_int8`, `truncated_report`, `missing_manifest`: one file of fraud's cache entry damaged;
- `int8_garbage_matching_manifest`, `bogus_verdict_matching_manifest`: the INT8 file's first bytes or the
  report's verdict rewritten and the manifest's checksum made to match;
- `read_only_cache` (a read-only bind mount), `full_cache` (a 4 KiB tmpfs), `cache_under_a_file`: a cold
  start with a cache directory that cannot be written (the mounts need root; a case that cannot be set up
  is reported as skipped).

Each case records whether the server stayed up, each model's health, what one fraud `Score` got, the
relevant log events and the seconds to `event=serving`.
"""

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.reliability.payloads import SCORE, holdout_transactions, unary
from benchmarks.server_process import REPO, RiskServe, ServerStartError

SERVING_LINE = re.compile(r"event=serving ")
EVENTS = ("model_unavailable", "model_unverified", "cache_corrupt", "cache_unwritable", "startup_failed")
INT8_FILE, REPORT_FILE, MANIFEST = "model.int8.onnx", "report.json", "manifest.json"
START_TIMEOUT_S = 240.0


def _scramble(path: Path, count: int, at: float) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + count] = np.random.default_rng(0).integers(0, 256, count, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _match_manifest(entry: Path, name: str) -> None:
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["files"][name] = hashlib.sha256((entry / name).read_bytes()).hexdigest()
    (entry / MANIFEST).write_text(json.dumps(manifest))


def _bogus_verdict(entry: Path) -> None:
    report = json.loads((entry / REPORT_FILE).read_text())
    (entry / REPORT_FILE).write_text(json.dumps(report | {"verdict": "bogus"}))
    _match_manifest(entry, REPORT_FILE)


def _int8_garbage(entry: Path) -> None:
    _scramble(entry / INT8_FILE, 64, 0.0)
    _match_manifest(entry, INT8_FILE)


ENTRY_FAULTS: dict[str, Callable[[Path], None]] = {
    "flipped_int8": lambda entry: _scramble(entry / INT8_FILE, 16, 0.5),
    "truncated_report": lambda entry: _truncate(entry / REPORT_FILE, 200),
    "missing_manifest": lambda entry: (entry / MANIFEST).unlink(),
    "int8_garbage_matching_manifest": _int8_garbage,
    "bogus_verdict_matching_manifest": _bogus_verdict,
}


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _unwritable_cache(kind: str, folder: Path) -> Path | None:
    """A cache directory that cannot be written, or None if this machine cannot make one."""
    if kind == "cache_under_a_file":
        (folder / "a-file").write_text("")
        return folder / "a-file" / "cache"
    target = folder / kind
    target.mkdir()
    if kind == "read_only_cache":
        source = folder / "ro-source"
        source.mkdir()
        ok = _mount("--bind", str(source), str(target)) and _mount("-o", "remount,bind,ro", str(target))
    else:
        ok = _mount("-t", "tmpfs", "-o", "size=4k", "tmpfs", str(target))
    return target if ok else None


async def _probe(target: str, body: bytes, models: tuple[str, ...]) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = {}
        for service in ("", *(f"model/{m}" for m in models)):
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                status[service or "server"] = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            except grpc.aio.AioRpcError as error:
                status[service or "server"] = error.code().name
        try:
            score = await unary(channel, SCORE)(body, timeout=5)
            answer = f"OK {score.model.precision} {score.model.gate_verdict}"
        except grpc.aio.AioRpcError as error:
            answer = f"{error.code().name}: {error.details()[:220]}"
    return {"health": status, "fraud_score": answer}


def _case(name: str, work: Path, models: Path, cache: Path, source: Path | None, extra: dict, body: bytes):
    models_served = ("fraud", "credit") if name == "scrambled_model" else ("fraud",)
    settings = {**extra, "models": ",".join(models_served)}
    server = RiskServe(
        models_dir=models,
        cache_dir=cache,
        settings=settings,
        log_path=work / f"server-startup-{name}.log",
        source_dir=source,
        label=name,
    )
    began = time.monotonic()
    try:
        server.start(ready="listening", timeout_s=START_TIMEOUT_S)
    except ServerStartError as error:
        return {"alive": False, "start_error": str(error)[-600:], "exit_status": server.process.returncode}
    served = server.wait_for_line(SERVING_LINE, START_TIMEOUT_S) is not None
    seconds = round(time.monotonic() - began, 1) if served else None
    result: dict[str, Any] = {"seconds_to_serving_line": seconds}
    try:
        if server.alive():
            result |= asyncio.run(_probe(server.target, body, models_served))
        result["alive"] = server.alive()
        result["log"] = [
            line.split("event=", 1)[1].replace(str(work), "<work>")[:240]
            for event in EVENTS
            for line in server.log_lines(event)
        ]
        if "fraud_score" in result:
            result["fraud_score"] = result["fraud_score"].replace(str(work), "<work>")
        result["traceback"] = "Traceback" in server.log_text()
    finally:
        result["exit_status"] = server.stop()
    return result


def run(work_dir: Path, cache: Path, source: Path | None, extra: dict) -> dict[str, Any]:
    """Every case; `cache` is the benchmark's warm cache (fraud's entry is copied, never touched)."""
    bundled = (source or REPO) / "models"
    body = holdout_transactions(1, 7)[0].SerializeToString()
    cases: dict[str, Any] = {}
    root = work_dir / "startup-faults"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    mounted: list[Path] = []
    try:
        if not (cache / "fraud").is_dir():  # `--only startup_faults` on a cold work folder
            _case("warm_up", root, bundled, cache, source, extra, body)
        scrambled = root / "scrambled-models"
        shutil.copytree(bundled, scrambled)
        _scramble(scrambled / "fraud" / "model.onnx", 100, 0.5)
        own = root / "cache-scrambled_model"  # a copy: an older server quantizing it must not prune ours
        shutil.copytree(cache, own)
        cases["scrambled_model"] = _case("scrambled_model", root, scrambled, own, source, extra, body)
        entries = [p for p in (cache / "fraud").iterdir() if not p.name.startswith(".")]
        newest = max(entries, key=lambda p: p.stat().st_mtime)
        for name, damage in ENTRY_FAULTS.items():
            own = root / f"cache-{name}"
            shutil.copytree(newest, own / "fraud" / newest.name)
            damage(own / "fraud" / newest.name)
            cases[name] = _case(name, root, bundled, own, source, extra, body)
        for name in ("read_only_cache", "full_cache", "cache_under_a_file"):
            unwritable = _unwritable_cache(name, root)
            if unwritable is None:
                cases[name] = {"skipped": "cannot mount here (needs root)"}
                continue
            if name != "cache_under_a_file":
                mounted.append(unwritable)
            cases[name] = _case(name, root, bundled, unwritable, source, extra, body)
    finally:
        for target in mounted:
            subprocess.run(["umount", str(target)], capture_output=True)
    return {
        "cases": cases,
        "command": "one fresh `riskserve serve` per case (models=fraud, both models for the scrambled "
        "model) on a copy of the bundled models and of fraud's warm cache entry, the fault made before it "
        "starts; then health of the server and each model and one fraud Score",
    }

"""Where one unary Score call's time goes: py-spy samples of riskserve while one client calls sequentially.

    .venv/bin/pip install py-spy      # once
    .venv/bin/python -m benchmarks.serving.profile_unary [--seconds 12] [--rate 1000]

Starts `riskserve serve` (fraud, INT8), sends sequential Score calls on one connection (the benchmark's
client and bytes) while `py-spy record --format raw` samples the server, then sorts each sampled stack
into a phase by the frames it contains. A phase's µs per call = its samples / sampling rate / calls. The
client's own CPU per call is measured in the client process. Writes JSON and prints a markdown table.
"""

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from benchmarks.serving.payloads import build_payloads
from benchmarks.serving.sequential import run_sequential
from benchmarks.serving.targets import (
    start_echo,
    start_listening_ort_floor,
    start_riskserve,
    wait_listening,
)

HERE = Path(__file__).resolve().parent
PY_SPY = Path(sys.executable).with_name("py-spy")

ORT = "ONNX Runtime session.run"
BATCHER = "micro-batcher + scorer glue (queue, handoff, futures)"
# Matched from the innermost frame outwards; the first phase whose pattern a frame matches wins.
PHASES: list[tuple[str, re.Pattern]] = [
    # the server calls the session's binding (InferenceSession._sess.run) from ModelRuntime._run_once: a
    # native call, so its innermost Python frame is _run_once (or _run_in_fixed_chunks around it); not
    # asyncio's BaseEventLoop._run_once, the outermost frame of every loop sample
    (ORT, re.compile(r"onnxruntime|ModelRuntime\._run_once \(|_run_in_fixed_chunks \(")),
    (
        "validation + feature mapping",
        re.compile(r"features\.py|onnx_inputs\.py|MessageColumns|_one_message|inference_converters"),
    ),
    ("decision + response message", re.compile(r"prediction\.py|fraud_scores|model_ref")),
    (
        "metrics + call scope + admission",
        re.compile(
            r"calls\.py|server/metrics/|latency_window|serving_metrics|prometheus_client|hdrh|concurrency_limit\.py"
        ),
    ),
    (BATCHER, re.compile(r"batcher\.py|model_runtime\.py")),
]
HANDLER = re.compile(r"domain_api\.py|inference_servicer\.py")
IDLE = "idle (event loop in epoll, threads waiting)"
IDLE_LEAVES = {"_worker", "Condition.wait", "Event.wait", "wait", "_wait_for_tstate_lock"}
AIO = "gRPC aio machinery (cygrpc callbacks, (de)serialization, HTTP/2, asyncio)"


def classify(stack: str) -> str:
    """The phase of one collapsed py-spy stack ('process;thread (id): name;outer;...;inner')."""
    frames = stack.split(";")
    thread = frames[1] if len(frames) > 1 else ""
    frames = frames[2:]
    leaf = frames[-1].split(" (")[0] if frames else ""
    if leaf in IDLE_LEAVES or "select" in leaf.lower():
        return IDLE
    if not thread.endswith("MainThread"):
        if "ort-" not in thread:
            return "other threads (gRPC poller, metrics HTTP)"
        if any(PHASES[0][1].search(f) for f in frames):
            return f"{ORT} (model thread)"
        return "model thread handoff (executor futures, waking the loop)"
    for frame in reversed(frames):
        for name, pattern in PHASES:
            if pattern.search(frame):
                return name
        if HANDLER.search(frame):
            return "handler, other (scope, awaits, message access)"
    return AIO


def _start(target: str, work: Path):
    """The server to profile: riskserve (once SERVING), the echo floor or the ORT-inline floor (once
    listening; the floor on riskserve's INT8 file, so riskserve runs first)."""
    if target == "riskserve":
        return start_riskserve(work, work / "cache")
    if target == "ort floor":
        return start_listening_ort_floor(work, work / "cache")
    server = start_echo(work)
    if not wait_listening(server):
        server.stop()
        raise SystemExit(f"{server.label} did not start; see {server.log_path}")
    return server


def own_frame(stack: str) -> str:
    """The innermost frame of a loop-thread sample, as 'file:function' (the py-spy frame minus its line)."""
    frames = stack.split(";")
    if len(frames) < 3 or not frames[1].endswith("MainThread"):
        return "(other threads)"
    frame = frames[-1]
    name, _, where = frame.partition(" (")
    return f"{where.split(':')[0].rsplit('/', 1)[-1]}:{name}"


def profile(seconds: float, work: Path, target: str = "riskserve") -> dict:
    """Profile `target` (riskserve, echo floor, ort floor) under sequential Score calls."""
    server = _start(target, work)
    try:
        pool = build_payloads().score
        run_sequential(server.target, pool, 2000)  # warm
        raw = work / f"profile-{target.replace(' ', '-')}.raw"
        spy = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(server.pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "1000",
                "--format",
                "raw",
                "--threads",
                "--subprocesses",
                "--nonblocking",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches
        result: dict = {}

        def client() -> None:
            started = time.perf_counter()
            summary = None
            total = 0
            while time.perf_counter() - started < seconds - 2.0:
                summary = run_sequential(server.target, pool, 1000, warmup_calls=0)
                total += summary.calls
                result.setdefault("p50_us", []).append(summary.p50_us)
                result.setdefault("client_cpu_us", []).append(summary.client_cpu_s / summary.calls * 1e6)
            result["calls"] = total
            result["seconds"] = time.perf_counter() - started

        thread = threading.Thread(target=client)
        thread.start()
        thread.join()
        spy.wait(timeout=seconds + 30)
        stacks, functions = Counter(), Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            stacks[classify(stack)] += int(count)
            if classify(stack) != IDLE:
                functions[own_frame(stack)] += int(count)
    finally:
        server.stop()
    calls, wall = result["calls"], result["seconds"]
    per_call = {name: count / 1000 / calls * 1e6 for name, count in stacks.items()}  # 1000 Hz sampling
    return {
        "server": server.label,
        "calls": calls,
        "wall_s": wall,
        "wall_us_per_call": wall / calls * 1e6,
        "p50_us": sorted(result["p50_us"])[len(result["p50_us"]) // 2],
        "client_cpu_us_per_call": sorted(result["client_cpu_us"])[len(result["client_cpu_us"]) // 2],
        "server_samples": dict(stacks),
        "server_us_per_call": per_call,
        "loop_us_per_call_by_function": {
            name: count / 1000 / calls * 1e6 for name, count in functions.most_common(60)
        },
    }


def markdown(data: dict) -> str:
    lines = ["| phase | µs per call | share of busy server samples |", "|---|---:|---:|"]
    busy = {k: v for k, v in data["server_us_per_call"].items() if k != IDLE}
    total = sum(v for k, v in data["server_samples"].items() if k != IDLE)
    for name, us in sorted(busy.items(), key=lambda kv: -kv[1]):
        lines.append(f"| server: {name} | {us:.0f} | {data['server_samples'][name] / total:.0%} |")
    lines.append(
        f"| client: grpcio blocking stub, send + receive (CPU) | {data['client_cpu_us_per_call']:.0f} | |"
    )
    lines.append(
        f"| end to end, wall per call (median p50 {data['p50_us']:.0f} µs) | "
        f"{data['wall_us_per_call']:.0f} | |"
    )
    return "\n".join(lines)


def function_diff(server: dict, floor: dict, top: int = 25) -> str:
    """The loop thread's functions (innermost frame) by µs per call, riskserve against the ORT-inline floor,
    largest excess first: where riskserve's extra CPU per call is spent."""
    ours, theirs = server["loop_us_per_call_by_function"], floor["loop_us_per_call_by_function"]
    rows = sorted(set(ours) | set(theirs), key=lambda k: -(ours.get(k, 0.0) - theirs.get(k, 0.0)))
    lines = [
        "| loop-thread function (innermost frame) | riskserve µs | floor µs | excess |",
        "|---|---:|---:|---:|",
    ]
    for name in rows[:top]:
        a, b = ours.get(name, 0.0), theirs.get(name, 0.0)
        lines.append(f"| {name} | {a:.0f} | {b:.0f} | {a - b:+.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--no-echo", action="store_true", help="skip profiling the echo floor")
    parser.add_argument("--work-dir", type=Path, default=HERE / "work")
    parser.add_argument("--output", type=Path, default=HERE / "profile.json")
    args = parser.parse_args()
    if not PY_SPY.exists():
        raise SystemExit(f"py-spy not found at {PY_SPY}: .venv/bin/pip install py-spy")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = {"riskserve": profile(args.seconds, args.work_dir)}
    print(markdown(data["riskserve"]), flush=True)
    data["ort floor"] = profile(args.seconds, args.work_dir, "ort floor")
    print("\nORT-inline floor, same client:\n" + markdown(data["ort floor"]))
    print("\n" + function_diff(data["riskserve"], data["ort floor"]), flush=True)
    if not args.no_echo:
        data["echo floor"] = profile(args.seconds, args.work_dir, "echo floor")
        print("\necho floor, same client:\n" + markdown(data["echo floor"]))
    args.output.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

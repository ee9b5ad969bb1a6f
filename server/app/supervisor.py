"""`workers` > 1: one supervisor process and N serving processes on one port (SO_REUSEPORT).

supervisor: validate configs -> quantize/gate every model ONCE (the workers then load from the cache) ->
            reset the metrics shared dir -> reserve the port -> /metrics (merged snapshots of every
            process) -> start N workers (spawned) -> wait.
worker:     the ordinary RiskServer (server/app/serving.py) with `worker=i`: the same gRPC server, health
            and drain, bound with SO_REUSEPORT, recording metrics into the shared dir, no metrics port.
SIGTERM/SIGINT to the supervisor: SIGTERM to every worker, each drains (health NOT_SERVING, pause, refuse,
grace) and exits 0; the supervisor exits 0 once all did. A second signal is forwarded too (workers stop at
once, exit 130). A worker that exits on its own (crash, failed startup) is logged, the others are drained
and the supervisor exits 1: the orchestrator restarts the whole replica rather than it running short of
capacity while it still says SERVING.
"""

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path

from server.app import event_loop
from server.app.listen import ListenError, probe_bind, start_metrics
from server.app.logging_setup import configure_logging
from server.app.startup import discover_models
from server.config.settings import ServerSettings
from server.metrics import ServingMetrics, reset_shared_dir
from server.quantization.pipeline import prepare_model
from server.quantization.summary import format_summary

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
PR_SET_PDEATHSIG = 1
STOP_MARGIN_S = 10.0  # beyond drain_pause_s + grace_period_s before a worker is killed


def _follow_supervisor(supervisor_pid: int) -> None:
    """Own process group, so a signal to the supervisor's group (Ctrl-C, `timeout`, `kill -- -PGID`) reaches
    the workers once, relayed by the supervisor, not twice (a second signal means "stop now"); and SIGTERM
    when the supervisor dies, even by SIGKILL (Linux PR_SET_PDEATHSIG), so no worker outlives it."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        log.warning("event=no_parent_death_signal")
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        sys.exit(EXIT_FAILED)


def _worker_main(settings: ServerSettings, index: int, supervisor_pid: int) -> None:
    """Entry point of a spawned worker process."""
    from server.app.serving import RiskServer

    configure_logging(settings.log_level, settings.log_format)
    _follow_supervisor(supervisor_pid)
    metrics = ServingMetrics(shared_dir=settings.metrics_shared_dir)
    try:
        status = event_loop.run(
            RiskServer(settings, metrics, worker=index).run_until_signal(signals=(signal.SIGTERM,)),
            settings.event_loop,
        )
    except Exception as exc:
        log.exception("event=worker_failed worker=%d error=%r", index, str(exc))
        status = EXIT_FAILED
    finally:
        metrics.close()
    sys.exit(status)


def _reserve_port(host: str, port: int) -> socket.socket:
    """ListenError if anything listens on host:port; else hold the port (bound, not listening,
    SO_REUSEPORT) so the workers can join it and another server cannot (its own probe fails). Port 0 picks
    a free one."""
    # the probe has no SO_REUSEPORT: it fails while another server (or reservation) holds the port
    (family, kind, proto, address), code = probe_bind(host, port)
    if code is not None:
        raise ListenError(host, port, code, "--port")
    reservation = socket.socket(family, kind, proto)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind(address)
    return reservation


def prepare_all(settings: ServerSettings) -> None:
    """Quantize and gate every model once, so every worker only loads the result from the cache. A model
    that fails is left to the workers, which keep it out and serve the others (unless
    `exit_on_model_error`: then its error propagates)."""
    configs, _ = discover_models(settings)  # the workers report bad configs themselves
    for config in configs:
        started = time.perf_counter()
        try:
            prepared = prepare_model(
                config, Path(settings.cache_dir), progress=lambda m: log.info("event=prepare %s", m)
            )
        except Exception as exc:
            if settings.exit_on_model_error:
                raise
            log.warning("event=model_prepare_failed model=%s detail=%r", config.name, str(exc))
            continue
        if prepared.report and not prepared.facts.from_cache:
            print(format_summary(prepared.report), file=sys.stderr)
        log.info(
            "event=model_prepared model=%s precision=%s gate_verdict=%s from_cache=%s seconds=%.2f",
            config.name,
            prepared.facts.precision.value,
            prepared.facts.gate_verdict.value,
            prepared.facts.from_cache,
            time.perf_counter() - started,
        )


class Supervisor:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.workers: list[multiprocessing.Process] = []
        self._signals = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1
        os.write(self._wake_w, b"x")

    def run(self) -> int:
        """Start everything, wait for a signal or a worker's exit, drain. Returns the exit status."""
        settings = self.settings
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        prepare_all(settings)  # ConfigError / QuantizationError propagate: the CLI maps them to 2 / 1
        if self._signals:
            log.info("event=stopped_before_serving")
            return EXIT_OK
        shared_dir = settings.metrics_shared_dir or Path(tempfile.mkdtemp(prefix="riskserve-metrics-"))
        reset_shared_dir(shared_dir)
        reservation = _reserve_port(settings.host, settings.port)
        port = reservation.getsockname()[1]
        metrics = ServingMetrics(shared_dir=shared_dir)
        try:
            http = start_metrics(metrics, settings)
        except ListenError:
            metrics.close()
            reservation.close()
            raise
        worker_settings = settings.model_copy(update={"port": port, "metrics_shared_dir": shared_dir})
        context = multiprocessing.get_context("spawn")
        try:
            for index in range(settings.workers):
                process = context.Process(
                    target=_worker_main,
                    args=(worker_settings, index, os.getpid()),
                    name=f"riskserve-worker-{index}",
                )
                process.start()
                self.workers.append(process)
            log.info(
                "event=listening address=%s:%d metrics_port=%d workers=%d worker_pids=%s metrics_dir=%s",
                settings.host,
                port,
                http.port,
                settings.workers,
                ",".join(str(p.pid) for p in self.workers),
                shared_dir,
            )
            return self._supervise()
        finally:
            for process in self.workers:
                if process.is_alive():
                    process.kill()
            http.close()
            metrics.close()
            reservation.close()

    def _supervise(self) -> int:
        died = None
        while died is None and self._signals == 0:
            ready = wait([p.sentinel for p in self.workers] + [self._wake_r])
            for process in self.workers:
                if process.sentinel in ready and not process.is_alive():
                    died = process
                    log.error(
                        "event=worker_exited worker=%s pid=%d exit_code=%s action=drain_all_and_exit",
                        process.name,
                        process.pid,
                        process.exitcode,
                    )
                    break
        signals_sent = self._relay_stop()
        limit = time.monotonic() + self.settings.drain_pause_s + self.settings.grace_period_s + STOP_MARGIN_S
        while any(p.is_alive() for p in self.workers) and time.monotonic() < limit:
            if self._signals > signals_sent:  # a second signal: workers stop at once
                signals_sent = self._relay_stop()
            wait([p.sentinel for p in self.workers if p.is_alive()] + [self._wake_r], timeout=0.5)
        codes = {p.name: p.exitcode for p in self.workers}
        log.info("event=workers_stopped exit_codes=%s", ",".join(f"{k}={v}" for k, v in codes.items()))
        if died is not None or any(p.is_alive() for p in self.workers):
            return EXIT_FAILED
        if any(code == EXIT_INTERRUPTED for code in codes.values()):
            return EXIT_INTERRUPTED
        return EXIT_OK if all(code == 0 for code in codes.values()) else EXIT_FAILED

    def _relay_stop(self) -> int:
        """SIGTERM every live worker; returns how many signals the supervisor had received."""
        seen = self._signals
        while True:  # empty the wake-up pipe
            try:
                if not os.read(self._wake_r, 64):
                    break
            except BlockingIOError:
                break
        for process in self.workers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        log.info("event=drain_workers signals=%d workers=%d", seen, sum(p.is_alive() for p in self.workers))
        return seen


def run_supervisor(settings: ServerSettings) -> int:
    return Supervisor(settings).run()

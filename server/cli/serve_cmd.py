"""`riskserve serve`: quantize, gate and serve every model of the repository over gRPC.

Settings come from flags > RISKSERVE_* environment variables > --config YAML > defaults
(see docs/server.md for every setting). SIGTERM or Ctrl-C drains gracefully and exits 0.
`--workers N` (N > 1): a supervisor and N serving processes on one port (docs/server.md, Processes).
Exit 1 if startup failed (e.g. a port in use: one line on stderr), 2 for bad settings.
"""

import argparse
import sys
from pathlib import Path

from server.config.errors import ConfigError
from server.config.settings import ServerSettings, load_settings

EXIT_BAD_CONFIG = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the models over gRPC (domain API + Open Inference Protocol)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file of server settings")
    parser.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="gRPC port (default 50051)")
    parser.add_argument("--metrics-host", default=None, help="Prometheus address (default 127.0.0.1)")
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (default 9100)")
    parser.add_argument("--models-dir", type=Path, default=None, help="model repository (default: bundled)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="quantization cache directory")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="serve only this model (repeatable; default: every model in the repository)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="serving processes sharing the port (default 1)"
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {
        "host": args.host,
        "port": args.port,
        "metrics_host": args.metrics_host,
        "metrics_port": args.metrics_port,
        "models_dir": args.models_dir,
        "cache_dir": args.cache_dir,
        "models": tuple(args.models) if args.models else None,
        "workers": args.workers,
        "log_level": args.log_level,
    }
    try:
        settings = load_settings(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    from server.app import event_loop
    from server.app.listen import ListenError
    from server.app.logging_setup import configure_logging
    from server.app.serving import EXIT_STARTUP_FAILED, RiskServer

    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        return _run_workers(settings)

    async def main() -> int:
        try:
            return await RiskServer(settings).run_until_signal()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        except ListenError as exc:  # one line, no traceback: the port is taken
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_STARTUP_FAILED

    return event_loop.run(main(), settings.event_loop)


def _run_workers(settings: ServerSettings) -> int:
    """A supervisor and `settings.workers` serving processes (server/app/supervisor.py)."""
    from server.app.listen import ListenError
    from server.app.supervisor import EXIT_FAILED, run_supervisor
    from server.quantization.errors import QuantizationError

    try:
        return run_supervisor(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except (QuantizationError, ListenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

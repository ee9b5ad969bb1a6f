"""`riskserve models reload [MODEL]`: ask a running server's ModelAdmin to look for changed or new model
versions now, and print what each model did.

The admin RPC is off unless the server runs with `admin_enabled`; it listens on admin_host:admin_port.
Exit status: 0 every model swapped to its new version or was unchanged; 1 a version was kept out (it
failed to load or pass its gate; the old version serves on, the line says why); 2 the server cannot be
reached, the admin RPC is off, the model is not configured, or the settings cannot be read.
"""

import argparse
import sys

import grpc

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.cli import client_channel
from server.cli.client_channel import ClientSettings, default_target
from server.config.errors import ConfigError

ADMIN_TARGET_HELP = "Here the target is the admin port: admin_host:admin_port, unless --target is given.\n"
EXIT_KEPT_OUT = 1
EXIT_UNREACHABLE = 2


def register(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "reload",
        help="reload changed or new model versions in a running server (admin RPC)",
        description=f"{__doc__}\n{client_channel.CONNECTION_HELP}{ADMIN_TARGET_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", default="", help="one model (default: every configured model)")
    client_channel.add_arguments(parser)
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait (a cold quantization takes a while)"
    )
    parser.set_defaults(func=run)


def describe(status: scoring_pb2.ModelVersionStatus) -> str:
    """One line per model: swapped to version X / kept version Y because <reason> / unchanged."""
    serving = status.serving.version or "none"
    if status.outcome == "swapped":
        ref = status.serving
        return f"{status.model}: swapped to version {serving} ({ref.precision}, gate {ref.gate_verdict})"
    if status.outcome == "kept_out":
        return (
            f"{status.model}: kept version {serving} because version {status.kept_out_version} was kept out: "
            f"{status.kept_out_reason}"
        )
    return f"{status.model}: unchanged (version {serving})"


def run(args: argparse.Namespace) -> int:
    try:
        client = ClientSettings.from_args(args)
        server = client.server
        if args.target is None:
            if not server.admin_enabled:
                raise ConfigError(
                    "the admin RPC is off in the server's settings (admin_enabled: false); pass --target if "
                    "the running server has it on"
                )
            admin = server.model_copy(update={"host": server.admin_host, "port": server.admin_port})
            client = ClientSettings.from_server(
                server, default_target(admin), args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name
            )
        channel = client.channel()
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    with channel:
        try:
            answer = scoring_pb2_grpc.ModelAdminStub(channel).Reload(
                scoring_pb2.ReloadRequest(model=args.model), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(f"{client.target}: {exc.code().name} {exc.details()}", file=sys.stderr)
            return EXIT_UNREACHABLE
    for status in answer.models:
        print(describe(status))
    return EXIT_KEPT_OUT if any(s.outcome == "kept_out" for s in answer.models) else 0

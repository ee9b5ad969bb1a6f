"""`riskserve health`: ask a running server's grpc.health.v1 service; exit 0 iff it answers SERVING.

Used by the Docker HEALTHCHECK. Exit 1 for NOT_SERVING / UNKNOWN, 2 if the server can't be reached.
"""

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

EXIT_NOT_SERVING = 1
EXIT_UNREACHABLE = 2


def default_target() -> str:
    """127.0.0.1 and the port the server would use here (RISKSERVE_PORT, else 50051)."""
    return f"127.0.0.1:{os.environ.get('RISKSERVE_PORT') or 50051}"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "health",
        help="check a running server's health (exit 0 iff SERVING)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", default=None, help="host:port of the server (default 127.0.0.1:50051)")
    parser.add_argument(
        "--service",
        default="",
        help="service to check, e.g. riskserve.v1.FraudScoring (default: the whole server)",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = args.target or default_target()
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(
                f"{target} {args.service or '(server)'}: {exc.code().name} {exc.details()}", file=sys.stderr
            )
            return EXIT_UNREACHABLE
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"{target} {args.service or '(server)'}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else EXIT_NOT_SERVING

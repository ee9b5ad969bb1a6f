"""Before a run: is the target a server of the scenario's protocol serving its models, and is the metrics
URL a riskserve metrics endpoint? One clear line (LoadTestError, exit 2) instead of a run of errors or a
traceback.

The target gets one call of each mix entry (its first request body): UNIMPLEMENTED means it does not serve
the protocol's service (not a riskserve or Open Inference Protocol server, or the wrong `protocol`),
NOT_FOUND that it does not serve the entry's model. Any other answer, refusals included, is the run's
business. The metrics URL is fetched once (server_metrics.check_metrics_url).
"""

import grpc

from loadtest.errors import LoadTestError
from loadtest.plan import RequestPool
from loadtest.scenario import MixEntry, Protocol, Scenario
from loadtest.server_metrics import check_metrics_url

CALL_TIMEOUT_S = 10.0


def check(scenario: Scenario, pools: tuple[RequestPool, ...]) -> None:
    """LoadTestError naming the problem, or None when the run can start."""
    check_target(scenario, pools)
    if scenario.metrics_url:
        check_metrics_url(scenario.metrics_url)


def check_target(scenario: Scenario, pools: tuple[RequestPool, ...]) -> None:
    with grpc.insecure_channel(scenario.target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=scenario.load.connect_timeout_s)
        except grpc.FutureTimeoutError as exc:
            raise LoadTestError(
                f"cannot connect to {scenario.target} within {scenario.load.connect_timeout_s:g} s; "
                "is the server running there?"
            ) from exc
        for entry, pool in zip(scenario.mix, pools, strict=True):
            _try_one(channel, scenario, entry, pool)


def _try_one(channel: grpc.Channel, scenario: Scenario, entry: MixEntry, pool: RequestPool) -> None:
    body = pool.bodies[0]
    try:
        if pool.streaming:
            answers = channel.stream_stream(pool.method_path)(iter([body]), timeout=CALL_TIMEOUT_S)
            next(iter(answers), None)
        else:
            channel.unary_unary(pool.method_path)(body, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        code, details = error.code(), (error.details() or "")[:200]
        if code is grpc.StatusCode.UNIMPLEMENTED:
            hint = (
                "use protocol: oip for Triton or MLServer"
                if scenario.protocol is Protocol.RISKSERVE
                else "is it an Open Inference Protocol server?"
            )
            raise LoadTestError(
                f"target {scenario.target} does not serve {pool.method_path} (UNIMPLEMENTED): not a "
                f"{scenario.protocol.value} server; {hint}"
            ) from error
        if code is grpc.StatusCode.NOT_FOUND:
            raise LoadTestError(
                f"mix entry {entry.call.value}: target {scenario.target} does not serve model "
                f"{entry.model_name!r} (NOT_FOUND: {details})"
            ) from error

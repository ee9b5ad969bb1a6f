"""Requests that do not parse are INVALID_ARGUMENT without a traceback per call; echoed client text is
cut to a fixed length and never shows a card number; reflection can be turned off."""

import logging

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.grpc import service_pb2

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.runtime.echo import MASK, echo, luhn_valid, mask_card_numbers, safe_details
from tests.e2e.requests import transaction

GARBAGE = b"\xff\xff\xff\xff\x0f"
UNARY = (
    "/riskserve.v1.FraudScoring/Score",
    "/riskserve.v1.FraudScoring/ScoreBatch",
    "/riskserve.v1.CreditScoring/Assess",
    "/inference.GRPCInferenceService/ModelInfer",
    "/inference.GRPCInferenceService/ModelMetadata",
    "/grpc.health.v1.Health/Check",
)
CARD = "4111 1111 1111 1111"  # a test PAN: Luhn-valid


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


@pytest.mark.parametrize("method", UNARY)
def test_an_unparseable_request_is_invalid_argument_without_a_traceback(channel, method, caplog):
    with caplog.at_level(logging.WARNING):
        error = _error(lambda: channel.unary_unary(method)(GARBAGE, timeout=5))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("request: not a valid ") and "(5 bytes)" in error.details()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(
    ("method", "good", "type_name"),
    [
        ("/riskserve.v1.FraudScoring/ScoreStream", transaction("s-1"), "riskserve.v1.Transaction"),
        (
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            reflection_pb2.ServerReflectionRequest(list_services=""),
            "grpc.reflection.v1alpha.ServerReflectionRequest",
        ),
    ],
)
def test_an_unparseable_message_ends_a_stream_invalid_argument(channel, caplog, method, good, type_name):
    with caplog.at_level(logging.WARNING):
        answers = channel.stream_stream(method)(iter([good.SerializeToString(), GARBAGE]), timeout=5)
        error = _error(lambda: list(answers))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"request: not a valid {type_name} message")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_unparseable_requests_are_counted(server, channel):
    def refused() -> float:
        return (
            server.server.metrics.snapshot()
            .counters["riskserve_requests_rejected_total"]
            .get(("unknown", "unparseable"), 0)
        )

    before = refused()
    for _ in range(3):
        _error(lambda: channel.unary_unary(UNARY[0])(GARBAGE, timeout=5))
    assert refused() == before + 3


def test_a_20_kb_model_name_is_not_found_with_a_short_message(channel):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    error = _error(lambda: fraud.Score(transaction(model="m" * 20_000), timeout=5))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert len(error.details()) < 200 and "(20000 chars)" in error.details()


def test_a_card_number_sent_as_a_model_name_is_never_echoed(channel):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    error = _error(lambda: fraud.Score(transaction(model=CARD), timeout=5))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert MASK in error.details() and "4111" not in error.details()


def test_every_status_message_is_capped_and_masked_whoever_wrote_it(channel):
    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
    error = _error(lambda: fraud.Score(transaction(currency="4111-1111-1111-1111"), timeout=5))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("currency:") and "4111" not in error.details()
    request = service_pb2.ModelInferRequest(model_name="fraud")
    request.inputs.add(name="x" * 5000, datatype="FP32", shape=[1, 1]).contents.fp32_contents.append(1.0)
    infer = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer", request_serializer=lambda m: m.SerializeToString()
    )
    error = _error(lambda: infer(request, timeout=5))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and len(error.details()) < 1100


def test_reflection_can_be_turned_off(start_server, model_repo):
    running = start_server(model_repo, reflection=False).wait_ready()
    with grpc.insecure_channel(running.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        error = _error(lambda: list(stub.ServerReflectionInfo(iter([ask]), timeout=5)))
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("4111111111111111", MASK),
        ("card 4111-1111-1111-1111 here", f"card {MASK} here"),
        ("5500 0000 0000 0004", MASK),
        ("378282246310005", MASK),  # 15 digits (Amex)
        ("4111111111111112", "4111111111111112"),  # fails Luhn: not a card number
        ("123456789012", "123456789012"),  # 12 digits: too short
        ("41111111111111111111111", "41111111111111111111111"),  # 23 digits: not a card number
    ],
)
def test_card_numbers_are_masked(text, shown):
    assert mask_card_numbers(text) == shown


def test_echo_cuts_masks_and_keeps_one_line():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert echo("fraud") == "fraud"
    assert echo("a" * 100) == "a" * 64 + "... (100 chars)"
    assert echo("a\nb\x00c") == "a?b?c"
    assert echo(f"x{CARD}") == f"x{MASK}"
    assert len(safe_details("d" * 50_000)) < 1100

"""The domain API's credit door: riskserve.v1 CreditScoring.Assess.

Converts an Application to named feature columns, calls the scoring core once (ModelRuntime.predict
with reason codes) and converts the Prediction to a CreditAssessment. Errors, drain and metrics:
server/api/calls.py.
"""

from collections.abc import Sequence

import grpc

from server.api.calls import Calls
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.api.model_ref import model_ref
from server.config.errors import ConfigError
from server.config.model_config import ModelConfig, ModelTask
from server.runtime.repository import ModelRepository

_APPLICATION_FIELDS = frozenset(scoring_pb2.Application.DESCRIPTOR.fields_by_name)


def check_application_sources(config: ModelConfig) -> None:
    """Fail at startup if a credit model needs an input no Application field provides."""
    for name in config.input_names:
        if name not in _APPLICATION_FIELDS:
            raise ConfigError(
                f"model {config.name}: input '{name}' has no source in riskserve.v1.Application"
            )


def application_namer(feature: str, row: int | None) -> str:
    return feature


def application_columns(application: scoring_pb2.Application, input_names: Sequence[str]) -> dict[str, list]:
    return {name: [getattr(application, name)] for name in input_names}


class CreditScoringServicer(scoring_pb2_grpc.CreditScoringServicer):
    def __init__(self, repository: ModelRepository, calls: Calls) -> None:
        self.repository = repository
        self.calls = calls

    async def Assess(self, request: scoring_pb2.Application, context: grpc.aio.ServicerContext):
        slot = self.repository.slot(request.model, ModelTask.CREDIT)
        async with self.calls.unary(context, slot.label, "Assess") as call:
            runtime = slot.ready()
            columns = application_columns(request, runtime.config.input_names)
            prediction = call.prediction = await runtime.predict(
                columns, 1, application_namer, call.deadline, explain=True
            )
            return scoring_pb2.CreditAssessment(
                application_id=request.application_id,
                probability_of_default=prediction.probabilities[0],
                score=prediction.scores[0],
                decision=prediction.decisions[0],
                reasons=[
                    scoring_pb2.ReasonCode(
                        code=r.code, feature=r.feature, description=r.description, contribution=r.contribution
                    )
                    for r in prediction.reasons or ()
                ],
                model=model_ref(runtime.facts),
                server_latency_us=call.latency_us(),
            )

"""The ModelRef every domain answer carries: which model, version and precision scored it."""

from server.api.gen.riskserve.v1 import scoring_pb2
from server.served_model import ModelFacts


def model_ref(facts: ModelFacts) -> scoring_pb2.ModelRef:
    return scoring_pb2.ModelRef(
        name=facts.name, version=facts.version, precision=facts.precision, gate_verdict=facts.gate_verdict
    )

"""`riskserve serve` with unary Score's handler cut down to part of its work, for
benchmarks/serving/score_ablation.py: `python -m benchmarks.serving.ablation_server serve ...` with
RISKSERVE_BENCH_SCORE=VARIANT. Each variant adds a layer of what riskserve's Score does to the one before:

- `floor-work`: the ORT-inline floor's work in riskserve's process: the served model's one-row reader and
  feeds, its session run, an answer of transaction_id and probability;
- `decided`: + the risk score and decision (prediction.decide_rows) and the full answer (the model's
  template with its ModelRef, the latency), as Score builds it (domain_api.fraud_scores);
- `recorded`: + the deadline read, the door's counters and the call's metrics (in-flight gauge, latency
  histograms, rolling HDR window, score bins; serving_metrics.observe_prediction).

The rest of riskserve's Score (the call scope's drain and admission checks and error mapping, version and
split routing, the micro-batcher's bookkeeping and deadline check, the batch-size histogram, the live
INT8-vs-FP32 sample) is what unpatched riskserve adds to `recorded`. Benchmark code only: the server has no
such hooks; the patch is applied before the CLI runs. The variants answer well-formed requests to the
default model only and report no errors.
"""

import os
import sys
import time

from server.api import domain_api
from server.api.gen.riskserve.v1 import scoring_pb2
from server.runtime.prediction import Prediction, decide_rows

VARIANT_VARIABLE = "RISKSERVE_BENCH_SCORE"
VARIANTS = ("floor-work", "decided", "recorded")


def _served(servicer: domain_api.FraudScoringServicer, request: scoring_pb2.Transaction):
    """(slot, runtime, its per-model constants, the request's feeds) as Score's hot path gets them."""
    slot = servicer._routes.get(request.model)
    runtime = slot.serving
    served = servicer._models.get(runtime) or servicer._model(runtime)
    return slot, runtime, served, runtime.schema.one_row_feeds(*served.reader.one_row(request))


async def floor_work(self, request, context):
    _, runtime, _, feeds = _served(self, request)
    outputs = runtime._run_once(feeds)
    probability = float(outputs[0, runtime.positive_column])
    return scoring_pb2.FraudScore(transaction_id=request.transaction_id, probability=probability)


async def decided(self, request, context):
    started = time.perf_counter()
    _, runtime, served, feeds = _served(self, request)
    outputs = runtime._run_once(feeds)
    probabilities, scores, decisions = decide_rows(runtime.config, outputs, runtime.positive_column)
    prediction = Prediction(outputs, probabilities, scores, decisions, None, 0.0, 0.0)
    latency_us = int((time.perf_counter() - started) * 1e6)
    return domain_api.fraud_scores([request], prediction, served.answer, latency_us)[0]


async def recorded(self, request, context):
    started = time.perf_counter()
    context.time_remaining()
    calls = self.calls
    admission, drain, metrics = calls.admission, calls.drain, calls.metrics
    slot, runtime, served, feeds = _served(self, request)
    drain.inflight += 1
    admission.held += 1
    admission.active += 1
    metrics.inflight_add(slot.label, "Score", 1)
    ran = time.perf_counter()
    outputs = runtime._run_once(feeds)
    inference_s = time.perf_counter() - ran
    probabilities, scores, decisions = decide_rows(runtime.config, outputs, runtime.positive_column)
    prediction = Prediction(outputs, probabilities, scores, decisions, None, ran - started, inference_s)
    answer = domain_api.fraud_scores(
        [request], prediction, served.answer, int((time.perf_counter() - started) * 1e6)
    )[0]
    admission.held -= 1
    admission.active -= 1
    drain.inflight -= 1
    metrics.observe_prediction(slot.label, "Score", "OK", time.perf_counter() - started, prediction, True)
    return answer


def main() -> int:
    variant = os.environ.get(VARIANT_VARIABLE)
    if variant:
        if variant not in VARIANTS:
            raise SystemExit(f"{VARIANT_VARIABLE}={variant}: one of {', '.join(VARIANTS)}")
        handler = {"floor-work": floor_work, "decided": decided, "recorded": recorded}[variant]
        domain_api.FraudScoringServicer.Score = handler
    from server.cli.main import main as riskserve

    return riskserve(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

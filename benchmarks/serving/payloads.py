"""The same request bytes for every server and every client: the load generator's own request pools.

Built once from the fraud holdout by `loadtest.request_bodies` (already-serialized protobuf), so the
sequential client and the open-loop generator send byte-identical requests to the echo floor, riskserve
and MLServer.
"""

from dataclasses import dataclass, replace

from loadtest.plan import RequestPool
from loadtest.request_bodies import build_pool
from loadtest.scenario import CallKind, MixEntry

MODEL = "fraud"
BATCH_ROWS = 256


@dataclass(frozen=True)
class Payloads:
    score: RequestPool  # FraudScoring.Score, one Transaction
    score_batch: RequestPool  # FraudScoring.ScoreBatch, BATCH_ROWS transactions
    infer: RequestPool  # GRPCInferenceService.ModelInfer, one row as [1, 1] tensors
    infer_batch: RequestPool  # ModelInfer, BATCH_ROWS rows as [BATCH_ROWS, 1] tensors
    stream: RequestPool  # FraudScoring.ScoreStream, one Transaction per message
    score_batch_columns: RequestPool  # ScoreBatch bodies with answer_layout COLUMNS (packed answers)

    def pools(self) -> dict[str, RequestPool]:
        return {
            "score": self.score,
            "score_batch": self.score_batch,
            "infer": self.infer,
            "infer_batch": self.infer_batch,
            "stream": self.stream,
            "score_batch_columns": self.score_batch_columns,
        }


def mix_entry(kind: str) -> MixEntry:
    """The load generator's mix entry for a payload kind (score, score_batch, infer, infer_batch, stream)."""
    if kind == "score":
        return MixEntry(call=CallKind.FRAUD_SCORE)
    if kind == "score_batch":
        return MixEntry(call=CallKind.FRAUD_SCORE_BATCH, batch_size=BATCH_ROWS)
    if kind == "infer":
        return MixEntry(call=CallKind.OIP_INFER, model=MODEL)
    if kind == "infer_batch":
        return MixEntry(call=CallKind.OIP_INFER, model=MODEL, batch_size=BATCH_ROWS)
    if kind == "stream":
        return MixEntry(call=CallKind.FRAUD_SCORE_STREAM)
    raise ValueError(f"unknown payload kind {kind!r}")


COLUMNS_FIELD = b"\x18\x01"  # TransactionBatch.answer_layout (field 3, varint) = COLUMNS, appended


def build_payloads() -> Payloads:
    score_batch = build_pool(mix_entry("score_batch"))
    return Payloads(
        score=build_pool(mix_entry("score")),
        score_batch=score_batch,
        score_batch_columns=replace(
            score_batch,
            label=f"{score_batch.label}:columns",
            bodies=tuple(body + COLUMNS_FIELD for body in score_batch.bodies),
        ),
        infer=build_pool(mix_entry("infer")),
        infer_batch=build_pool(mix_entry("infer_batch")),
        stream=build_pool(mix_entry("stream")),
    )

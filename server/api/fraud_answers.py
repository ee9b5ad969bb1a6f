"""ScoreBatch's per-transaction answer serialized straight from the prediction's columns: the bytes of
`FraudScoreBatch(scores=[one FraudScore per transaction])`, without a Python message per transaction.

Each FraudScore is field 1 of the batch, length-delimited; inside it, its fields in number order, each
left out at its proto3 default (an empty id, a probability whose bits are all 0, a zero risk score or
decision or latency): what protobuf's serializer writes, byte for byte. The rows are one byte matrix, each
field in a column slot as wide as its widest row, with a mask of the bytes each row uses: the masked read
of the matrix, row after row, is the serialized batch. The last two fields, model and server_latency_us,
are the same in every row: protobuf serializes them once a call. Varints come from a table of the values
below 2^14 (2 bytes); an answer needing a longer one (an id of 16 KiB, a negative score) is left to the
messages. The layout is checked against FraudScore's descriptor at import: a changed message fails there.
"""

from collections.abc import Sequence
from operator import attrgetter

import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from server.api.gen.riskserve.v1 import scoring_pb2

_LENGTH_DELIMITED_1 = 0x0A  # FraudScoreBatch.scores (1), FraudScore.transaction_id (1)
_PROBABILITY_TAG = 0x11  # FraudScore.probability (2): fixed64
_RISK_SCORE_TAG = 0x18  # FraudScore.risk_score (3): varint
_DECISION_TAG = 0x20  # FraudScore.decision (4): varint
_TABLE_SIZE = 1 << 14  # the values of 1- and 2-byte varints
_DECISION_VALUES = len(scoring_pb2.Decision.keys())
_PADDING_LIMIT = 4  # ids padded to more than 4x their bytes (+64 a row): the messages instead
_NUMBER = attrgetter("number")
_F = FieldDescriptor
_LAYOUT = [  # FraudScore's fields as written here, in number order: (name, number, type, has presence)
    ("transaction_id", 1, _F.TYPE_STRING, False),
    ("probability", 2, _F.TYPE_DOUBLE, False),
    ("risk_score", 3, _F.TYPE_INT32, False),
    ("decision", 4, _F.TYPE_ENUM, False),
    ("model", 5, _F.TYPE_MESSAGE, True),
    ("server_latency_us", 6, _F.TYPE_INT64, False),
]


def check_layout(descriptor: Descriptor) -> None:
    """RuntimeError unless `descriptor`'s fields are the ones this module writes, none repeated."""
    fields = [(f.name, f.number, f.type, f.has_presence) for f in sorted(descriptor.fields, key=_NUMBER)]
    if fields != _LAYOUT or any(f.is_repeated for f in descriptor.fields):
        raise RuntimeError(f"fraud_answers writes {_LAYOUT}; {descriptor.full_name} has {fields}")


check_layout(scoring_pb2.FraudScore.DESCRIPTOR)


def _varint_table(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes [values, 2], lengths): the varint of each value (< 2^14), left-aligned."""
    low, high = values & 0x7F, values >> 7
    table = np.stack([np.where(high > 0, low | 0x80, low), high], axis=1).astype(np.uint8)
    return table, 1 + (high > 0)


class _Fields:
    """Bytes of fields by value, looked up for all rows at once: `bytes[v]` (left-aligned in the slot's
    columns), `used[v]` how many of them the row takes (0 for a field left out), `keep[v]` as a mask."""

    def __init__(self, table: np.ndarray, used: np.ndarray) -> None:
        self.bytes, self.used = table, used
        self.keep = np.arange(table.shape[1]) < used[:, None]

    @classmethod
    def length_prefix(cls) -> "_Fields":
        """Tag 1 (length-delimited) and the length, by length (< 2^14): the head of an answer or of an id
        (an empty id is left out; an answer is never empty)."""
        lengths = np.arange(_TABLE_SIZE)
        varints, digits = _varint_table(lengths)
        table = np.concatenate([np.full((_TABLE_SIZE, 1), _LENGTH_DELIMITED_1, np.uint8), varints], axis=1)
        return cls(table, np.where(lengths > 0, 1 + digits, 0))

    @classmethod
    def risk_and_decision(cls) -> "_Fields":
        """risk_score (< 2^14) then decision (a Decision value), by risk_score * 4 + decision; each left out
        at 0."""
        risk, decision = np.divmod(np.arange(_TABLE_SIZE * _DECISION_VALUES), _DECISION_VALUES)
        varints, digits = _varint_table(risk)
        risk_used = np.where(risk > 0, 1 + digits, 0)
        table = np.zeros((len(risk), 5), dtype=np.uint8)
        table[:, 0], table[:, 1:3] = _RISK_SCORE_TAG, varints
        rows = np.arange(len(risk))  # the decision's 2 bytes go right after the risk score's bytes
        table[rows, risk_used], table[rows, risk_used + 1] = _DECISION_TAG, decision
        return cls(table, risk_used + 2 * (decision > 0))


_HEADS = _Fields.length_prefix()
_RISKS_AND_DECISIONS = _Fields.risk_and_decision()


def _below(values: np.ndarray, limit: int) -> bool:
    return bool(values.min() >= 0 and values.max() < limit)


def _utf8_ids(ids: Sequence[str]) -> tuple[bytes, np.ndarray]:
    """(the ids' UTF-8 bytes back to back, each id's byte length)."""
    joined = "".join(ids)
    if joined.isascii():  # one encode; a character is a byte
        return joined.encode("ascii"), np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    encoded = [i.encode() for i in ids]
    return b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))


def _left_aligned(flat: bytes, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """([rows, longest] matrix of the rows' bytes: row i holds lengths[i] bytes of `flat`, then padding;
    its mask), or None when the padding would dwarf the bytes (one long id among short ones)."""
    rows, longest = len(lengths), int(lengths.max())
    buffer = np.frombuffer(flat, dtype=np.uint8)
    if rows * longest == len(flat):  # every id the same length
        return buffer.reshape(rows, longest), np.ones((rows, longest), dtype=bool)
    if rows * longest > _PADDING_LIMIT * len(flat) + 64 * rows:
        return None
    keep = np.arange(longest) < lengths[:, None]
    matrix = np.zeros((rows, longest), dtype=np.uint8)
    matrix[keep] = buffer
    return matrix, keep


class FraudBatchAnswer:
    """One served model's serializer of per-transaction ScoreBatch answers (its ModelRef prepared once)."""

    def __init__(self, model: scoring_pb2.ModelRef) -> None:
        self._model_field = scoring_pb2.FraudScore(model=model).SerializeToString()  # there even if empty

    def serialize(
        self,
        ids: Sequence[str],
        probabilities: Sequence[float],
        risk_scores: Sequence[int],
        decisions: Sequence[int],
        latency_us: int,
    ) -> bytes | None:
        """The serialized FraudScoreBatch: one FraudScore per transaction (`ids` their transaction_ids), in
        order. None when a value does not suit the tables or the ids' lengths differ too much for one matrix
        (then build the messages)."""
        rows = len(ids)
        if not rows:
            return None
        flat_ids, id_lengths = _utf8_ids(ids)
        risks = np.asarray(risk_scores, dtype=np.int64)
        verdicts = np.asarray(decisions, dtype=np.int64)
        fits = _below(id_lengths, _TABLE_SIZE) and _below(risks, _TABLE_SIZE)
        if not (fits and _below(verdicts, _DECISION_VALUES)):
            return None
        id_matrix = _left_aligned(flat_ids, id_lengths)
        if id_matrix is None:
            return None
        probability = np.empty((rows, 9), dtype=np.uint8)
        probability[:, 0] = _PROBABILITY_TAG
        bits = np.asarray(probabilities, dtype="<f8").view("<u8")
        probability[:, 1:] = bits.view(np.uint8).reshape(rows, 8)
        probability_set = bits != 0  # -0.0 is written too
        # the last two fields, model and server_latency_us, as protobuf writes them
        tail = self._model_field + scoring_pb2.FraudScore(server_latency_us=latency_us).SerializeToString()
        risk_and_decision = risks * _DECISION_VALUES + verdicts
        body = (
            _HEADS.used[id_lengths]
            + id_lengths
            + 9 * probability_set
            + _RISKS_AND_DECISIONS.used[risk_and_decision]
            + len(tail)
        )
        if int(body.max()) >= _TABLE_SIZE:
            return None
        matrix = np.concatenate(
            [
                _HEADS.bytes[body],
                _HEADS.bytes[id_lengths],
                id_matrix[0],
                probability,
                _RISKS_AND_DECISIONS.bytes[risk_and_decision],
                np.broadcast_to(np.frombuffer(tail, dtype=np.uint8), (rows, len(tail))),
            ],
            axis=1,
        )
        keep = np.concatenate(
            [
                _HEADS.keep[body],
                _HEADS.keep[id_lengths],
                id_matrix[1],
                np.broadcast_to(probability_set[:, None], (rows, 9)),
                _RISKS_AND_DECISIONS.keep[risk_and_decision],
                np.broadcast_to(True, (rows, len(tail))),
            ],
            axis=1,
        )
        return matrix[keep].tobytes()

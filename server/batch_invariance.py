"""Does a row's score depend on the other rows of its ONNX Runtime call? The one decision, shared by the
quantization pipeline (which gates a model exactly as it will be served) and the serving runtime.

FP32 GEMM kernels pick their blocking by the number of rows, so a row alone and the same row in a batch can
differ in the last bits; dynamic INT8 takes its activation ranges from the whole call. A model is served
with the first chunk size under which every row scores bit for bit the same alone, in one batch and in a
batch in reverse order: any batch (None), FIXED_CHUNK_ROWS rows per call (padded), or one row per call.
"""

from collections.abc import Callable

import numpy as np

Feeds = dict[str, np.ndarray]
Run = Callable[[Feeds], np.ndarray]

# Rows per call for a model whose scores would otherwise depend on the batch: every call then carries
# exactly this many rows (the last chunk padded), so a row's score never depends on its batch mates.
FIXED_CHUNK_ROWS = 8
INVARIANCE_CHECK_ROWS = 64
CHUNK_CANDIDATES: tuple[int | None, ...] = (None, FIXED_CHUNK_ROWS, 1)


def run_in_fixed_chunks(run: Run, feeds: Feeds, chunk: int) -> np.ndarray:
    """`run` on consecutive chunks of exactly `chunk` rows (the last one padded by repeating its final
    row); the padding's outputs are dropped."""
    rows = len(next(iter(feeds.values())))
    outputs = []
    for start in range(0, rows, chunk):
        part = {name: column[start : start + chunk] for name, column in feeds.items()}
        short = chunk - min(chunk, rows - start)
        if short:
            part = {name: np.concatenate([c, np.repeat(c[-1:], short, axis=0)]) for name, c in part.items()}
        outputs.append(run(part)[: chunk - short])
    return np.concatenate(outputs)


def chunked(run: Run, chunk_rows: int | None) -> Run:
    """`run` as served with `chunk_rows`: one call for the whole batch (None), or fixed-size chunks."""
    if chunk_rows is None:
        return run
    return lambda feeds: run_in_fixed_chunks(run, feeds, chunk_rows)


def batch_invariant(run: Run, rows: Feeds) -> bool:
    """Bit-for-bit equal outputs for every row alone, in one batch, and in a batch in reverse order."""
    count = len(next(iter(rows.values())))
    together = run(rows)
    alone = np.concatenate([run({k: v[i : i + 1] for k, v in rows.items()}) for i in range(count)])
    backwards = run({k: v[::-1] for k, v in rows.items()})[::-1]
    return np.array_equal(together, alone) and np.array_equal(together, backwards)


def choose_chunk_rows(run: Run, rows: Feeds, first: int | None = None) -> tuple[int | None, bool]:
    """The serving chunk size for `run`: the first of CHUNK_CANDIDATES, starting at `first` (e.g. a value
    recorded by the pipeline), under which `rows` are batch-invariant, and whether one was found (if not,
    one row per call, the most a runtime can do)."""
    candidates = (
        CHUNK_CANDIDATES[CHUNK_CANDIDATES.index(first) :] if first in CHUNK_CANDIDATES else CHUNK_CANDIDATES
    )
    for chunk_rows in candidates:
        if batch_invariant(chunked(run, chunk_rows), rows):
            return chunk_rows, True
    return 1, False

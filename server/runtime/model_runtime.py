"""One served model: its ONNX Runtime session, input schema, micro-batcher and reference row.

Built once at startup from the quantization pipeline's PreparedModel. `predict` is the one entry into the
scoring core for both front doors: validate the feature columns, queue them for the next batch, run ONNX
Runtime, decide. The front doors only convert their wire format to columns and the Prediction back.
"""

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from server.batch_invariance import INVARIANCE_CHECK_ROWS, choose_chunk_rows, run_in_fixed_chunks
from server.config.model_config import ModelConfig
from server.config.settings import ServerSettings
from server.model_data import DataKind, feeds_from_frame, input_frame, reference_row
from server.model_io import output_positive_column, output_width, probability_column
from server.ort_session import create_session, latency_session_options
from server.runtime.batcher import BatchObserver, FailureObserver, Feeds, MicroBatcher
from server.runtime.errors import InvalidInputError
from server.runtime.features import FeatureSchema, FieldNamer
from server.runtime.prediction import Prediction, decide_rows
from server.runtime.reasons import counterfactual_rows, top_reasons
from server.served_model import PreparedModel

if TYPE_CHECKING:
    from server.monitoring.shadow import Shadows

log = logging.getLogger(__name__)


def warmup_batch_sizes(max_batch_size: int) -> list[int]:
    """Powers of two up to max_batch_size, and max_batch_size itself: the shapes the batcher produces
    most often, so no first request pays for ORT's per-shape allocation."""
    sizes, size = [], 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch_size]


class ModelRuntime:
    """A loaded, warmed model. Create with `ModelRuntime.load`; call `start()` on the event loop."""

    def __init__(
        self,
        config: ModelConfig,
        prepared: PreparedModel,
        session: ort.InferenceSession,
        reference: dict[str, np.ndarray],
        settings: ServerSettings,
    ) -> None:
        self.config = config
        self.prepared = prepared
        self.session = session
        self.schema = FeatureSchema.from_config(config)
        self.reference = reference  # one typical row (1-value column per feature): medians / modes
        self.facts = prepared.facts
        self._output_names = [config.output_name]
        # The binding's own run: InferenceSession.run first re-checks, in Python, that every input is fed
        # (a scan of all input names per call, ~5-10 us); validated feeds always carry every input, and the
        # binding still refuses a missing one. Plain session.run where the binding is not reachable.
        binding = getattr(session, "_sess", None)
        self._session_run = binding.run if hasattr(binding, "run") else session.run
        self._debug_delay_s = settings.debug_inference_delay_ms / 1e3
        self._handoff = settings.inference_handoff
        self.chunk_rows: int | None = None  # set by check_batch_invariance when ORT needs fixed chunks
        self.batcher: MicroBatcher | None = None
        # Rows one call may carry: the server's limit, and never more than the queue can ever hold.
        self.max_request_rows = min(settings.max_request_rows, config.batching.max_queue_size)
        self.single_row_seconds: float | None = None  # measured by warm_up
        self.output_columns = 1  # columns of the probability output: set by load from a run
        self.positive_column = 0  # set by load from the output's width (see output_positive_column)
        self._shadows: Shadows | None = None
        self._until_sample = -1  # calls until the next one its shadows get; never 0 unless watched

    @classmethod
    def load(cls, config: ModelConfig, prepared: PreparedModel, settings: ServerSettings) -> "ModelRuntime":
        """Create the session on the prepared ONNX file, read the reference row and check that a row's
        score does not depend on its batch (blocking)."""
        session = create_session(prepared.model_path, latency_session_options(settings.intra_op_threads))
        calibration = input_frame(config, DataKind.CALIBRATION)  # read once: reference and invariance rows
        runtime = cls(config, prepared, session, reference_row(config, calibration), settings)
        reference_outputs = runtime._run_once(runtime.schema.assemble(runtime.reference))
        runtime.output_columns = output_width(reference_outputs)
        runtime.positive_column = output_positive_column(config, runtime.output_columns)
        rows = feeds_from_frame(config, calibration, INVARIANCE_CHECK_ROWS)
        invariant = runtime.check_batch_invariance(rows, prepared.chunk_rows)
        log_level = logging.INFO if invariant else logging.ERROR
        log.log(
            log_level,
            "event=batch_invariance model=%s precision=%s invariant=%s chunk_rows=%s gated_chunk_rows=%s",
            config.name,
            prepared.facts.precision.value,
            invariant,
            runtime.chunk_rows or "off",
            prepared.chunk_rows or "off",
        )
        return runtime

    def run_batch(self, feeds: Feeds) -> np.ndarray:
        """ONNX Runtime on validated [N, 1] inputs -> the output [N, 2] (blocking)."""
        if self._debug_delay_s:
            time.sleep(self._debug_delay_s)
        return self._infer(feeds)

    def _infer(self, feeds: Feeds) -> np.ndarray:
        if self.chunk_rows is None:
            return self._run_once(feeds)
        return run_in_fixed_chunks(self._run_once, feeds, self.chunk_rows)

    def _run_once(self, feeds: Feeds) -> np.ndarray:
        return self._session_run(self._output_names, feeds, None)[0]  # no RunOptions

    def check_batch_invariance(self, rows: Feeds, gated: int | None = None) -> bool:
        """Re-verify the chunk size the model was gated with (`gated`, PreparedModel.chunk_rows): keep it if
        `rows` score bit for bit the same alone and together, else move on to fixed-size chunks, then one
        row per call (server/batch_invariance.py). Returns whether the served scores are batch-invariant
        (blocking)."""
        self.chunk_rows, invariant = choose_chunk_rows(self._run_once, rows, gated)
        return invariant

    def warm_up(self) -> list[int]:
        """Run the model once at every batch size the batcher can produce often (blocking).

        Goes through `run_batch`, so the test-only artificial delay also slows warm-up (tests use it to
        observe health NOT_SERVING while models load)."""
        sizes = warmup_batch_sizes(self.config.batching.max_batch_size)
        for size in sizes:
            feeds = self.schema.assemble({k: np.repeat(v, size) for k, v in self.reference.items()})
            self.run_batch(feeds)
            if size == 1:  # once more, warm: the batcher's first estimate of a lone call's time
                started = time.perf_counter()
                self.run_batch(feeds)
                self.single_row_seconds = time.perf_counter() - started
        return sizes

    @property
    def name(self) -> str:
        return self.config.name

    def start(self, observer: BatchObserver | None = None, on_failure: FailureObserver | None = None) -> None:
        """Start the model's batcher on the running event loop; `observer` hears of every batch,
        `on_failure` of every failure of its worker (server/runtime/batcher.py, Supervision)."""
        batching = self.config.batching
        # the session's own run when nothing stands between (no test delay, no fixed chunks): two Python
        # calls fewer per batch than run_batch -> _infer -> _run_once
        direct = not self._debug_delay_s and self.chunk_rows is None
        self.batcher = MicroBatcher(
            self.config.name,
            self._run_once if direct else self.run_batch,
            max_batch_size=batching.max_batch_size,
            max_queue_delay_us=batching.max_queue_delay_us,
            max_queue_rows=batching.max_queue_size,
            handoff=self._handoff,
            on_batch=observer,
            inline_seconds=self.single_row_seconds,
            on_failure=on_failure,
        )
        self.batcher.start()

    def watch(self, shadows: "Shadows") -> None:
        """Offer a sample of calls to `shadows` (server/monitoring/shadow.py: the FP32 live check, a
        challenger) from now on; again after a shadow was added."""
        self._shadows = shadows
        self._until_sample = shadows.next_gap()

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()

    async def predict(
        self,
        columns: Mapping[str, Sequence],
        rows: int,
        namer: FieldNamer,
        deadline: float | None = None,
        *,
        explain: bool = False,
        feeds: Feeds | None = None,
    ) -> Prediction:
        """Score `rows` rows of named feature columns: validate, batch, infer, decide.

        `deadline` is event-loop time. `explain` (one row, credit) also returns the reason codes, from
        the application and its counterfactual rows scored in the same batched call. `feeds`: the rows
        already validated into tensors by this runtime's schema (FeatureSchema.one_row_feeds); `columns`
        is then not read."""
        if rows > self.max_request_rows:
            raise InvalidInputError(
                namer(self.config.feature_names[0], None),
                (f"{rows} rows, at most {self.max_request_rows} per call for model {self.name}"),
            )
        assert self.batcher is not None, "ModelRuntime.start() was not called"
        reasons = None
        if explain:  # the application and one counterfactual row per feature off its reference value
            values, changed = counterfactual_rows(self.schema.check(columns, rows, namer), self.reference)
            feeds = self.schema.assemble(values)
            result = await self.batcher.submit(feeds, len(changed) + 1, deadline)
            outputs = result.outputs[:1]
            pd_rows = probability_column(result.outputs, self.positive_column)
            reasons = top_reasons(pd_rows, changed, self.config)
        else:
            if feeds is None:
                feeds = self.schema.validate(columns, rows, namer)
            result = await self.batcher.submit(feeds, rows, deadline)
            outputs = result.outputs
        probabilities, scores, decisions = decide_rows(self.config, outputs, self.positive_column)
        self._until_sample -= 1
        if not self._until_sample:  # a sampled call: its rows to its shadow models, off this path
            self._until_sample = self._shadows.offer(feeds, outputs)  # type: ignore[union-attr]
        return Prediction(
            outputs, probabilities, scores, decisions, reasons, result.queue_s, result.inference_s
        )

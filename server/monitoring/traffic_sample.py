"""A rolling calibration file of live traffic, one per model version (opt-in: `traffic_sample_dir`).

Sampled calls' feature rows are kept in `<traffic_sample_dir>/<model>/<version>.parquet`, the newest
`traffic_sample_rows` of them, in the columns a model's `calibration_file` holds: one per feature (derived
ones, e.g. the hour from a timestamp, as the model read them), numbers as the input's dtype, strings as
strings. Only features are written: no transaction, card, merchant or application id ever is (a model whose
feature is such an id gets no traffic file). `riskserve quantize --calibration-from-traffic` calibrates a
new INT8 candidate on it (server/quantization/traffic_candidate.py).

Where the rows come from: the sample is a shadow consumer of the served runtime (one more member of its
`Shadows`, server/monitoring/shadow.py), sampling `traffic_sample_rate` of its calls apart from any live
check or challenger. Its `offer` runs on the serving thread for a sampled call only and just copies the
call's rows into a buffer bounded by `traffic_sample_rows` (the oldest waiting rows go first). The file is
rewritten on this module's thread (temp file + os.replace, so a reader never sees half a file) once
`traffic_sample_flush_rows` rows wait, or `traffic_sample_flush_s` after the first of them, and at stop.
"""

import logging
import os
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet

from server.config.errors import DataFileError
from server.config.model_config import ModelConfig
from server.config.settings import ServerSettings
from server.model_data import read_data_file
from server.model_io import Feeds, OnnxInput, onnx_inputs
from server.monitoring.shadow import NOT_SAMPLING, geometric_gap, lower_thread_priority

if TYPE_CHECKING:
    from server.runtime.model_runtime import ModelRuntime

log = logging.getLogger(__name__)

ID_FIELDS = frozenset({"transaction_id", "card_id", "merchant_id", "application_id"})
MODEL_KEY, VERSION_KEY = b"riskserve.model", b"riskserve.version"  # the file's Parquet metadata


def traffic_file(directory: Path, model: str, version: str) -> Path:
    """Where the traffic of `model` at `version` is kept."""
    return Path(directory) / model / f"{version}.parquet"


def id_features(config: ModelConfig) -> list[str]:
    """The model's features whose value is a transaction, card, merchant or application id."""
    return [f.name for f in config.features if (f.source or f.name).rsplit(".", 1)[-1] in ID_FIELDS]


def feature_rows(inputs: tuple[OnnxInput, ...], feeds: Feeds) -> pd.DataFrame:
    """ONNX feeds back as a calibration file's columns: one per feature, in the input's dtype."""
    columns: dict[str, np.ndarray] = {}
    for spec in inputs:
        values = feeds[spec.name]
        for index, name in enumerate(spec.features):
            columns[name] = values[:, index] if values.ndim == 2 else values
    return pd.DataFrame(columns)


def file_model(path: Path) -> tuple[str, str] | None:
    """The (model, version) a traffic file says it holds, None for a file without that metadata."""
    metadata = pyarrow.parquet.read_schema(path).metadata or {}
    if MODEL_KEY not in metadata:
        return None
    return metadata[MODEL_KEY].decode(), metadata.get(VERSION_KEY, b"").decode()


class TrafficSample:
    """One model version's traffic file. `start`, then `Shadows.add(sample)` (or `add` rows); `stop`."""

    def __init__(self, config: ModelConfig, version: str, settings: ServerSettings) -> None:
        assert settings.traffic_sample_dir is not None
        self.config, self.version = config, version
        self.path = traffic_file(settings.traffic_sample_dir, config.name, version)
        self.sample_rate = settings.traffic_sample_rate
        self.max_rows = settings.traffic_sample_rows
        self.flush_rows = settings.traffic_sample_flush_rows
        self.flush_s = settings.traffic_sample_flush_s
        self._inputs = onnx_inputs(config)
        self._random = random.Random()
        self._pending: deque[tuple[int, Feeds]] = deque()  # (rows, feeds) waiting for the writer
        self._pending_rows = 0
        self._first_pending_at = 0.0
        self._kept: pd.DataFrame | None = None  # the file's rows, read by the thread before its first write
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @classmethod
    def for_runtime(cls, runtime: "ModelRuntime", settings: ServerSettings) -> "TrafficSample | None":
        """The served version's sample, None (logged) when the model reads an id as a feature."""
        ids = id_features(runtime.config)
        if ids:
            log.warning(
                "event=traffic_sample_off model=%s version=%s reason=id_features features=%s",
                runtime.name,
                runtime.facts.version,
                ",".join(ids),
            )
            return None
        return cls(runtime.config, runtime.facts.version, settings)

    def start(self) -> None:
        name = f"riskserve-traffic-{self.config.name}"
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Take no further rows; the thread writes those still waiting and ends (not waited for)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write the rows still waiting, then end the thread (blocking)."""
        self.close()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ---- rows in ------------------------------------------------------------------------------------

    def add(self, feeds: Feeds) -> None:
        """Rows to write (feeds this sample may keep: nobody writes to them afterwards)."""
        rows = len(next(iter(feeds.values())))
        with self._wake:
            if self._stopping:
                return
            first = not self._pending
            if first:
                self._first_pending_at = time.monotonic()
            self._pending.append((rows, feeds))
            self._pending_rows += rows
            # only the newest max_rows are ever written: older waiting rows go at once
            while self._pending_rows - self._pending[0][0] >= self.max_rows:
                self._pending_rows -= self._pending.popleft()[0]
            if first or self._pending_rows >= self.flush_rows:  # the writer's timer starts, or it is due
                self._wake.notify()

    def next_gap(self) -> int:
        """Calls until the next sampled one (shadow.geometric_gap at traffic_sample_rate)."""
        if self._stopping:
            return NOT_SAMPLING
        return geometric_gap(self.sample_rate, self._random)

    def offer(self, feeds: Feeds, outputs: np.ndarray) -> int:
        """A sampled call (a ShadowConsumer's offer): a copy of its first len(outputs) feed rows, at most
        the newest traffic_sample_rows of them. Returns the calls until the next sample."""
        rows = len(outputs)
        first = max(0, rows - self.max_rows)
        self.add({name: column[first:rows].copy() for name, column in feeds.items()})
        return self.next_gap()

    # ---- the writer thread --------------------------------------------------------------------------

    def _work(self) -> None:
        lower_thread_priority()
        while True:
            with self._wake:
                while not self._stopping and not self._due():
                    waited = self._first_pending_at + self.flush_s - time.monotonic()
                    self._wake.wait(waited if self._pending else None)
                batch = [feeds for _, feeds in self._pending]
                self._pending.clear()
                self._pending_rows = 0
                stopping = self._stopping
            if batch:
                try:
                    self._write(batch)
                except Exception:  # keep sampling; the rows stay kept in memory for the next write
                    log.exception("event=traffic_sample_failed model=%s file=%s", self.config.name, self.path)
            if stopping:
                return

    def _due(self) -> bool:
        if not self._pending:
            return False
        waited_s = time.monotonic() - self._first_pending_at
        return self._pending_rows >= self.flush_rows or waited_s >= self.flush_s

    def _write(self, batch: list[Feeds]) -> None:
        if self._kept is None:
            self._kept = self._read_kept()
        feeds = {name: np.concatenate([f[name] for f in batch]) for name in batch[0]}
        new = feature_rows(self._inputs, feeds)
        frame = pd.concat([self._kept, new], ignore_index=True) if len(self._kept) else new
        self._kept = frame = frame.tail(self.max_rows).reset_index(drop=True)
        table = pyarrow.Table.from_pandas(frame, preserve_index=False)
        metadata = table.schema.metadata or {}
        table = table.replace_schema_metadata(
            {**metadata, MODEL_KEY: self.config.name.encode(), VERSION_KEY: self.version.encode()}
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        pyarrow.parquet.write_table(table, temporary)
        os.replace(temporary, self.path)
        log.debug(
            "event=traffic_sample_written model=%s version=%s rows=%d",
            self.config.name,
            self.version,
            len(frame),
        )

    def _read_kept(self) -> pd.DataFrame:
        """The rows an earlier process kept in this version's file (a restart appends to them); none if it
        is absent or holds something else (it is then replaced, logged)."""
        columns = self.config.feature_names
        empty = pd.DataFrame(columns=columns)
        if not self.path.is_file():
            return empty
        try:
            frame = read_data_file(self.path)
            same = list(frame.columns) == columns and file_model(self.path) == (
                self.config.name,
                self.version,
            )
        except (DataFileError, OSError, pyarrow.ArrowException) as exc:
            same, frame = False, empty
            log.warning("event=traffic_sample_unreadable file=%s error=%r", self.path, str(exc))
        if not same:
            log.warning(
                "event=traffic_sample_replaced model=%s version=%s file=%s reason=other_content",
                self.config.name,
                self.version,
                self.path,
            )
            return empty
        return frame.tail(self.max_rows).reset_index(drop=True)

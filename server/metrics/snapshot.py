"""One process's metric state as plain data: what a worker writes to the shared directory and what the
exporter merges. JSON on disk (small, inspectable with `jq`), HDR slices as their standard base64 encoding."""

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from server.served_model import ModelFacts

LabelValues = tuple[str, ...]
SNAPSHOT_PREFIX = "riskserve-"
SNAPSHOT_SUFFIX = ".json"
SNAPSHOT_FORMAT = 1


class SnapshotError(RuntimeError):
    """A snapshot file in the shared metrics directory cannot be read."""


@dataclass
class ProcessSnapshot:
    """Counters, histogram rows, gauges and rolling-window slices of one serving process.

    Histogram rows are `[count per bucket..., count above the last bucket, sum]`, bucket counts NOT
    cumulative. Window slices map slice index to an HDR histogram or its `encode()` string.
    """

    pid: int
    written_at: float
    flush_interval_s: float = 1.0  # how often the writer refreshes it: tells the reader when it went stale
    histograms: dict[str, dict[LabelValues, list[float]]] = field(default_factory=dict)
    counters: dict[str, dict[LabelValues, float]] = field(default_factory=dict)
    gauges: dict[str, dict[LabelValues, float]] = field(default_factory=dict)
    models: dict[str, ModelFacts] = field(default_factory=dict)
    ready: bool | None = None
    windows: dict[LabelValues, dict[int, HdrHistogram | str | bytes]] = field(default_factory=dict)
    # (model, version) -> {"reference": LiveReference dict, "window": LiveTally dict} (metrics/live_window.py)
    live_checks: dict[LabelValues, dict[str, Any]] = field(default_factory=dict)
    # (model, version, challenger, challenger_version) -> the same, champion against challenger
    challengers: dict[LabelValues, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        def rows(table: dict[str, dict[LabelValues, Any]]) -> dict[str, list[list[Any]]]:
            return {
                name: [[list(labels), value] for labels, value in series.items()]
                for name, series in table.items()
            }

        return json.dumps(
            {
                "format": SNAPSHOT_FORMAT,
                "pid": self.pid,
                "written_at": self.written_at,
                "flush_interval_s": self.flush_interval_s,
                "histograms": rows(self.histograms),
                "counters": rows(self.counters),
                "gauges": rows(self.gauges),
                "models": {name: facts.as_dict() for name, facts in self.models.items()},
                "ready": self.ready,
                "windows": [
                    [
                        list(key),
                        {str(i): _encoded(h) for i, h in per_slice.items()},
                    ]
                    for key, per_slice in self.windows.items()
                ],
                "live_checks": [[list(key), entry] for key, entry in self.live_checks.items()],
                "challengers": [[list(key), entry] for key, entry in self.challengers.items()],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "ProcessSnapshot":
        raw = json.loads(text)
        if raw.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"snapshot format {raw.get('format')!r} is not {SNAPSHOT_FORMAT}")

        def table(name: str) -> dict[str, dict[LabelValues, Any]]:
            return {
                metric: {tuple(labels): value for labels, value in rows} for metric, rows in raw[name].items()
            }

        return cls(
            pid=int(raw["pid"]),
            written_at=float(raw["written_at"]),
            flush_interval_s=float(raw["flush_interval_s"]),
            histograms=table("histograms"),
            counters=table("counters"),
            gauges=table("gauges"),
            models={name: ModelFacts.from_dict(facts) for name, facts in raw["models"].items()},
            ready=raw["ready"],
            windows={
                tuple(key): {int(i): enc for i, enc in per_slice.items()} for key, per_slice in raw["windows"]
            },
            live_checks={tuple(key): entry for key, entry in raw.get("live_checks", [])},
            challengers={tuple(key): entry for key, entry in raw.get("challengers", [])},
        )


def _encoded(histogram: HdrHistogram | str | bytes) -> str:
    if isinstance(histogram, HdrHistogram):
        histogram = histogram.encode()
    return histogram.decode("ascii") if isinstance(histogram, bytes) else histogram


def snapshot_path(shared_dir: Path, pid: int) -> Path:
    return shared_dir / f"{SNAPSHOT_PREFIX}{pid}{SNAPSHOT_SUFFIX}"


def write_snapshot(shared_dir: Path, snapshot: ProcessSnapshot) -> Path:
    """Write atomically (temp file + rename) so a concurrent reader never sees half a file."""
    target = snapshot_path(shared_dir, snapshot.pid)
    fd, tmp_name = tempfile.mkstemp(dir=shared_dir, prefix=".tmp-", suffix=SNAPSHOT_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(snapshot.to_json())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def read_snapshots(shared_dir: Path, exclude_pid: int | None = None) -> list[ProcessSnapshot]:
    """Every process snapshot in the directory except `exclude_pid`'s (the caller's own live state)."""
    snapshots = []
    for path in sorted(shared_dir.glob(f"{SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX}")):
        try:
            snapshot = ProcessSnapshot.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:  # removed between glob and read
            continue
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(
                f"cannot read metrics snapshot {path}: {exc}; delete it or reset the "
                f"directory with reset_shared_dir() before starting workers"
            ) from exc
        if snapshot.pid != exclude_pid:
            snapshots.append(snapshot)
    return snapshots


def reset_shared_dir(shared_dir: str | Path) -> Path:
    """Create the directory and delete snapshots left by a previous run. Call once, before workers start."""
    path = Path(shared_dir)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob(f"*{SNAPSHOT_SUFFIX}"):
        stale.unlink(missing_ok=True)
    return path

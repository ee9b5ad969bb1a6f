"""Startup quantization of one model: the same code runs at server startup and in `riskserve quantize`.

config ─▶ FP32 ONNX ─▶ nothing to quantize? ─yes─▶ FP32, verdict not_quantizable
                          │no
                          ▼
              cache hit? ─yes─▶ INT8 artifact + report
                          │no
calibration file ─▶ canonicalize (checked rewrites) ─▶ pre-process ─▶ calibrate ─▶ quantize (QDQ)
holdout file ─▶ split ─▶ tuning rows: evaluate as served ─▶ within budget? ─no─▶ best measured move, retry
                      │                                   └─yes─▶ choose among passing moves by objective
                      └─▶ gate rows: the choice as served, paired intervals ─▶ verdict
                          └─▶ report ─▶ cache ─▶ PreparedModel (INT8, or FP32 with the verdict saying why)
"""

import atexit
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import onnxruntime

from server.config.model_config import ModelConfig
from server.config.quantization_config import QuantizationMode
from server.model_checks import check_model_files
from server.model_integrity import check_holdout_auc, check_model_digest
from server.quantization import code_version
from server.quantization.cache import CacheCorruptionError, CacheEntry, QuantizationCache, cache_key
from server.quantization.cpu_features import choose_reduce_range, read_cpu_profile
from server.quantization.errors import ModelFileError, QuantizationError
from server.quantization.report import REPORT_FORMAT, QuantizationReport, ReportFileError, read_report
from server.served_model import GateVerdict, ModelFacts, Precision, PreparedModel

if TYPE_CHECKING:
    from server.quantization.model_graph import ModelGraph

log = logging.getLogger(__name__)

INT8_FILE = "model.int8.onnx"
REPORT_FILE = "report.json"


def prepare_model(
    config: ModelConfig,
    cache_dir: Path,
    progress: Callable[[str], None] | None = None,
    *,
    force: bool = False,
) -> PreparedModel:
    """Quantize `config`'s model (or load the cached result) and return what the server should serve.

    `force` ignores a cached result and rebuilds it (the new entry replaces the old one).

    Raises a QuantizationError subclass naming the problem for a bad model or data file, ModelIntegrityError
    for a model file that is not the one its config records (server/model_integrity.py); a model that
    misses its accuracy budget, cannot show it, does not pay or has nothing to quantize is not an error: it
    comes back as FP32 with its verdict.
    """
    check_model_digest(config)  # before anything reads the file: a corrupted model is never quantized
    check_model_files(config)  # every problem of its data files and graph vocabulary, before any use
    prepared = _prepare(config, cache_dir, progress or (lambda message: None), force)
    holdout = prepared.report.holdout if prepared.report is not None else None
    check_holdout_auc(config, holdout.fp32_roc_auc if holdout is not None else None)
    return prepared


def _prepare(config: ModelConfig, cache_dir: Path, say: Callable[[str], None], force: bool) -> PreparedModel:
    started = time.perf_counter()
    q = config.quantization
    if q.mode is QuantizationMode.NONE:
        from server.quantization.report_builder import disabled_report

        say(f"{config.name}: quantization disabled in config, serving FP32")
        return _prepared(config, config.onnx_path, None, disabled_report(config))

    cpu = read_cpu_profile()
    reduce_range = choose_reduce_range(q.reduce_range, cpu)
    cache = QuantizationCache(cache_dir)
    key = _cache_key(config, cpu.vnni)
    cached = None if force else _load_cached(cache, config, key)
    if cached is not None:
        say(f"{config.name}: loaded from cache in {time.perf_counter() - started:.2f}s")
        return cached

    from server.quantization.model_graph import load_model_graph

    graph = load_model_graph(config.onnx_path, q.op_types, config.output_name, require_layers=False)
    _check_config_matches_model(config, graph)
    if not graph.quantizable_layers:  # e.g. a tree ensemble: quick to find again, so not cached
        from server.quantization.report_builder import not_quantizable_report

        op_types = sorted({node.op_type for node in graph.model.graph.node})
        report = not_quantizable_report(config, op_types)
        say(f"{config.name}: nothing to quantize ({', '.join(op_types)}), serving FP32")
        _log_verdict(config, report)
        return _prepared(config, config.onnx_path, None, report)
    say(f"{config.name}: quantizing (cache miss)")
    # Imported here: the cold path's stages (scikit-learn, the quantizer) load only on a cache miss.
    from server.quantization.build import build
    from server.quantization.calibration_data import load_feature_table, load_holdout_table
    from server.quantization.holdout_split import split_holdout
    from server.quantization.report_builder import build_report

    calibration = load_feature_table(
        config.calibration_path,
        config,
        min_rows=q.required_calibration_rows,
        max_rows=q.calibration_rows,
        label_column=config.label_column,
        ignored_columns=q.ignored_columns,
    )
    holdout = load_holdout_table(config)
    split = split_holdout(holdout, q.gate_fraction)
    with tempfile.TemporaryDirectory(prefix="riskserve-quantize-") as scratch:
        outcome = build(config, reduce_range[0], Path(scratch), calibration, split)
        seconds = {"total_cold": time.perf_counter() - started}
        report = build_report(config, cpu, reduce_range, calibration, holdout, outcome, key, seconds)
        report_path = Path(scratch) / REPORT_FILE
        report_path.write_text(report.cache_json())
        files = {REPORT_FILE: report_path}
        if report.precision is Precision.INT8:
            files[INT8_FILE] = outcome.model_path
        entry = _store(cache, config, key, files)
    _log_verdict(config, report)
    say(f"{config.name}: quantized in {seconds['total_cold']:.1f}s")
    model_path = entry.files.get(INT8_FILE, config.onnx_path)
    return _prepared(config, model_path, entry.files[REPORT_FILE], report)


def _store(cache: QuantizationCache, config: ModelConfig, key: str, files: dict[str, Path]) -> CacheEntry:
    """The new cache entry; if the cache directory cannot be written (read-only, full, not a directory), a
    folder of this process's own, removed at exit, with one warning naming the directory."""
    try:
        return cache.store(config.name, key, files)
    except OSError as exc:
        unwritable = exc
    try:
        kept = Path(tempfile.mkdtemp(prefix=f"riskserve-{config.name}-uncached-"))
        atexit.register(shutil.rmtree, kept, ignore_errors=True)
        for name, source in files.items():
            shutil.copyfile(source, kept / name)
    except OSError as exc:
        raise QuantizationError(
            f"model {config.name}: cannot write its quantization result to the cache {cache.root} "
            f"({unwritable.strerror or unwritable}) nor to {tempfile.gettempdir()} ({exc.strerror or exc})"
        ) from exc
    log.warning(
        "event=cache_unwritable model=%s directory=%s error=%r action=serve_uncached detail=%r",
        config.name,
        cache.root,
        f"{type(unwritable).__name__}: {unwritable.strerror or unwritable}",
        f"quantized for this process only (kept in {kept}); every start quantizes again until the cache "
        "directory is writable",
    )
    return CacheEntry(kept, {name: kept / name for name in files})


def _cache_key(config: ModelConfig, vnni: bool) -> str:
    settings = {
        "quantization": config.quantization.model_dump(mode="json"),
        "decision": config.decision.thresholds(),
        "output_name": config.output_name,
        "label_column": config.label_column,
        "inputs": config.feature_names,
        "onnxruntime": onnxruntime.__version__,
        "vnni": vnni,
        "report_format": REPORT_FORMAT,
        "code": code_version.code_version(),  # a changed tuner or pre-processing rebuilds
    }
    return cache_key([config.onnx_path, config.calibration_path, config.holdout_path], settings)


def _load_cached(cache: QuantizationCache, config: ModelConfig, key: str) -> PreparedModel | None:
    """The cached result for `key`, None when absent or unusable (a corrupt or stale entry is rebuilt)."""
    try:
        entry = cache.load(config.name, key)
        if entry is None:
            return None
        report = _cached_report(entry)
        if report.precision is Precision.INT8 and INT8_FILE not in entry.files:
            raise CacheCorruptionError(f"cache entry {entry.folder}: INT8 model missing from manifest")
    except CacheCorruptionError as exc:
        log.warning("event=cache_corrupt model=%s action=rebuild detail=%r", config.name, str(exc))
        return None
    report = report.model_copy(update={"from_cache": True})
    log.info("event=cache_hit model=%s key=%s verdict=%s", config.name, key[:12], report.verdict.value)
    _log_verdict(config, report)
    return _prepared(config, entry.files.get(INT8_FILE, config.onnx_path), entry.files[REPORT_FILE], report)


def _cached_report(entry: CacheEntry) -> QuantizationReport:
    """The entry's report; CacheCorruptionError naming the file if it is absent, invalid or stale."""
    path = entry.files.get(REPORT_FILE)
    if path is None:
        raise CacheCorruptionError(f"cache entry {entry.folder}: {REPORT_FILE} missing from manifest")
    try:
        return read_report(path)
    except ReportFileError as exc:
        raise CacheCorruptionError(str(exc)) from exc


def _check_config_matches_model(config: ModelConfig, graph: "ModelGraph") -> None:
    """The config's inputs are the ONNX graph's: the same names, dtypes and, where the graph fixes it, the
    same number of columns."""
    declared = {spec.onnx_input: (spec.dtype, spec.width) for spec in config.inputs}
    actual = {name: (dtype, graph.input_widths.get(name)) for name, dtype in graph.input_dtypes.items()}
    only_config = sorted(set(declared) - set(actual))
    only_model = sorted(set(actual) - set(declared))
    different = []
    for name in sorted(set(declared) & set(actual)):
        (dtype, width), (model_dtype, model_width) = declared[name], actual[name]
        if dtype != model_dtype:
            different.append(f"{name}: config {dtype}, model {model_dtype}")
        elif model_width is not None and width != model_width:
            different.append(f"{name}: config {width} column(s), model {model_width}")
    if only_config or only_model or different:
        raise ModelFileError(
            f"ONNX model {config.onnx_path} does not match its config's inputs: "
            f"only in config {only_config}, only in model {only_model}, different {different}"
        )


def _log_verdict(config: ModelConfig, report: QuantizationReport) -> None:
    fields = (
        f"model={config.name} version={config.version} verdict={report.verdict.value} "
        f"precision={report.precision.value} from_cache={report.from_cache}"
    )
    if report.accuracy is not None:
        accuracy = report.accuracy
        fields += f" auc_ratio={accuracy.roc_auc_ratio:.6f} max_flip_rate={accuracy.max_flip_rate:.5f}"
    if report.verdict in (GateVerdict.FAILED, GateVerdict.INSUFFICIENT_EVIDENCE):
        reason = report.warnings[0]
        log.warning("event=quantization_gate_failed %s action=serve_fp32 reason=%r", fields, reason)
    elif report.precision is Precision.FP32 and report.verdict is not GateVerdict.DISABLED:
        log.info("event=quantization_fp32_by_design %s reason=%r", fields, report.warnings[0])
    else:
        log.info("event=quantization_ready %s", fields)


def _prepared(
    config: ModelConfig, model_path: Path, report_path: Path | None, report: QuantizationReport
) -> PreparedModel:
    """What the runtime serves: the model file, its facts (from the typed report) and the located report."""
    facts = ModelFacts(
        name=config.name,
        version=config.version,
        task=config.task.value,
        precision=report.precision,
        gate_verdict=report.verdict,
        from_cache=report.from_cache,
        metric_deltas=report.metric_deltas(),
    )
    chunk_rows = report.serving.chunk_rows if report.serving is not None else None
    located = report.located(model_path, report_path)
    return PreparedModel(facts, model_path, report_path, located, chunk_rows)

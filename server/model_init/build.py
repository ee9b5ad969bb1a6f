"""`riskserve models init`: a servable model folder from an exported ONNX file and a labelled data file.

ONNX signature ─▶ inputs (names, dtypes, [N, F] columns), probability output, vocabularies
data file ─▶ columns checked ─▶ categories, ranges ─▶ calibration / holdout split
FP32 model on the holdout ─▶ thresholds at the alert rates; its ROC-AUC and the file's SHA-256 (integrity)
config.yaml + model.onnx + calibration.parquet + holdout.parquet, written to a scratch folder, loaded with
the server's own config loader and data checks, then moved into place.

Every decision is reported as one line through `say`; every bad input is a one-line ModelInitError.
"""

import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

from server.config.errors import ConfigError
from server.config.model_config import CONFIG_FILE_NAME, ModelConfig, ModelTask, load_model_config
from server.config.quantization_config import QuantizationMode
from server.model_data import read_data_file
from server.model_init.errors import ModelInitError
from server.model_init.features import (
    InputPlan,
    categories,
    check_column,
    inferred_range,
    listed,
    plan_inputs,
)
from server.model_init.signature import Signature, read_signature
from server.model_init.sources import explicit_sources
from server.model_init.split import check_label, split
from server.model_init.thresholds import fp32_scores, thresholds_at
from server.model_integrity import file_sha256
from server.model_io import OnnxInput, assemble

ONNX_FILE, CALIBRATION_FILE, HOLDOUT_FILE = "model.onnx", "calibration.parquet", "holdout.parquet"
WRITTEN = (CONFIG_FILE_NAME, ONNX_FILE, CALIBRATION_FILE, HOLDOUT_FILE)
DEFAULT_ALERT_RATES = {
    ModelTask.FRAUD: (0.02, 0.005),  # as the bundled fraud model: 2 % review or worse, 0.5 % decline
    ModelTask.BINARY: (0.02, 0.005),
    ModelTask.CREDIT: (0.20, 0.10),  # applications: a fifth to an underwriter or declined, a tenth declined
}
DEFAULT_SCORECARD = {"base_score": 600.0, "base_odds": 50.0, "points_to_double_odds": 20.0}
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class InitOptions:
    directory: Path
    onnx: Path
    data: Path
    label: str
    task: ModelTask = ModelTask.FRAUD
    holdout: Path | None = None
    holdout_fraction: float = 0.3
    time_column: str | None = None
    alert_rates: tuple[float, float] | None = None  # None: DEFAULT_ALERT_RATES[task]
    name: str | None = None
    version: str = "1.0.0"
    force: bool = False
    ignore: tuple[str, ...] = ()
    columns: tuple[str, ...] | None = None
    output: str | None = None


@dataclass(frozen=True)
class InitResult:
    directory: Path
    config: ModelConfig
    lines: list[str] = field(default_factory=list)


def check_alert_rates(rates: Sequence[float] | str) -> tuple[float, float]:
    """Two alert rates, review then decline, from a sequence or the flag's text ("0.02,0.005")."""
    if isinstance(rates, str):
        try:
            rates = [float(part) for part in rates.split(",")]
        except ValueError:
            raise ModelInitError(f"--alert-rates takes two numbers like 0.02,0.005, got '{rates}'") from None
    if len(rates) != 2:
        raise ModelInitError(f"--alert-rates takes two rates (review, decline), got {len(rates)}")
    review, decline = rates
    if not (0.0 < decline < review < 1.0):
        raise ModelInitError(
            f"--alert-rates {review:g},{decline:g}: need 0 < decline rate < review rate < 1 (the first is "
            "the share sent to review or declined, the second the share declined)"
        )
    return review, decline


def init_model(options: InitOptions, say: Callable[[str], None] = print) -> InitResult:
    """Write the model folder `options.directory`; ModelInitError for any input it cannot use."""
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        say(line)

    name = _model_name(options)
    rates = check_alert_rates(options.alert_rates or DEFAULT_ALERT_RATES[options.task])
    if options.holdout is None and not 0.0 < options.holdout_fraction < 1.0:
        raise ModelInitError(f"--holdout-fraction must be in (0, 1), got {options.holdout_fraction:g}")
    for flag, path in (("--onnx", options.onnx), ("--data", options.data), ("--holdout", options.holdout)):
        if path is not None and not Path(path).is_file():
            raise ModelInitError(f"{flag}: file not found: {path}")
    _check_destination(options)

    signature = read_signature(options.onnx, options.output)
    strings = [i.name for i in signature.inputs if i.dtype == "string"]
    data = _read(options.data, strings)
    holdout = _read(options.holdout, strings) if options.holdout is not None else None
    for flag, column in (("--time-column", options.time_column), *(("--ignore", c) for c in options.ignore)):
        if column is not None and column not in data.columns:
            raise ModelInitError(f"{flag}: data file {options.data} has no column '{column}'")
    if options.time_column is not None and data[options.time_column].isna().any():
        raise ModelInitError(f"--time-column: column '{options.time_column}' has missing values")
    if holdout is not None:  # the label first: a missing one would otherwise read as an unknown column
        holdout[options.label] = check_label(holdout, options.label, str(options.holdout))
        if options.label in data.columns:
            data[options.label] = check_label(data, options.label, str(options.data))
    else:
        data[options.label] = check_label(data, options.label, str(options.data))
    reserved = [options.label, *options.ignore, *([options.time_column] if options.time_column else [])]
    plans = plan_inputs(signature, list(data.columns), reserved, options.columns, str(options.data))
    feature_columns = [(plan, column) for plan in plans for column in plan.columns]
    names = [column for _, column in feature_columns]
    frames = [(options.data, data)] + ([(options.holdout, holdout)] if holdout is not None else [])
    for path, frame in frames:
        for plan, column in feature_columns:
            if column not in frame.columns:
                raise ModelInitError(f"holdout file {path} has no column '{column}' (the data file has)")
            check_column(frame, column, plan.graph_input.dtype, str(path))
    if holdout is not None:
        extra = [str(c) for c in holdout.columns if c not in names and c not in reserved]
        if extra:
            raise ModelInitError(
                f"holdout file {options.holdout}: columns {listed(extra)} feed no ONNX input; pass --ignore "
                "for non-model columns"
            )
    report(_output_line(signature))
    report(_inputs_line(plans, options))

    everything = pd.concat([frame[names] for _, frame in frames], ignore_index=True)
    inputs, notes = _input_specs(signature, plans, everything)
    report("categories: " + ("; ".join(notes["categories"]) or "none (no string inputs)"))
    report(_ranges_line(notes["ranges"]))
    parts = split(data, options.label, holdout, options.holdout_fraction, options.time_column)
    report(f"split: {parts.how}")

    onnx_inputs = tuple(OnnxInput(p.graph_input.name, p.graph_input.dtype, p.columns) for p in plans)
    feeds = assemble(onnx_inputs, {column: parts.holdout[column].to_numpy() for column in names})
    scores = fp32_scores(options.onnx, feeds, signature.output.name)
    review, decline = thresholds_at(scores, rates)
    if not 0.0 < review.value < decline.value < 1.0:
        raise ModelInitError(
            f"thresholds review {review.value:g} and decline {decline.value:g} at alert rates "
            f"{rates[0]:g},{rates[1]:g} must satisfy 0 < review < decline < 1; the holdout scores are too "
            "coarse or saturated: try other --alert-rates"
        )
    report(
        f"thresholds: review {review.value:.6g} ({review.alerted:,} of {review.rows:,} FP32 holdout scores "
        f"at or above it = {review.share:.2%}, asked {rates[0]:.2%}); decline {decline.value:.6g} "
        f"({decline.alerted:,} = {decline.share:.2%}, asked {rates[1]:.2%})"
    )
    if options.task is ModelTask.BINARY:
        report("domain API: none (task binary is served by the Open Inference Protocol, decisions applied)")
    else:
        report(explicit_sources(inputs, options.task))
    inputs = [_ordered(spec) for spec in inputs]
    ignored = [c for c in reserved if c != options.label and any(c in f.columns for _, f in frames)]
    config = _config(options, name, signature, inputs, ignored, (review.value, decline.value))
    config["integrity"] = {
        "model_sha256": file_sha256(options.onnx),  # copied as it is: the digest of the written model.onnx
        "holdout_roc_auc": float(roc_auc_score(parts.holdout[options.label].to_numpy(), scores)),
    }
    report(
        f"integrity: model.onnx SHA-256 {config['integrity']['model_sha256'][:12]}…, FP32 holdout ROC-AUC "
        f"{config['integrity']['holdout_roc_auc']:.4f} (checked before every start serves it)"
    )
    report(_quantization_line(signature, ignored))
    if options.task is ModelTask.CREDIT:
        report(
            "scorecard: 600 points at odds 50:1, 20 points to double the odds (the defaults; edit scorecard "
            "in config.yaml)"
        )
    loaded = _write(options, config, parts)
    directory = options.directory
    report(
        f"wrote {directory}: {', '.join(WRITTEN)}; next: riskserve quantize {directory.name} --models-dir "
        f"{directory.parent}, then riskserve serve --models-dir {directory.parent}"
    )
    return InitResult(directory, loaded, lines)


_KEY_ORDER = ("name", "onnx_name", "dtype", "source", "minimum", "maximum", "categories", "columns")


def _ordered(spec: dict) -> dict:
    """A config entry's keys in reading order (name, dtype, source, range, ..., description last)."""
    if "columns" in spec:
        spec = {**spec, "columns": [_ordered(column) for column in spec["columns"]]}
    first = {key: spec[key] for key in _KEY_ORDER if key in spec}
    return first | {key: value for key, value in spec.items() if key not in first}


def _model_name(options: InitOptions) -> str:
    name = options.name or options.directory.name
    if not _MODEL_NAME.match(name):
        where = "--name" if options.name else f"the folder name '{name}' (the default model name)"
        raise ModelInitError(
            f"{where}: a model name is lower-case letters, digits, _ and -, starting with a letter; pass "
            "--name"
        )
    if not options.version:
        raise ModelInitError("--version must not be empty")
    return name


def _check_destination(options: InitOptions) -> None:
    directory = options.directory
    if directory.exists() and not directory.is_dir():
        raise ModelInitError(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not options.force:
        present = [f for f in WRITTEN if (directory / f).exists()]
        what = f" (holds {', '.join(present)})" if present else ""
        raise ModelInitError(
            f"folder {directory} exists and is not empty{what}; pass --force to write "
            f"{', '.join(WRITTEN)} into it (nothing else there is touched)"
        )


def _read(path: Path, strings: Sequence[str]) -> pd.DataFrame:
    try:
        frame = read_data_file(path, strings)
    except ConfigError as exc:
        raise ModelInitError(str(exc)) from exc
    if frame.empty:
        raise ModelInitError(f"data file {path} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _shape(width: int | None) -> str:
    return f"[N, {width if width is not None else 'F'}]"


def _output_line(signature: Signature) -> str:
    output = signature.output
    column = "column 0, the only one" if output.width == 1 else "column 1 of the [N, 2] pair"
    others = f"; not used: {', '.join(output.others)}" if output.others else ""
    return (
        f"output: '{output.name}' {_shape(output.width)}, the float probability tensor; positive class = "
        f"{column}{others}"
    )


def _inputs_line(plans: Sequence[InputPlan], options: InitOptions) -> str:
    narrow = [p for p in plans if not p.wide]
    dtypes = sorted({p.graph_input.dtype for p in narrow})
    parts = []
    if narrow:
        counts = ", ".join(f"{sum(p.graph_input.dtype == d for p in narrow)} {d}" for d in dtypes)
        parts.append(f"{len(narrow)} [N, 1] inputs ({counts}), each the data column of its name")
    for plan in (p for p in plans if p.wide):
        source = (
            "--columns"
            if options.columns is not None
            else ("the data's other columns in file order (label, time and --ignore columns left out)")
        )
        parts.append(
            f"'{plan.graph_input.name}' {plan.graph_input.dtype} [N, {len(plan.columns)}] from {source}: "
            f"{listed(plan.columns)}"
        )
    return f"inputs: {len(plans)} ONNX input(s): " + "; ".join(parts)


_FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")  # server/config/model_config.py's _NAME


def _feature_name(name: str, what: str) -> str:
    if not _FEATURE_NAME.match(name):
        raise ModelInitError(
            f"{what} '{name}' cannot be a feature name (letters, digits, _ . : / -, starting with a letter "
            "or _): rename it in the data (and the ONNX input)"
        )
    return name


def _input_specs(
    signature: Signature, plans: Sequence[InputPlan], everything: pd.DataFrame
) -> tuple[list[dict], dict[str, list]]:
    """The config's `inputs` entries, and the notes behind them (category origins, range rules)."""
    notes: dict[str, list] = {"categories": [], "ranges": []}

    def feature(column: str, dtype: str, index: tuple[str, int]) -> dict:
        values = everything[column]
        if dtype == "string":
            found = categories(values, signature.vocabularies.get(index))
            note = f"'{column}' {len(found.values)} from {found.origin}"
            if found.outside:
                note += f" (data values it does not know, refused when served: {listed(found.outside)})"
            notes["categories"].append(note)
            return {
                "categories": list(found.values),
                "description": f"{len(found.values)} values from {found.origin}",
            }
        bounds = inferred_range(values, dtype)
        notes["ranges"].append(bounds.rule)
        low, high = bounds.observed
        entry: dict = {}
        if bounds.minimum is not None:
            entry["minimum"] = bounds.minimum
        if bounds.maximum is not None:
            entry["maximum"] = bounds.maximum
        entry["description"] = f"observed {low:g} to {high:g} in the data"
        return entry

    specs = []
    for plan in plans:
        graph_input = plan.graph_input
        if not plan.wide:
            name = _feature_name(graph_input.name, "ONNX input / data column")
            specs.append(
                {"name": name, "dtype": graph_input.dtype, **feature(name, graph_input.dtype, (name, 0))}
            )
            continue
        spec: dict = {"name": re.sub(r"[^A-Za-z0-9_.:/-]", "_", graph_input.name)}
        if not _FEATURE_NAME.match(spec["name"]):
            spec["name"] = "_" + spec["name"]
        if spec["name"] != graph_input.name:
            spec["onnx_name"] = graph_input.name
        spec["dtype"] = graph_input.dtype
        spec["columns"] = [
            {
                "name": _feature_name(column, "data column"),
                **feature(column, graph_input.dtype, (graph_input.name, i)),
            }
            for i, column in enumerate(plan.columns)
        ]
        specs.append(spec)
    return specs, notes


def _ranges_line(rules: list[str]) -> str:
    if not rules:
        return "ranges: none (no numeric inputs)"
    counts = {rule: rules.count(rule) for rule in dict.fromkeys(rules)}
    said = {
        "0/1": "[0, 1] for {} column(s) holding only 0 and 1",
        "never negative": "minimum 0 for {} never-negative column(s)",
        "widened": "minimum widened below the data for {} column(s) with negative values",
        "bool": "none for {} bool column(s)",
    }
    parts = [said[rule].format(count) for rule, count in counts.items()]
    return (
        "ranges: " + "; ".join(parts) + "; every maximum is the data's maximum plus its observed span, "
        "rounded up to 3 significant digits (docs/config.md: a new record passes, a unit mix-up does not)"
    )


def _config(
    options: InitOptions,
    name: str,
    signature: Signature,
    inputs: list[dict],
    ignored: list[str],
    thresholds: tuple[float, float],
) -> dict:
    quantization: dict = {}
    if not signature.quantizable_layers:
        quantization["mode"] = QuantizationMode.NONE.value
    if ignored:
        quantization["ignored_columns"] = ignored
    config = {
        "name": name,
        "version": options.version,
        "task": options.task.value,
        "description": f"{options.task.value} model from {options.onnx.name} (riskserve models init)",
        "onnx_file": ONNX_FILE,
        "output_name": signature.output.name,
        "label_column": options.label,
        "calibration_file": CALIBRATION_FILE,
        "holdout_file": HOLDOUT_FILE,
        "inputs": inputs,
        "decision": {"review": thresholds[0], "decline": thresholds[1]},
    }
    if options.task is ModelTask.CREDIT:
        config["scorecard"] = dict(DEFAULT_SCORECARD)
    if quantization:
        config["quantization"] = quantization
    return config


def _quantization_line(signature: Signature, ignored: list[str]) -> str:
    kept = f"; ignored_columns (in the data files, not inputs): {listed(ignored)}" if ignored else ""
    if signature.quantizable_layers:
        return (
            f"quantization: static INT8 at startup ({signature.quantizable_layers} MatMul/Gemm layer(s) with "
            f"constant weights), gated against FP32 on the holdout{kept}"
        )
    return (
        "quantization: mode none, served in FP32 (no MatMul/Gemm layer with constant weights: a tree "
        f"ensemble or linear ai.onnx.ml model has nothing to quantize){kept}"
    )


def _write(options: InitOptions, config: dict, parts) -> ModelConfig:
    """Write every file into a scratch folder beside the destination, check it loads as the server and
    `riskserve quantize` will load it, then move the files into place."""
    directory = options.directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}.init-", dir=directory.parent))
    try:
        header = (
            f"# {config['name']}: written by `riskserve models init` from {options.onnx.name} and "
            f"{options.data.name}.\n# Inputs, categories, ranges and thresholds were inferred: review them "
            "(docs/config.md).\n"
        )
        (scratch / CONFIG_FILE_NAME).write_text(header + yaml.safe_dump(config, sort_keys=False, width=110))
        shutil.copyfile(options.onnx, scratch / ONNX_FILE)
        parts.calibration.to_parquet(scratch / CALIBRATION_FILE, index=False)
        parts.holdout.to_parquet(scratch / HOLDOUT_FILE, index=False)
        _check_written(scratch)
        directory.mkdir(exist_ok=True)
        for file in WRITTEN:
            (scratch / file).replace(directory / file)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return load_model_config(directory)


def _check_written(folder: Path) -> None:
    """The folder loads with the server's config loader, its data files pass the quantization pipeline's
    checks, and (fraud, credit) every feature's source exists in the domain API's message."""
    from server.api.domain_api import APPLICATION, TRANSACTION, feature_sources
    from server.quantization.calibration_data import load_feature_table

    try:
        config = load_model_config(folder)
        q = config.quantization
        for path, label in ((config.calibration_path, False), (config.holdout_path, True)):
            load_feature_table(
                path,
                config,
                min_rows=1,
                label_column=config.label_column,
                require_label=label,
                ignored_columns=q.ignored_columns,
            )
        if config.task is not ModelTask.BINARY:
            feature_sources(config, TRANSACTION if config.task is ModelTask.FRAUD else APPLICATION)
    except ConfigError as exc:
        raise ModelInitError(f"the written folder does not load: {' '.join(str(exc).split())}") from exc

"""`riskserve quantize <model>...`: run the startup quantization pipeline and print the reviewer's summary.

Exit status: 0 when every model is served as gated (INT8 inside its budget, or FP32 by design: `disabled`,
`not_quantizable`, `no_gain`), 3 when a model is served FP32 because INT8 could not be shown to keep its
accuracy (`failed`, `insufficient_evidence`), 2 for a bad model, data or config file. With --json, stdout
holds the JSON only: whatever the pipeline or ONNX Runtime print meanwhile goes to stderr.

--calibration-from-traffic [FILE|DIR]: calibrate a new version of each model on its served version's
traffic file (FILE, or DIR/<model>/<version>.parquet; DIR defaults to RISKSERVE_TRAFFIC_SAMPLE_DIR), gate it
on the holdout as always and, if it serves INT8, add it as the model's version folder
<version>-traffic-<UTC time>: a reload serves it. Exit 2 also for a missing traffic file, one of another
model or feature set, or one with fewer rows than the calibration minimum.
"""

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from server.config import ConfigError
from server.config.model_versions import load_served_config
from server.config.paths import default_cache_dir, default_models_dir, default_traffic_sample_dir
from server.quantization.errors import QuantizationError
from server.served_model import GateVerdict

if TYPE_CHECKING:
    from server.quantization.traffic_candidate import TrafficCandidate

EXIT_GATE_FAILED = 3
EXIT_BAD_INPUT = 2
FP32_FALLBACK_VERDICTS = (GateVerdict.FAILED, GateVerdict.INSUFFICIENT_EVIDENCE)
FROM_ENVIRONMENT = "<RISKSERVE_TRAFFIC_SAMPLE_DIR>"  # --calibration-from-traffic without a value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="quantize models to INT8 and gate them against FP32 (the same pipeline the server runs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model folder name(s) in the repository")
    parser.add_argument("--models-dir", type=Path, default=None, help="model repository (default: bundled)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="quantization cache (default: ~/.cache)")
    parser.add_argument("--force", action="store_true", help="ignore cached results and rebuild them")
    parser.add_argument("--json", action="store_true", help="print the full JSON report(s) instead")
    parser.add_argument(
        "--calibration-from-traffic",
        nargs="?",
        const=FROM_ENVIRONMENT,
        default=None,
        metavar="FILE|DIR",
        help="calibrate a new candidate version on the served version's traffic file (the server's "
        "traffic_sample_dir, or one file); published as a version folder if it serves INT8",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter

    from server.quantization.pipeline import prepare_model  # not at import: other commands stay fast
    from server.quantization.report import QuantizationReport
    from server.quantization.summary import format_summary
    from server.quantization.traffic_candidate import build_candidate

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    models_dir = args.models_dir or default_models_dir()
    cache_dir = args.cache_dir or default_cache_dir()
    progress = None if args.json else (lambda message: print(message, file=sys.stderr))
    traffic = _traffic_source(args)
    if isinstance(traffic, str):
        print(f"error: --calibration-from-traffic: {traffic}", file=sys.stderr)
        return EXIT_BAD_INPUT
    reports: list[QuantizationReport] = []
    status = 0
    failed: list[str] = []
    for name in args.models:  # every named model, each reported, whatever happened to the others
        try:
            with _stdout_to_stderr() if args.json else contextlib.nullcontext():
                if traffic is None:
                    config = load_served_config(models_dir / name)
                    prepared = prepare_model(config, cache_dir, progress, force=args.force)
                else:
                    candidate = build_candidate(
                        models_dir / name, traffic, cache_dir, progress, force=args.force
                    )
                    prepared = candidate.prepared
        except (ConfigError, QuantizationError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        if prepared.facts.gate_verdict in FP32_FALLBACK_VERDICTS:
            status = EXIT_GATE_FAILED
        report = prepared.report
        if report is None:  # prepare_model always reports; the type allows a runtime built without one
            raise RuntimeError(f"{name}: no quantization report")
        reports.append(report)
        if not args.json:
            print(format_summary(report))
        if traffic is not None:
            print(_candidate_line(candidate), file=sys.stderr if args.json else sys.stdout)
    if args.json:  # one model: its report; several: a list of reports
        if len(reports) == 1:
            print(reports[0].model_dump_json(indent=2))
        else:
            print(TypeAdapter(list[QuantizationReport]).dump_json(reports, indent=2).decode())
    if failed:
        if len(args.models) > 1:
            print(
                f"error: {len(failed)} of {len(args.models)} models failed: {', '.join(failed)}",
                file=sys.stderr,
            )
        return EXIT_BAD_INPUT
    return status


def _traffic_source(args: argparse.Namespace) -> Path | str | None:
    """--calibration-from-traffic's file or folder (None: not asked), or why it cannot be used."""
    from server.quantization.traffic_candidate import names_one_file

    source = args.calibration_from_traffic
    if source is None:
        return None
    if source == FROM_ENVIRONMENT:
        directory = default_traffic_sample_dir()
        return directory or "give FILE|DIR, or set RISKSERVE_TRAFFIC_SAMPLE_DIR (the traffic_sample_dir)"
    if names_one_file(Path(source)) and len(args.models) > 1:
        return f"{source} is one traffic file, for one model: name one model, or give the folder"
    return Path(source)


def _candidate_line(candidate: "TrafficCandidate") -> str:
    where = f"calibrated on {candidate.rows} rows of {candidate.traffic}"
    if candidate.folder is None:
        verdict = candidate.prepared.facts.gate_verdict.value
        return (
            f"candidate {candidate.version} ({where}): not written, verdict {verdict} (it would serve FP32)"
        )
    return f"candidate {candidate.version} ({where}): written to {candidate.folder}; a reload serves it"


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout meanwhile to stderr: Python's sys.stdout (ORT's calibrators
    print "Collecting tensor data...") and file descriptor 1 (native code)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)

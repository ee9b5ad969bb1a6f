"""What a challenger in shadow costs its champion's calls: sequential FraudScoring.Score against the bundled
fraud model (INT8) alone and with a challenger at `challenger.shadow_share` 0.1, side by side
(benchmarks/shadow_overhead.py: one server per variant, rounds interleaved; p50 / p99, server CPU per call
and the challenger thread's own, RSS, the rows the challenger scored and dropped). The live check is off in
both (live_check_sample_rate 0), so the difference is the challenger's.

The challenger is the bundled fraud model again, served FP32 (`quantization.mode: none`) under the name
`fraud_challenger`: the same inputs, the costlier precision, scores that differ a little from the INT8
champion's. Both variants serve both models from one folder of links to the bundled files; only the
champion's config differs (the `challenger` section: the README's one config change).

    .venv/bin/python -m benchmarks.challenger                 # about 2 minutes on 2 shared cores
    .venv/bin/python -m benchmarks.challenger --calls 3000 --repeats 5 --output results.json
"""

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from benchmarks.shadow_overhead import Variant, print_table, run
from server.config.paths import BUNDLED_MODELS_DIR

CHALLENGER = "fraud_challenger"
COUNTERS = {
    "rows_compared": "riskserve_challenger_rows_total",
    "rows_dropped": "riskserve_challenger_dropped_rows_total",
}


def _linked_model(source: Path, target: Path, **config_changes: object) -> None:
    """`source`'s model folder at `target`: its files linked, its config with `config_changes`."""
    target.mkdir(parents=True)
    for file in source.iterdir():
        if file.name != "config.yaml":
            (target / file.name).symlink_to(file)
    config = yaml.safe_load((source / "config.yaml").read_text()) | config_changes
    (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def models_folder(root: Path, shadow_share: float | None) -> Path:
    """The champion `fraud` (a challenger section when `shadow_share` is given) and `fraud_challenger`."""
    fraud = BUNDLED_MODELS_DIR / "fraud"
    section = (
        {} if shadow_share is None else {"challenger": {"model": CHALLENGER, "shadow_share": shadow_share}}
    )
    _linked_model(fraud, root / "fraud", **section)
    quantization = yaml.safe_load((fraud / "config.yaml").read_text()).get("quantization", {})
    _linked_model(fraud, root / CHALLENGER, name=CHALLENGER, quantization=quantization | {"mode": "none"})
    return root


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per run")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, the variants interleaved in each")
    parser.add_argument("--shadow-share", type=float, default=0.1, help="the challenger's shadow_share")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="quantization cache (default: a temp dir)"
    )
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="riskserve-challenger-bench-") as scratch:
        root = Path(scratch)
        settings = {"live_check_sample_rate": 0}
        variants = {
            "champion alone": Variant(models_folder(root / "alone", None), settings),
            f"shadow_share {args.shadow_share:g}": Variant(
                models_folder(root / "shadow", args.shadow_share), settings
            ),
        }
        results = run(variants, args.calls, args.repeats, args.cache_dir or root / "cache", COUNTERS)
    print_table(results, "bundled fraud INT8 champion, FP32 challenger")
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

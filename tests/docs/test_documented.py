"""The README's references stay in step with the code: every setting and every exported metric is listed."""

import re
from pathlib import Path

from server.config.settings import ServerSettings
from server.metrics import catalogue

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()


def _first_cells(heading: str) -> set[str]:
    """Backticked names in the first column of the table under `## heading`."""
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_server_setting_is_in_the_readme_configuration_table():
    documented = _first_cells("Configuration")
    missing = set(ServerSettings.model_fields) - documented
    unknown = documented - set(ServerSettings.model_fields)
    assert not missing, f"settings missing from README's Configuration table: {sorted(missing)}"
    assert not unknown, f"README's Configuration table lists settings that do not exist: {sorted(unknown)}"


def test_every_exported_metric_is_in_the_readme_metrics_table():
    exported = {spec.name for spec in vars(catalogue).values() if isinstance(spec, catalogue.MetricSpec)}
    assert exported, "no metric names found in server.metrics.catalogue"
    documented = _first_cells("Metrics")
    assert not exported - documented, f"metrics missing from README: {sorted(exported - documented)}"

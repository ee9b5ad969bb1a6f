"""docs/config.md documents every key of a model's config.yaml: each key of the ModelConfig schema (through
every nested section and list entry) has a row, every row is a key that exists, the required column says
what the schema requires, the documented defaults are the schema's, and the worked examples' configs load."""

import re
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from server.config.model_config import ModelConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
SECTION_DEFAULT = "the defaults below"  # the default cell of a section whose default is all its defaults
NO_DEFAULT = "—"


def _nested_model(annotation) -> tuple[type[BaseModel] | None, bool]:
    """The pydantic model inside `annotation` (X, X | None, tuple[X, ...]) and whether it is a list."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate, typing.get_origin(annotation) is tuple
    return None, False


def schema_keys(model: type[BaseModel] = ModelConfig, prefix: str = "") -> dict[str, FieldInfo]:
    """Every key a config file may hold, as a path (`inputs[].columns[].name`), with its field."""
    keys: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        if field.exclude:  # set by the loader, not part of the file (ModelConfig.directory)
            continue
        keys[prefix + name] = field
        nested, is_list = _nested_model(field.annotation)
        if nested is not None:
            keys |= schema_keys(nested, f"{prefix}{name}{'[]' if is_list else ''}.")
    return keys


def documented_rows() -> dict[str, tuple[str, str]]:
    """key -> (required cell, default cell) from the tables of the doc's Reference section."""
    section = DOC.read_text().split("\n## Reference\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not re.fullmatch(r"`[^`]+`", cells[0]):
            continue
        key = cells[0].strip("`")
        assert key not in rows, f"docs/config.md documents {key} twice"
        rows[key] = (cells[1], cells[2])
    return rows


def test_every_schema_key_is_documented_and_every_documented_key_exists() -> None:
    documented, schema = set(documented_rows()), set(schema_keys())
    assert not schema - documented, f"keys missing from docs/config.md: {sorted(schema - documented)}"
    assert not documented - schema, (
        f"docs/config.md documents keys that do not exist: {sorted(documented - schema)}"
    )


def test_the_required_column_says_what_the_schema_requires() -> None:
    rows = documented_rows()
    for key, field in schema_keys().items():
        required = rows[key][0]
        assert required.split()[0] == ("yes" if field.is_required() else "no"), (
            f"{key}: required '{required}'"
        )


def _as_yaml(field: FieldInfo):
    return TypeAdapter(field.annotation).dump_python(field.default, mode="json")


def test_the_documented_defaults_are_the_schemas() -> None:
    rows = documented_rows()
    for key, field in schema_keys().items():
        cell = rows[key][1]
        if field.is_required():
            assert cell == NO_DEFAULT, f"{key} is required: its default cell must be {NO_DEFAULT}, not {cell}"
        elif isinstance(field.default, BaseModel):
            assert cell == SECTION_DEFAULT, f"{key}: a section's default cell is '{SECTION_DEFAULT}'"
        else:
            match = re.fullmatch(r"`([^`]*)`", cell)
            assert match, f"{key}: default cell {cell!r} is not one backticked YAML value"
            assert yaml.safe_load(match[1] or "''") == _as_yaml(field), (
                f"{key}: docs/config.md says {match[1]}, the schema's default is {_as_yaml(field)!r}"
            )


def _example_configs() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return [block for block in blocks if block.startswith("name:")]


def test_the_doc_has_the_three_worked_examples() -> None:
    names = [yaml.safe_load(block)["name"] for block in _example_configs()]
    assert names == ["chargeback", "mlp", "trees"]


@pytest.mark.parametrize("block", _example_configs(), ids=lambda block: block.split("\n", 1)[0])
def test_each_worked_example_config_is_valid(block: str) -> None:
    config = ModelConfig.model_validate(yaml.safe_load(block))
    assert config.features

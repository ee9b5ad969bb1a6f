"""A model's data files and graph are checked against its config at startup, every problem at once."""

import shutil

import pandas as pd
import pytest
import yaml

from server.config.errors import DataFileError
from server.config.model_config import load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.model_checks import check_model_files


@pytest.fixture()
def credit(tmp_path):
    folder = tmp_path / "credit"
    shutil.copytree(BUNDLED_MODELS_DIR / "credit", folder)
    return folder


def test_the_bundled_models_fit_their_configs():
    for name in ("fraud", "credit"):
        check_model_files(load_model_config(BUNDLED_MODELS_DIR / name))


def test_categories_and_ranges_the_config_refuses_are_named_with_values_and_counts(credit):
    holdout = pd.read_parquet(credit / "holdout.parquet")
    holdout.loc[:2, "purpose"] = "yacht"
    holdout.loc[:4, "debt_to_income"] = -0.5
    holdout.to_parquet(credit / "holdout.parquet")
    calibration = pd.read_parquet(credit / "calibration.parquet")
    calibration.loc[:0, "home_ownership"] = "castle"
    calibration.to_parquet(credit / "calibration.parquet")
    with pytest.raises(DataFileError) as error:
        check_model_files(load_model_config(credit))
    message = str(error.value)
    assert (
        "calibration.parquet: column 'home_ownership' has values the config's categories do not list: "
        in message
    )
    assert "'castle' (1 rows)" in message
    assert (
        "holdout.parquet: column 'purpose' has values the config's categories do not list: 'yacht' (3 rows)"
        in message
    )
    assert "holdout.parquet: column 'debt_to_income' has 5 rows outside the config's range [0, " in message
    assert "e.g. -0.5" in message


def test_a_config_category_the_graphs_encoder_does_not_know_is_named(credit):
    config = yaml.safe_load((credit / "config.yaml").read_text())
    spec = next(s for s in config["inputs"] if s["name"] == "purpose")
    spec["categories"] = [*spec["categories"], "timeshare"]
    (credit / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(
        DataFileError,
        match="input 'purpose' lists categories the graph's OneHotEncoder does not know: 'timeshare'",
    ):
        check_model_files(load_model_config(credit))

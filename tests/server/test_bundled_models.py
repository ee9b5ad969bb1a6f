"""The bundled models (models/) fit the server: every input has a source in the domain messages, and every
holdout row passes the server's validation (a real row refused would be a config or validation bug)."""

import pandas as pd
import pytest

from server.api.domain_api import check_domain_sources
from server.config.model_config import ModelTask, load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.runtime.features import FeatureSchema


@pytest.mark.parametrize("name", ["fraud", "credit"])
def test_bundled_model_inputs_map_and_holdout_rows_validate(name):
    if not (BUNDLED_MODELS_DIR / name / "config.yaml").is_file():
        pytest.skip(f"bundled model {name} not built yet")
    config = load_model_config(BUNDLED_MODELS_DIR / name)
    assert config.task is ModelTask(name)
    check_domain_sources(config)
    holdout = pd.read_parquet(config.holdout_path, columns=config.feature_names)
    columns = {c: holdout[c].tolist() for c in config.feature_names}
    tensors = FeatureSchema.from_config(config).validate(columns, len(holdout))
    assert all(t.shape == (len(holdout), 1) for t in tensors.values())

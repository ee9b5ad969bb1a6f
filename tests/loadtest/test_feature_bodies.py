"""Request messages built from data rows by each feature's source read back as the same feature columns."""

import numpy as np
import pytest

from loadtest.feature_bodies import domain_messages
from server.api.domain_api import TRANSACTION, MessageColumns
from server.config.model_config import load_model_config
from tests.e2e.any_models import mixed_frame, write_mixed_model


def test_map_sourced_messages_read_back_as_their_rows(tmp_path):
    config = load_model_config(write_mixed_model(tmp_path / "mixed"))
    frame = mixed_frame(40, seed=5)
    messages = domain_messages(config, frame)
    assert all("bureau_score" in m.features and "segment" in m.categorical_features for m in messages)
    reader = MessageColumns(config, TRANSACTION)
    columns = reader.columns(messages, reader.batch_namer)
    for feature in config.feature_names:
        expected = frame[feature].to_numpy()
        got = np.asarray(columns[feature])
        if feature == "amount":  # a float field of the Transaction (double)
            np.testing.assert_array_equal(got, expected.astype(np.float64))
        else:
            assert got.tolist() == expected.tolist()


def test_a_model_without_a_domain_api_is_refused(tmp_path):
    config = load_model_config(write_mixed_model(tmp_path / "aml", name="aml", task="binary"))
    with pytest.raises(ValueError, match="binary model: it has no domain API"):
        domain_messages(config, mixed_frame(2, seed=1))

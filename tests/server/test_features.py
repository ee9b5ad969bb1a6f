"""Validation of named feature columns against a model config (shared by both front doors)."""

import numpy as np
import pytest

from server.config.model_config import ModelConfig
from server.runtime.errors import InvalidInputError
from server.runtime.features import FeatureSchema


@pytest.fixture()
def schema() -> FeatureSchema:
    config = ModelConfig.model_validate(
        {
            "name": "m",
            "version": "1",
            "task": "fraud",
            "label_column": "y",
            "decision": {"review": 0.3, "decline": 0.6},
            "inputs": [
                {"name": "amount", "dtype": "float32", "minimum": 0},
                {"name": "hour_of_day", "dtype": "float32", "minimum": 0, "maximum": 23},
                {"name": "channel", "dtype": "string", "categories": ["pos", "ecom"]},
            ],
        }
    )
    return FeatureSchema.from_config(config)


def test_valid_columns_become_contiguous_row_tensors(schema):
    tensors = schema.validate(
        {"amount": [1.5, 2.0], "hour_of_day": np.array([3, 23]), "channel": ["pos", "ecom"]}, 2
    )
    assert tensors["amount"].dtype == np.float32 and tensors["amount"].shape == (2, 1)
    assert tensors["amount"].flags["C_CONTIGUOUS"] and tensors["hour_of_day"].ravel().tolist() == [3.0, 23.0]
    assert tensors["channel"].dtype == object and tensors["channel"].ravel().tolist() == ["pos", "ecom"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"amount": [1.0, 1e39], "hour_of_day": [1, 2]},
            "amount[1]: value 1e+39 outside",
        ),  # float32 overflow
        (
            {"amount": [1.0, 2.0], "hour_of_day": [1, 24]},
            "hour_of_day[1]: value 24 outside the allowed range [0, 23]",
        ),
        (
            {"amount": [-0.01, 2.0], "hour_of_day": [1, 2]},
            "amount[0]: value -0.01 outside the allowed range [0, inf]",
        ),
        ({"amount": [1.0], "hour_of_day": [1, 2]}, "amount: has 1 values, expected 2"),
        ({"hour_of_day": [1, 2]}, "amount: missing"),
        (
            {"amount": [1.0, 2.0], "hour_of_day": [1, 2], "channel": ["pos", "atm"]},
            "channel[1]: unknown value 'atm'",
        ),
    ],
)
def test_first_bad_value_is_named(schema, columns, message):
    columns = {"channel": ["pos", "pos"], **columns}
    with pytest.raises(InvalidInputError) as error:
        schema.validate(columns, 2)
    assert str(error.value).startswith(message)

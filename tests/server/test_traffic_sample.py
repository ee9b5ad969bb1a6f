"""The traffic file (server/monitoring/traffic_sample.py) on its own: rows validated as a call's are written
back as a calibration file's columns, read back exactly by the calibration reader, newest rows kept, written
once enough rows wait, after the flush time and at stop, kept across a restart; never an id."""

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from server.config.errors import ConfigError
from server.config.model_config import ModelConfig, load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.config.settings import ServerSettings, load_settings
from server.model_data import read_data_file
from server.monitoring.traffic_sample import TrafficSample, file_model, id_features, traffic_file
from server.quantization.calibration_data import load_feature_table
from server.runtime.features import FeatureSchema

FRAUD_DIR = BUNDLED_MODELS_DIR / "fraud"
pytestmark = pytest.mark.skipif(not (FRAUD_DIR / "config.yaml").is_file(), reason="fraud model not built")


@pytest.fixture(scope="module")
def fraud() -> ModelConfig:
    return load_model_config(FRAUD_DIR)


@pytest.fixture(scope="module")
def sent(fraud: ModelConfig) -> pd.DataFrame:
    """Rows as a client sends them: the bundled calibration file's features, and ids beside them."""
    frame = read_data_file(fraud.calibration_path).head(300).reset_index(drop=True)
    frame["transaction_id"] = [f"t-{i}" for i in range(len(frame))]
    frame["card_id"] = "tok-card-1"
    return frame


def settings(directory: Path, **overrides) -> ServerSettings:
    quiet = dict(traffic_sample_flush_rows=10**6, traffic_sample_flush_s=3600.0)  # written at stop only
    return ServerSettings(traffic_sample_dir=directory, **(quiet | overrides))


def feeds(config: ModelConfig, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows validated into tensors as the server validates a call."""
    columns = {name: frame[name].tolist() for name in frame.columns}
    return FeatureSchema.from_config(config).validate(columns, len(frame))


def as_model_saw(config: ModelConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame`'s features as the model read them: each number in its input's dtype."""
    expected = frame[config.feature_names].copy()
    for feature in config.features:
        if feature.dtype == "float32":
            expected[feature.name] = expected[feature.name].astype(np.float32)
    return expected.reset_index(drop=True)


def written(path: Path) -> pd.DataFrame:
    """The file's rows, read from a copy (one open): the writer may be replacing it meanwhile."""
    snapshot = path.with_name("snapshot.parquet")
    shutil.copyfile(path, snapshot)
    return read_data_file(snapshot)


def test_the_file_holds_the_sampled_rows_features_exactly_and_no_id(tmp_path, fraud, sent):
    sample = TrafficSample(fraud, fraud.version, settings(tmp_path))
    sample.start()
    sample.add(feeds(fraud, sent.iloc[:120]))
    sample.offer(feeds(fraud, sent.iloc[120:300]), np.zeros((180, 2)))  # a sampled call, as Shadows give it
    sample.stop()
    path = traffic_file(tmp_path, "fraud", fraud.version)
    frame = written(path)
    assert list(frame.columns) == fraud.feature_names  # no transaction_id, card_id
    pd.testing.assert_frame_equal(frame, as_model_saw(fraud, sent), check_dtype=False)
    assert frame["currency"].map(type).eq(str).all() and frame["amount"].dtype == np.float32
    assert file_model(path) == ("fraud", fraud.version)
    # read as a calibration file is: the same feeds the server scored
    table = load_feature_table(path, fraud, min_rows=1)
    expected = feeds(fraud, sent)
    assert table.rows == 300 and set(table.feeds) == set(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(table.feeds[name], values)


@pytest.mark.parametrize("flush_rows", [50, 10**6], ids=["written-each-time", "written-once"])
def test_only_the_newest_rows_are_kept(tmp_path, fraud, sent, flush_rows):
    bounded = settings(tmp_path, traffic_sample_rows=100, traffic_sample_flush_rows=flush_rows)
    sample = TrafficSample(fraud, fraud.version, bounded)
    sample.start()
    path = traffic_file(tmp_path, "fraud", fraud.version)
    for start in range(0, 300, 50):
        sample.add(feeds(fraud, sent.iloc[start : start + 50]))
        if flush_rows == 50:
            _wait_for(lambda end=start + 50: path.exists() and written(path).index.size == min(end, 100))
    sample.stop()
    frame = written(traffic_file(tmp_path, "fraud", fraud.version))
    pd.testing.assert_frame_equal(frame, as_model_saw(fraud, sent.iloc[200:]), check_dtype=False)


def test_written_once_enough_rows_wait_or_after_the_flush_time(tmp_path, fraud, sent):
    path = traffic_file(tmp_path, "fraud", fraud.version)
    by_rows = TrafficSample(fraud, fraud.version, settings(tmp_path, traffic_sample_flush_rows=100))
    by_rows.start()
    by_rows.add(feeds(fraud, sent.iloc[:60]))
    time.sleep(0.3)
    assert not path.exists()  # 60 rows wait, fewer than 100
    by_rows.add(feeds(fraud, sent.iloc[60:120]))
    _wait_for(lambda: path.exists() and len(written(path)) == 120)
    by_rows.stop()
    by_time = TrafficSample(fraud, fraud.version, settings(tmp_path, traffic_sample_flush_s=0.5))
    by_time.start()
    by_time.add(feeds(fraud, sent.iloc[120:130]))  # appended to the 120 rows the file holds
    _wait_for(lambda: len(written(path)) == 130)
    by_time.stop()
    pd.testing.assert_frame_equal(written(path), as_model_saw(fraud, sent.iloc[:130]), check_dtype=False)


def test_a_file_of_other_content_is_replaced(tmp_path, fraud, sent):
    path = traffic_file(tmp_path, "fraud", fraud.version)
    path.parent.mkdir(parents=True)
    sent.to_parquet(path)  # ids and all: not this sample's file
    sample = TrafficSample(fraud, fraud.version, settings(tmp_path))
    sample.start()
    sample.add(feeds(fraud, sent.iloc[:5]))
    sample.stop()
    pd.testing.assert_frame_equal(written(path), as_model_saw(fraud, sent.iloc[:5]), check_dtype=False)


def test_a_matrix_input_and_integer_and_bool_features_read_back_as_calibration_columns(tmp_path):
    config = ModelConfig.model_validate(
        {
            "name": "aml",
            "version": "3",
            "task": "binary",
            "label_column": "y",
            "decision": {"review": 0.3, "decline": 0.7},
            "inputs": [
                {"name": "x", "dtype": "float32", "columns": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
                {"name": "count", "dtype": "int64"},
                {"name": "flag", "dtype": "bool"},
                {"name": "kind", "dtype": "string", "categories": ["p", "q"]},
            ],
        }
    )
    sent = pd.DataFrame(
        {"a": [0.1, 2.5], "b": [3.0, -1.0], "c": [1e6, 7.25], "count": [3, 12], "flag": [True, False]}
    )
    sent["kind"] = ["q", "p"]
    sample = TrafficSample(config, "3", settings(tmp_path))
    sample.start()
    sample.add(feeds(config, sent))
    sample.stop()
    path = traffic_file(tmp_path, "aml", "3")
    frame = written(path)
    assert list(frame.columns) == ["a", "b", "c", "count", "flag", "kind"]
    assert frame["count"].tolist() == [3, 12] and frame["flag"].tolist() == [True, False]
    table = load_feature_table(path, config, min_rows=1)
    for name, values in feeds(config, sent).items():
        np.testing.assert_array_equal(table.feeds[name], values)


def test_a_model_reading_an_id_gets_no_traffic_file(fraud):
    raw = fraud.model_dump(mode="json") | {"directory": fraud.directory}
    raw["inputs"] = [
        *raw["inputs"],
        {"name": "merchant_id", "dtype": "string", "categories": ["m-1"]},  # the message's merchant_id
        {"name": "card", "source": "categorical_features.card_id", "dtype": "string", "categories": ["c"]},
    ]
    assert id_features(ModelConfig.model_validate(raw)) == ["merchant_id", "card"]
    assert id_features(fraud) == []


def test_the_traffic_directory_is_outside_the_model_repository_and_one_process_writes(tmp_path):
    with pytest.raises(ConfigError, match=r"traffic_sample_dir: .* is inside models_dir"):
        load_settings(overrides={"models_dir": tmp_path, "traffic_sample_dir": tmp_path / "traffic"})
    with pytest.raises(ConfigError, match="traffic_sample_dir: needs workers = 1"):
        load_settings(overrides={"traffic_sample_dir": tmp_path, "workers": 2})


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)

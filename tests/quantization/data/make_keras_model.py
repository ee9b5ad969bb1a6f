"""Writes keras_mlp.onnx: a Keras MLP trained on exporter_models.make_frame, exported by tf2onnx.

TensorFlow and tf2onnx are not test dependencies (about 600 MB): run this where they install, e.g.

    python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu tf2onnx
    PYTHONPATH=. /tmp/tf/bin/python tests/quantization/data/make_keras_model.py

Made with tensorflow-cpu 2.21.0, keras 3.15.1, tf2onnx 1.17.0 (`tf2onnx.convert.from_keras` fails on Keras
3 models, "KeyError: 'keras_tensor_1'", so the model is exported through a tf.function). Trained on
standardized features whose scaling is then folded into the first Dense layer: a Keras Normalization layer's
mean and variance became graph inputs without values in tf2onnx's export.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
import tf2onnx

from tests.quantization.exporter_models import FEATURES, LABEL, make_frame

OUT = Path(__file__).with_name("keras_mlp.onnx")


def main() -> None:
    tf.keras.utils.set_random_seed(0)
    frame = make_frame(5000, 0)
    x = frame[list(FEATURES)].to_numpy(np.float32)
    y = frame[LABEL].to_numpy(np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((len(FEATURES),), name="features"),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(32, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit((x - mean) / std, y, epochs=15, batch_size=128, verbose=0)
    first = model.layers[0]
    kernel, bias = first.get_weights()
    first.set_weights([kernel / std[:, None], bias - (mean / std) @ kernel])
    spec = (tf.TensorSpec((None, len(FEATURES)), tf.float32, name="features"),)

    @tf.function(input_signature=spec)
    def serve(features):
        return {"probabilities": model(features)}

    onnx_model, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=17)
    OUT.write_bytes(onnx_model.SerializeToString())
    print(f"written {OUT} ({OUT.stat().st_size} bytes): {[n.op_type for n in onnx_model.graph.node]}")


if __name__ == "__main__":
    main()

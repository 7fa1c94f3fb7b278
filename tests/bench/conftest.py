"""Tiny `.tflite` files for the benchmark tests (converted once per module)."""

import keras
import pytest


def _convert(model, directory, name):
    import tensorflow as tf

    saved = directory / f"{name}_saved_model"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    path = directory / f"{name}.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    return str(path)


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    """Paths of "small" (16->8->4 MLP), "large" (16->256->4), "two_inputs" (float + int32 tokens)
    and "dynamic_length" (input (None, None, 3): a dynamic non-batch dimension)."""
    directory = tmp_path_factory.mktemp("tflite")
    small = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(4)])
    large = keras.Sequential([keras.Input((16,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(4)])
    features, tokens = keras.Input((6,), name="features"), keras.Input((3,), dtype="int32", name="tokens")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(2, 2)(tokens))
    two = keras.Model([features, tokens], keras.layers.Dense(4)(keras.layers.Concatenate()([features, embedded])))
    sequence = keras.Input((None, 3))
    dynamic = keras.Model(sequence, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(sequence)))
    return {"small": _convert(small, directory, "small"), "large": _convert(large, directory, "large"),
            "two_inputs": _convert(two, directory, "two_inputs"),
            "dynamic_length": _convert(dynamic, directory, "dynamic_length")}

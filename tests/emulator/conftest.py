"""Fixtures of the emulator tests (`emulator_ready` lives in tests/conftest.py)."""

import os

import numpy as np
import pytest


@pytest.fixture
def tiny_tflite(tmp_path) -> str:
    """A 16->8->4 MLP as a plain float .tflite file."""
    directory = str(tmp_path)
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(4)])
    saved = os.path.join(directory, "tiny_saved_model")
    model.export(saved, format="tf_saved_model", verbose=False)
    path = os.path.join(directory, "tiny.tflite")
    with open(path, "wb") as file:
        file.write(tf.lite.TFLiteConverter.from_saved_model(saved).convert())
    return path


def pruned_mobilenet(input_size=64, sparsity=0.9, width=0.5):
    """The MobileNet-V1-style model with `sparsity` of every `_pw` kernel zeroed by magnitude."""
    import tfsparse
    from tfsparse.model_source import load_model_source
    from tfsparse.strategies.gmp import keep_largest

    model = load_model_source("models/mobilenet_v1.py:mobilenet_v1", input_shape=(input_size, input_size, 3),
                              num_classes=10, width=width)
    pointwise = [w for w in model.weights if "_pw" in w.path and w.path.endswith("kernel")]
    assert pointwise, "no _pw kernels found"
    for variable in pointwise:
        tfsparse.masks.attach(variable)
        values = np.asarray(variable.numpy())
        tfsparse.masks.set_mask(variable, keep_largest(values, int(round(values.size * (1 - sparsity)))))
    return model


@pytest.fixture(scope="module")
def mobilenet_files(tmp_path_factory):
    """{"xnnpack"|"dense"|"sparse": path}: the 90%-sparse MobileNet-V1-style model at 64x64, three exports.

    `"sparse"` keeps the batch dimension dynamic, which keeps XNNPACK off its
    sparse path although the weights are sparse-encoded (the negative control).
    """
    import keras

    import tfsparse

    keras.utils.set_random_seed(0)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        model = pruned_mobilenet()
    finally:
        os.chdir(cwd)
    directory = tmp_path_factory.mktemp("mobilenet")
    files = {}
    for target in ("xnnpack", "dense", "sparse"):
        files[target] = str(directory / f"{target}.tflite")
        tfsparse.export(model, files[target], target=target)
    return files

"""Small models for the export tests (kept tiny: every test converts)."""

import keras
import numpy as np
import pytest


def _zero_fraction(model, fraction, *, seed=0):
    """Sets `fraction` of every kernel (ndim > 1 weight) of `model` to exact zeros."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if len(variable.shape) > 1:
            value = variable.numpy()
            value[rng.random(value.shape) < fraction] = 0.0
            variable.assign(value)
    return model


def _run_tflite(path_or_content, x):
    """Runs a single-input .tflite with LiteRT, one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(path_or_content, (bytes, bytearray)):
        interpreter = Interpreter(model_content=bytes(path_or_content))
    else:
        interpreter = Interpreter(model_path=str(path_or_content))
    runner = interpreter.get_signature_runner()
    (name,) = runner.get_input_details()
    outputs = [runner(**{name: x[i:i + 1]}) for i in range(len(x))]
    (key,) = outputs[0]
    return np.concatenate([o[key] for o in outputs])


@pytest.fixture
def sparse_mlp():
    """64 -> 128 -> 10 MLP with 90% zeros in both kernels."""
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)], name="mlp"
    )
    return _zero_fraction(model, 0.9)


@pytest.fixture
def inputs64():
    return np.random.default_rng(1).normal(size=(48, 64)).astype("float32")


@pytest.fixture
def tiny_cnn():
    """An XNNPACK-style CNN (8x8x3 input) with 90% zeros in its kernels."""
    return _cnn(0.9)


@pytest.fixture
def images():
    return np.random.default_rng(1).normal(size=(48, 8, 8, 3)).astype("float32")


def _cnn(fraction):
    """An XNNPACK-style CNN (8x8x3 input) with `fraction` zeros in its kernels."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.ZeroPadding2D(1)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(64, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)
    return _zero_fraction(keras.Model(inputs, outputs, name="cnn"), fraction)


@keras.saving.register_keras_serializable(package="tfsparse_tests")
class TwoLayer(keras.Model):
    """A subclassed model with a working get_config."""

    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(3)

    def call(self, x, training=False):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@pytest.fixture
def two_layer():
    """A called `TwoLayer(units=16)` (6 inputs, 3 outputs)."""
    model = TwoLayer(units=16)
    model(np.zeros((1, 6), "float32"))
    return model


@pytest.fixture
def run_tflite():
    """`run_tflite(path_or_bytes, x)`: LiteRT outputs of a single-input file."""
    return _run_tflite


@pytest.fixture
def make_cnn():
    """`make_cnn(fraction)`: the tiny CNN with `fraction` zeros per kernel."""
    return _cnn


@pytest.fixture
def zero_fraction():
    """`zero_fraction(model, fraction)`: zeroes that fraction of every kernel."""
    return _zero_fraction

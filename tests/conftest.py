"""Shared fixtures. TensorFlow's C++ logging is quietened for readable output."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts with default Keras settings and fresh layer names."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def mlp():
    """A small compiled-able MLP: 16 inputs, 3 classes (logits)."""
    return keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )


@pytest.fixture
def classification_data():
    """256 samples of 16 features with 3 learnable classes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype("float32")
    y = (x[:, :3].argmax(axis=1)).astype("int32")
    return x, y

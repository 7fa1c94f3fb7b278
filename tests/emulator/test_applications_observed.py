"""Prediction = observation on emulated aarch64 for Keras Applications and the patterns they contain.

For each family (64x64, `weights=None`) after `make_compatible`, with 90% magnitude masks on the 1x1 convolutions
the planner selects: the planner, the linter and the observation all say "fires". For small models with and without
the patterns that break XNNPACK's sparse path, the linter's verdict equals the observation.
"""

import os
import warnings

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.emulator import observe
from tools.bench_applications import FAMILIES, _calibration, _quiet_compatible, magnitude_prune

pytestmark = pytest.mark.slow
L = keras.layers


def _export(model, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return tfsparse.export(model, path, target="xnnpack", verify=False, allow_ineligible=True).path


@pytest.mark.parametrize("family", FAMILIES)
def test_family_after_make_compatible_fires_as_predicted(emulator_ready, family, tmp_path):
    keras.utils.set_random_seed(0)
    model, _ = _quiet_compatible(getattr(keras.applications, family)(input_shape=(64, 64, 3), weights=None))
    tfsparse.recalibrate(model, _calibration(model))
    names = set(tfsparse.xnnpack.check(model, sparsity=0.9).sparse_layers)
    assert magnitude_prune(model, names, 0.9) == pytest.approx(0.9, abs=0.01)
    tfsparse.recalibrate(model, _calibration(model))
    plan = tfsparse.xnnpack.check(model)
    path = _export(model, os.path.join(tmp_path, f"{family}.tflite"))
    lint = tfsparse.xnnpack.lint(path)
    observation = observe(path)
    assert plan.fires and lint.fires and observation.fired, (plan.reasons, lint.reasons, observation.reason)


def _variant(gate=None, head="dense"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, activation="relu")(L.ZeroPadding2D(1)(inputs))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(64, 1, activation="hard_swish")(x)
    if gate is not None:
        s = L.Conv2D(16, 1, activation="relu")(L.GlobalAveragePooling2D(keepdims=True)(x))
        x = L.Multiply()([x, gate(L.Conv2D(64, 1)(s))])
    x = L.Conv2D(64, 1, activation="relu")(x)
    if head == "dense":
        outputs = L.Dense(10)(L.GlobalAveragePooling2D()(x))
    else:
        x = L.Conv2D(10, 1)(L.Conv2D(128, 1, activation="hard_swish")(L.GlobalAveragePooling2D(keepdims=True)(x)))
        outputs = L.Flatten()(x)
    model = keras.Model(inputs, outputs)
    for layer in model.layers:
        if isinstance(layer, L.Conv2D) and tuple(layer.kernel_size) == (1, 1):
            magnitude_prune(model, {layer.name}, 0.9)
    return model


VARIANTS = {
    "squeeze_excitation_sigmoid": (lambda: _variant(L.Activation("sigmoid")), True),
    "squeeze_excitation_hard_sigmoid_ops": (lambda: _variant(lambda s: L.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)), False),
    "squeeze_excitation_hard_sigmoid_layer": (lambda: _variant(L.Activation("hard_sigmoid")), False),
    "head_of_1x1_convolutions_after_the_pooling": (lambda: _variant(head="conv"), True),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_linter_verdict_equals_the_observation(emulator_ready, name, tmp_path):
    build, expected = VARIANTS[name]
    model = build()
    path = _export(model, os.path.join(tmp_path, f"{name}.tflite"))
    lint, observation = tfsparse.xnnpack.lint(path), observe(path)
    assert tfsparse.xnnpack.check(model).fires == lint.fires == observation.fired == expected, (
        lint.reasons, observation.reason)
    if not expected:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fixed = tfsparse.xnnpack.make_compatible(model)  # the zeros are plain weights, not masks
        fixed_path = _export(fixed, os.path.join(tmp_path, f"{name}_fixed.tflite"))
        assert tfsparse.xnnpack.lint(fixed_path).fires and observe(fixed_path).fired


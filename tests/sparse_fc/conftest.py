"""Small MLPs whose Dense kernels are masked by hand with numpy, and their TFLite conversions."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

IN = 128


def make_mlp(seed=0, sizes=(IN, 64, 32, 10)):
    """A Sequential MLP: ReLU hidden layers, logits out."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((sizes[0],))]
    layers += [keras.layers.Dense(units, activation="relu") for units in sizes[1:-1]]
    layers.append(keras.layers.Dense(sizes[-1]))
    return keras.Sequential(layers)


def mask_blocks(model, block, fraction, *, layers=(0, 1), shift=0, seed=0):
    """Zeroes `fraction` of the blocks of `block` consecutive input rows of each kernel in `layers`.

    A Keras Dense kernel is `[inputs, outputs]`: a block is `block` consecutive
    rows of one column (TFLite's `[outputs, inputs]` 1xB block). `shift` rolls
    the mask by that many rows, so its blocks straddle the aligned ones.
    """
    rng = np.random.default_rng(seed)
    for i in layers:
        kernel = model.layers[i].kernel
        rows, cols = kernel.shape
        keep = np.repeat(rng.random((rows // block, cols)) >= fraction, block, axis=0)
        kernel.assign(kernel.numpy() * np.roll(keep, shift, axis=0))
    return model


def mask_random(model, fraction, *, layers=(0, 1), seed=0):
    """Zeroes `fraction` of the elements of each kernel in `layers`, unstructured."""
    rng = np.random.default_rng(seed)
    for i in layers:
        kernel = model.layers[i].kernel
        kernel.assign(kernel.numpy() * (rng.random(kernel.shape) >= fraction))
    return model


def inputs(n=64, width=IN, seed=1):
    return np.random.default_rng(seed).normal(size=(n, width)).astype("float32")


def convert(model, tmp_path, mode, *, x=None, per_tensor=False):
    """The TFLite converter's own output with EXPERIMENTAL_SPARSITY (no tfsparse re-encoding).

    `mode`: `"float32"`, `"int8"` (full-integer, float32 edges, calibrated on
    `x`) or `"hybrid"` (dynamic-range: Optimize.DEFAULT without data).
    """
    saved = str(tmp_path / f"saved_{mode}_{per_tensor}")
    model.export(saved, format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if mode in ("int8", "hybrid"):
        optimizations.insert(0, tf.lite.Optimize.DEFAULT)
    if mode == "int8":
        converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
        if per_tensor:
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    converter.optimizations = optimizations
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TF's calibrator uses the deprecated tf.lite.Interpreter
        return converter.convert()


class Helpers:
    """The helpers above, as one fixture (test modules cannot import a conftest under importlib mode)."""

    IN = IN
    make_mlp = staticmethod(make_mlp)
    mask_blocks = staticmethod(mask_blocks)
    mask_random = staticmethod(mask_random)
    inputs = staticmethod(inputs)
    convert = staticmethod(convert)


@pytest.fixture(scope="module")
def fc():
    """`fc.make_mlp()`, `fc.mask_blocks(...)`, `fc.mask_random(...)`, `fc.inputs()`, `fc.convert(...)`."""
    return Helpers


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("sparse_fc")

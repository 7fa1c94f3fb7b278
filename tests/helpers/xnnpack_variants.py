"""Keras model variants for the XNNPACK planner, linter and emulator tests.

Each builder returns a small model in one XNNPACK situation: eligible
MobileNet-V1/V2 styles, SAME padding on stride 2, a 1-channel stem.
"""

import keras

import tfsparse
from tfsparse import masks
from tfsparse.model_source import load_model_source
from tfsparse.strategies.gmp import keep_largest

L = keras.layers


def prune_1x1(model, sparsity):
    for weight in tfsparse.select_weights(model, layers=lambda layer: isinstance(layer, L.Conv2D)
                                          and tuple(layer.kernel_size) == (1, 1)):
        masks.attach(weight.variable)
        value = weight.variable.numpy()
        masks.set_mask(weight.variable, keep_largest(value, value.size - round(sparsity * value.size)))
    return model


def mobilenet_v1(size=64, channels=3):
    return load_model_source("models/mobilenet_v1.py:mobilenet_v1", input_shape=(size, size, channels),
                             num_classes=10, width=0.25, blocks=6) if channels == 3 else one_channel_stem(size)


def one_channel_stem(size=64):
    inputs = keras.Input((size, size, 1))
    x = L.ZeroPadding2D(1)(inputs)
    x = L.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(64, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10)(x))


def mobilenet_v2_style(size=64):
    """Residual Adds and 5x5 depthwise, in the eligible form."""
    inputs = keras.Input((size, size, 3))
    x = L.ZeroPadding2D(1)(inputs)
    x = L.Conv2D(16, 3, strides=2, activation="relu6")(x)
    for expand, kernel, stride in ((64, 3, 1), (64, 5, 2), (96, 5, 1)):
        shortcut = x
        y = L.Conv2D(expand, 1, activation="relu6")(x)
        if stride == 2:
            y = L.ZeroPadding2D(kernel // 2)(y)
        y = L.DepthwiseConv2D(kernel, strides=stride, padding="valid" if stride == 2 else "same", activation="relu6")(y)
        y = L.Conv2D(16, 1)(y)
        x = L.Add()([shortcut, y]) if stride == 1 else y
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10)(x))


def same_padding_v1(size=64):
    inputs = keras.Input((size, size, 3))
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2D(64, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10)(x))


def mobilenet_v1_folded_mean():
    """At 32x32 with min_feature_size=1 the last map is 1x1: the converter drops the MEAN."""
    return load_model_source("models/mobilenet_v1.py:mobilenet_v1", input_shape=(32, 32, 3), num_classes=10,
                             width=0.25, min_feature_size=1)


def export_even_if_ineligible(model, path, target, **kwargs):
    """`tfsparse.export` without the xnnpack target's refusal (the linter under test judges the file)."""
    import warnings

    if target == "xnnpack":
        kwargs["allow_ineligible"] = True
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*sparse path will not fire", category=UserWarning)
        return tfsparse.export(model, path, target=target, verify=False, **kwargs)

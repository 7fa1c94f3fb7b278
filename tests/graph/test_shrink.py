"""`tfsparse.graph.shrink`: pruned channels are removed and the outputs do not change."""

import os

import keras
import numpy as np
import pytest
from channel_zeroing import randomize_batch_norm, zero_channels
from subclassed_model import built_subclassed_model

import tfsparse
from tfsparse.graph import plan_shrink, shrink

L = keras.layers


def _check(model, fraction=0.5, seed=0, atol=1e-5):
    """Zeroes channels, shrinks, and checks outputs and sizes; returns the small model."""
    randomize_batch_norm(model, seed)
    removed = zero_channels(model, fraction, seed)
    assert removed, "nothing to prune"
    inputs = [np.random.default_rng(seed).normal(size=(3, *t.shape[1:])).astype("float32")
              for t in keras.tree.flatten(model.inputs)]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    small = shrink(model)
    expected = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(small.predict(inputs, verbose=0), expected, atol=atol, rtol=1e-4)
    assert small.count_params() < model.count_params()
    _, plan, _ = plan_shrink(small)
    assert not plan.removed  # nothing left to remove
    return small


def _rich_cnn():
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    y = L.Conv2D(16, 3, padding="same", name="res_conv")(x)
    y = L.BatchNormalization(name="res_bn")(y)
    x = L.Add(name="res_add")([x, y])  # couples stem and res_conv
    a = L.Conv2D(8, 1, activation="relu", name="branch_a")(x)
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = L.Concatenate(name="cat")([a, b])  # 8 + 32 channels
    se = L.GlobalAveragePooling2D(name="se_pool")(x)
    se = L.Dense(10, activation="relu", name="se_reduce")(se)
    se = L.Dense(40, activation="sigmoid", name="se_expand")(se)
    se = L.Reshape((1, 1, 40), name="se_reshape")(se)
    x = L.Multiply(name="se_scale")([x, se])
    x = L.SeparableConv2D(12, 3, padding="same", depth_multiplier=2, name="sep")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.Conv2DTranspose(10, 3, strides=2, padding="same", name="up_conv")(x)
    x = L.UpSampling2D(name="upsample")(x)
    x = L.Conv2D(6, 3, strides=4, activation="relu", name="down")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dropout(0.2, name="drop")(x)
    x = L.Dense(12, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(5, name="head")(x), name="rich")


def test_rich_cnn_shrinks_with_residual_concat_se_depthwise_separable_transpose_and_flatten():
    model = _rich_cnn()
    small = _check(model)
    for name in ("stem", "res_conv", "branch_a", "sep", "up_conv", "down", "fc"):
        size = "units" if name == "fc" else "filters"
        assert getattr(small.get_layer(name), size) < getattr(model.get_layer(name), size), name
    assert small.get_layer("stem").filters == small.get_layer("res_conv").filters  # coupled by the Add
    assert small.get_layer("se_expand").units == small.get_layer("branch_a").filters + 2 * small.get_layer(
        "stem").filters  # SE output coupled to the concatenation
    assert small.get_layer("head").units == 5 and small.input_shape == model.input_shape


def test_the_input_model_is_not_modified():
    model = _rich_cnn()
    zero_channels(model, 0.5)
    before = [w.copy() for w in model.get_weights()]
    shrink(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_sequential_stays_sequential_and_nested_models_shrink():
    backbone = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(8, 3, name="b_conv"), L.BatchNormalization(),
                                 L.ReLU()], name="backbone")
    inner_in = keras.Input((6, 6, 8))
    inner = keras.Model(inner_in, L.Conv2D(12, 1, activation="relu", name="f_conv")(inner_in), name="functional")
    inputs = keras.Input((8, 8, 3))
    x = inner(backbone(inputs))
    outputs = L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x))
    small = _check(keras.Model(inputs, outputs))
    assert isinstance(small.get_layer("backbone"), keras.Sequential)
    assert small.get_layer("backbone").get_layer("b_conv").filters == 4
    assert small.get_layer("functional").get_layer("f_conv").filters == 6


def test_a_shared_layer_keeps_one_set_of_channels():
    shared = L.Conv2D(8, 3, padding="same", activation="relu", name="shared")
    inputs = keras.Input((8, 8, 3))
    a = shared(inputs)
    b = shared(L.Conv2D(3, 1, name="adapt")(inputs))
    x = L.Concatenate()([a, b])
    small = _check(keras.Model(inputs, L.Dense(2, name="head")(L.Flatten()(x))))
    assert small.get_layer("shared").filters == 4


def test_constants_of_pruned_sigmoid_channels_fold_into_the_next_bias():
    inputs = keras.Input((5, 5, 2))
    x = L.Conv2D(8, 3, padding="same", activation="sigmoid", name="c1")(inputs)  # pruned channels hold 0.5
    x = L.Conv2D(6, 1, use_bias=False, activation="sigmoid", name="c2")(x)  # 1x1 without bias: a bias is added
    x = L.Conv2D(4, 3, padding="valid", name="c3")(x)  # valid padding: every output sees the constant
    x = L.Flatten()(x)
    x = L.Dense(7, activation="sigmoid", name="fc")(x)
    outputs = L.Dense(2, name="head")(x)
    small = _check(keras.Model(inputs, outputs))
    assert small.get_layer("c2").use_bias and small.get_layer("c1").filters == 4
    assert small.get_layer("fc").units == 3


def test_conv1d_conv3d_and_embedding_shrink():
    tokens = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 8, name="embed")(tokens)
    x = L.Conv1D(6, 3, activation="relu", name="c1d")(x)
    x = L.GlobalMaxPooling1D()(x)
    text = keras.Model(tokens, L.Dense(2, name="head")(x))
    ids = np.random.default_rng(0).integers(0, 20, size=(3, 7))
    zero_channels(text, 0.5)
    small = shrink(text)
    np.testing.assert_allclose(small.predict(ids, verbose=0), text.predict(ids, verbose=0), atol=1e-5)
    assert small.get_layer("embed").output_dim == 4 and small.get_layer("c1d").filters == 3
    volume = keras.Input((4, 4, 4, 2))
    y = L.Conv3D(6, 2, activation="relu", name="c3d")(volume)
    small3 = _check(keras.Model(volume, L.Dense(2)(L.GlobalAveragePooling3D()(y))))
    assert small3.get_layer("c3d").filters == 3


def test_blocked_groups_are_left_whole():
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(8, 3, name="c1")(inputs)
    x = L.LayerNormalization(name="ln")(x)  # statistics over the channels: blocked
    x = L.Conv2D(4, 1, name="c2")(x)
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))
    kernel = model.get_layer("c1").kernel.numpy()
    kernel[..., :4] = 0
    model.get_layer("c1").kernel.assign(kernel)
    model.get_layer("c1").bias.assign(np.zeros(8))
    small = shrink(model)
    assert small.get_layer("c1").filters == 8


def test_a_group_of_only_zero_channels_keeps_one():
    inputs = keras.Input((4,))
    x = L.Dense(3, name="hidden")(inputs)
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    model.get_layer("hidden").set_weights([np.zeros((4, 3)), np.zeros(3)])
    small = shrink(model)
    assert small.get_layer("hidden").units == 1
    x = np.ones((2, 4), "float32")
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_shrink_of_a_reloaded_model_saves_loads_and_converts(tmp_path):
    model = _rich_cnn()
    zero_channels(model, 0.5)
    path = str(tmp_path / "masked.keras")
    model.save(path)
    small = shrink(keras.models.load_model(path))
    small_path = str(tmp_path / "small.keras")
    small.save(small_path)
    again = keras.models.load_model(small_path)
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    result = tfsparse.export(again, str(tmp_path / "small.tflite"), target="dense", representative_data=x)
    assert result.verification.passed and os.path.getsize(result.path) > 0


def test_a_subclassed_model_is_refused_with_guidance():
    with pytest.raises(ValueError, match="Weight-level strategies"):
        shrink(built_subclassed_model())


def test_tfsparse_shrink_is_the_graph_shrink_and_finalize_applies_it():
    assert tfsparse.shrink is tfsparse.graph.shrink
    model = _rich_cnn()
    zero_channels(model, 0.5)
    final = tfsparse.finalize(model)
    assert final.get_layer("stem").filters == shrink(model).get_layer("stem").filters < 16
    assert final.count_params() < model.count_params()
    assert tfsparse.finalize(model, shrink=False).get_layer("stem").filters == 16

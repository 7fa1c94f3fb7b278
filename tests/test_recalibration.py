"""`tfsparse.recalibrate`: BatchNormalization statistics re-estimated from data, nothing else changed."""

import keras
import numpy as np
import pytest

import tfsparse

L = keras.layers


def _model():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="conv")(inputs)
    x = L.BatchNormalization(momentum=0.99, name="bn")(x)
    x = L.Dropout(0.5, name="drop")(x)
    x = L.BatchNormalization(name="bn2")(L.Conv2D(4, 1, name="pw")(x))
    return keras.Model(inputs, L.GlobalAveragePooling2D()(x))


def _data(n=96, seed=0):
    return np.random.default_rng(seed).normal(2.0, 3.0, (n, 8, 8, 3)).astype("float32")


def test_moving_statistics_become_the_average_batch_statistics():
    model = _model()
    x = _data()
    assert tfsparse.recalibrate(model, x, batch_size=32) == 3
    features = keras.Model(model.input, model.get_layer("conv").output)(x).numpy()
    batches = features.reshape(3, 32, -1, 4)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), batches.mean(axis=(1, 2)).mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), batches.var(axis=(1, 2)).mean(0), rtol=1e-3, atol=1e-3)
    normalized = keras.Model(model.input, model.get_layer("bn").output)(x).numpy()
    assert abs(normalized.mean()) < 0.05 and abs(normalized.std() - 1) < 0.05


def test_weights_flags_and_dropout_are_left_as_they_were():
    model = _model()
    model.get_layer("bn2").trainable = False  # a frozen layer is recalibrated too, and stays frozen
    kernels = [model.get_layer(n).kernel.numpy().copy() for n in ("conv", "pw")]
    gammas = model.get_layer("bn").gamma.numpy().copy()
    tfsparse.recalibrate(model, _data(), batch_size=48)
    assert model.get_layer("bn").momentum == 0.99 and model.get_layer("bn2").trainable is False
    assert model.get_layer("drop").rate == 0.5 and model.get_layer("bn").trainable is True
    for name, kernel in zip(("conv", "pw"), kernels):
        np.testing.assert_array_equal(model.get_layer(name).kernel.numpy(), kernel)
    np.testing.assert_array_equal(model.get_layer("bn").gamma.numpy(), gammas)
    assert not np.allclose(model.get_layer("bn2").moving_mean.numpy(), 0.0)


def test_dropout_does_not_bias_the_statistics():
    """With dropout off, recalibrating twice on the same data gives the same statistics."""
    model = _model()
    tfsparse.recalibrate(model, _data(), batch_size=96)
    first = model.get_layer("bn2").moving_variance.numpy().copy()
    tfsparse.recalibrate(model, _data(), batch_size=96)
    np.testing.assert_allclose(model.get_layer("bn2").moving_variance.numpy(), first, rtol=1e-5)


def test_an_iterable_of_batches_and_steps():
    import tensorflow as tf

    model = _model()
    x = _data(64)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(64))).batch(16)
    assert tfsparse.recalibrate(model, dataset, steps=2) == 2


def test_nested_models_are_recalibrated():
    inner = _model()
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, L.Dense(2)(inner(inputs)))
    tfsparse.recalibrate(outer, _data())
    assert not np.allclose(inner.get_layer("bn").moving_mean.numpy(), 0.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"data": np.zeros((0, 8, 8, 3), "float32")}, "Expected at least one batch"),
    ({"data": np.full((4, 8, 8, 3), np.nan, "float32")}, "Expected finite values"),
    ({"data": np.zeros((4, 8, 8, 3), "float32"), "batch_size": 0}, "argument `batch_size`"),
    ({"data": np.zeros((4, 8, 8, 3), "float32"), "steps": -1}, "argument `steps`"),
])
def test_bad_input_is_refused_with_the_argument_named(kwargs, match):
    model = _model()
    before = model.get_layer("bn").moving_mean.numpy().copy()
    with pytest.raises(ValueError, match=match):
        tfsparse.recalibrate(model, **kwargs)
    np.testing.assert_array_equal(model.get_layer("bn").moving_mean.numpy(), before)


def test_a_model_without_batch_normalization_is_refused():
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    with pytest.raises(ValueError, match="has none"):
        tfsparse.recalibrate(model, np.zeros((4, 4), "float32"))

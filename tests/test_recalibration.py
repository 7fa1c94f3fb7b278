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


def _pruned_fit(callbacks, validation=True, epochs=2):
    model = _model()
    model.compile(keras.optimizers.SGD(0.0), "mse")  # no weight moves: only the masks and the statistics change
    x = _data(64)
    y = np.zeros((64, 4), "float32")
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.75, begin_step=0, end_step=4, frequency=4, layers="pw")
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[gmp, *callbacks],
              validation_data=(x, y) if validation else None)
    return model, x


def _statistics_error(model, x):
    """|moving mean - the exact average of batch means| of bn2 (after the pruned pw)."""
    features = keras.Model(model.input, model.get_layer("pw").output)(x).numpy()
    expected = features.reshape(4, 16, -1, 4).mean(axis=(1, 2)).mean(0)
    return np.abs(model.get_layer("bn2").moving_mean.numpy() - expected).max()


def test_callback_recalibrates_when_training_ends():
    plain, x = _pruned_fit([])
    assert _statistics_error(plain, x) > 1e-2  # momentum 0.99: the moving statistics lag the masks
    callback = tfsparse.RecalibrateBatchNorm(x, batch_size=16)
    model, _ = _pruned_fit([callback], validation=False)
    assert callback.count == 1
    assert _statistics_error(model, x) < 1e-4


def test_callback_recalibrates_before_validation_only_after_masks_change():
    x = _data(64)
    callback = tfsparse.RecalibrateBatchNorm(x, batch_size=16)
    _pruned_fit([callback], epochs=3)  # masks change in epoch 1 (steps 0 and 4), not in epochs 2 and 3
    assert callback.count == 2  # before the first validation, and at the end


def test_callback_recalibrates_the_student_of_a_distiller():
    teacher = _model()
    student = keras.models.clone_model(teacher)
    distiller = tfsparse.Distiller(student, teacher, alpha=1.0)
    distiller.compile(keras.optimizers.SGD(0.0))
    x = _data(64)
    callback = tfsparse.RecalibrateBatchNorm(x, batch_size=16)
    distiller.fit(x, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert callback.count == 1
    assert _statistics_error(student, x) < 1e-4
    assert np.allclose(teacher.get_layer("bn2").moving_mean.numpy(), 0.0)  # the teacher is left alone

import keras
import numpy as np
import pytest

from tfsparse import masks
from tfsparse.deploy import finalize, list_finalizers, register_finalizer, unregister_finalizer


def _masked_mlp():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, kernel_constraint=keras.constraints.NonNeg()),
                              keras.layers.Dense(2)])
    for layer in model.layers:
        masks.attach(layer.kernel)
        masks.set_mask(layer.kernel, np.random.default_rng(0).random(layer.kernel.shape) > 0.5)
    return model


def _snapshot(model):
    return [v.numpy().copy() for v in model.weights], [v.constraint for v in model.weights]


@pytest.fixture
def clean_registry():
    before = list_finalizers()
    yield
    for name in list_finalizers():
        if name not in before:
            unregister_finalizer(name)


def test_finalize_removes_masks_on_copy_and_keeps_original():
    model = _masked_mlp()
    weights, constraints = _snapshot(model)
    copy = finalize(model)
    assert copy is not model
    assert not any(masks.has_mask(v) for v in copy.weights)
    assert all(masks.has_mask(layer.kernel) for layer in model.layers)
    after_weights, after_constraints = _snapshot(model)
    assert all(a is b for a, b in zip(constraints, after_constraints))
    for before, after, copied in zip(weights, after_weights, copy.get_weights()):
        np.testing.assert_array_equal(before, after)
        np.testing.assert_array_equal(before, copied)


def test_finalize_keeps_inner_constraint_and_separate_variables():
    model = _masked_mlp()
    copy = finalize(model)
    assert isinstance(copy.layers[0].kernel.constraint, keras.constraints.NonNeg)
    copy.layers[0].kernel.assign(np.ones(copy.layers[0].kernel.shape))
    assert not np.all(model.layers[0].kernel.numpy() == 1.0)


def test_finalize_functional_same_outputs():
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(3)(keras.layers.Dense(4, activation="tanh")(inputs))
    model = keras.Model(inputs, outputs)
    masks.attach(model.layers[1].kernel)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(finalize(model)(x), model(x), rtol=0, atol=0)


def test_finalize_subclassed_model(two_layer):
    model = two_layer
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    masks.attach(model.hidden.kernel)
    copy = finalize(model)
    assert type(copy) is type(model) and copy.units == 16
    assert not masks.has_mask(copy.hidden.kernel) and masks.has_mask(model.hidden.kernel)
    np.testing.assert_allclose(copy(x), model(x), rtol=0, atol=0)


def test_finalize_subclassed_without_config_names_the_fix():
    class NoConfig(keras.Model):
        def __init__(self, units):  # a required argument get_config does not record
            super().__init__()
            self.dense = keras.layers.Dense(units)

        def call(self, x):
            return self.dense(x)

    model = NoConfig(2)
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="get_config"):
        finalize(model)


@pytest.mark.parametrize("bad", [object(), "model.keras", keras.layers.Dense(2)])
def test_finalize_rejects_non_keras_model(bad):
    with pytest.raises(ValueError, match=r"Invalid value received for argument `model`. Expected a `keras.Model`"):
        finalize(bad)


def test_finalize_rejects_unbuilt_model():
    model = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="Expected a built model"):
        finalize(model)


def test_finalizers_run_in_registration_order_on_the_copy(clean_registry):
    calls = []

    def first(model):
        calls.append(("first", model))
        return model

    def second(model):
        calls.append(("second", model))
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)], name="replaced")

    register_finalizer(first, name="test_first")
    register_finalizer(second, name="test_second")
    model = _masked_mlp()
    result = finalize(model)
    assert [name for name, _ in calls] == ["first", "second"]
    assert calls[0][1] is not model
    assert result.name == "replaced"


def test_register_finalizer_refuses_a_different_function_under_a_taken_name(clean_registry):
    register_finalizer(lambda m: m, name="test_taken")
    register_finalizer(list_finalizers, name="test_same")
    register_finalizer(list_finalizers, name="test_same")  # same function again: fine
    with pytest.raises(ValueError, match="already registered"):
        register_finalizer(len, name="test_taken")
    with pytest.raises(ValueError, match="Expected a callable"):
        register_finalizer(3, name="test_bad")


def test_finalizer_returning_non_model_is_reported(clean_registry):
    register_finalizer(lambda m: None, name="test_returns_none")
    with pytest.raises(ValueError, match="test_returns_none.*must return a keras.Model"):
        finalize(_masked_mlp())

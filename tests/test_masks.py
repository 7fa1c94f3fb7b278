import gc

import keras
import numpy as np
import pytest

from tfsparse import masks


def _dense(units=4, inputs=3, constraint=None):
    layer = keras.layers.Dense(units, kernel_constraint=constraint)
    layer.build((None, inputs))
    return layer


def test_attach_starts_from_zero_pattern():
    layer = _dense()
    kernel = layer.kernel.numpy()
    kernel[0] = 0.0
    layer.kernel.assign(kernel)
    mask = masks.attach(layer.kernel)
    np.testing.assert_array_equal(mask.numpy(), (kernel != 0).astype("float32"))
    assert not mask.trainable


def test_attach_all_zero_weight_gets_ones():
    layer = keras.layers.Dense(2, kernel_initializer="zeros")
    layer.build((None, 2))
    assert masks.attach(layer.kernel).numpy().all()


def test_attach_is_idempotent():
    layer = _dense()
    assert masks.attach(layer.kernel) is masks.attach(layer.kernel)


def test_set_mask_zeroes_weights_and_constraint_enforces():
    layer = _dense()
    masks.attach(layer.kernel)
    pattern = np.eye(3, 4)
    masks.set_mask(layer.kernel, pattern)
    assert np.count_nonzero(layer.kernel.numpy()) == 3
    constrained = layer.kernel.constraint(keras.ops.ones((3, 4)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(constrained), pattern)


def test_inner_constraint_is_kept_and_restored():
    inner = keras.constraints.NonNeg()
    layer = _dense(constraint=inner)
    masks.attach(layer.kernel)
    masks.set_mask(layer.kernel, np.ones((3, 4)))
    out = keras.ops.convert_to_numpy(layer.kernel.constraint(-keras.ops.ones((3, 4))))
    assert (out == 0).all()  # NonNeg applied before the mask
    masks.detach(layer.kernel)
    assert layer.kernel.constraint is inner


def test_set_mask_errors_name_the_problem():
    layer = _dense()
    with pytest.raises(ValueError, match="masks.attach"):
        masks.set_mask(layer.kernel, np.ones((3, 4)))
    masks.attach(layer.kernel)
    with pytest.raises(ValueError, match=r"Expected shape \(3, 4\)"):
        masks.set_mask(layer.kernel, np.ones((4, 3)))


def test_detach_all_counts_and_removes():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    for layer in model.layers:
        masks.attach(layer.kernel)
    assert masks.detach_all(model) == 2
    assert not any(masks.has_mask(v) for v in model.weights)


def test_mask_constraint_is_not_serializable():
    layer = _dense()
    masks.attach(layer.kernel)
    with pytest.raises(TypeError, match="finalize"):
        layer.kernel.constraint.get_config()
    # The layer config never contains the mask: saved models load without tfsparse.
    assert layer.get_config()["kernel_constraint"] is None


def test_sparsity():
    assert masks.sparsity(np.array([0.0, 1.0, 0.0, 2.0])) == 0.5
    assert masks.sparsity(np.zeros((0,))) == 0.0


class _Owner:
    """Stands for a strategy."""


def test_attach_with_owner_claims_and_the_last_claim_wins():
    layer = _dense()
    first, second = _Owner(), _Owner()
    mask = masks.attach(layer.kernel, owner=first)
    assert masks.owner_of(layer.kernel) is first
    assert masks.attach(layer.kernel) is mask and masks.owner_of(layer.kernel) is first  # owner=None keeps it
    assert masks.attach(layer.kernel, owner=second) is mask and masks.owner_of(layer.kernel) is second
    del second  # a claim does not keep its owner alive
    gc.collect()
    assert masks.owner_of(layer.kernel) is None
    assert masks.owner_of(_dense().kernel) is None
    with pytest.raises(ValueError, match="Expected a weight with a tfsparse mask"):
        masks.claim(_dense().kernel, first)

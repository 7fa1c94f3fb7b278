"""`tfsparse.oneshot.prune`: SparseGPT's layer-wise reconstruction against magnitude, on Dense and 1x1 convolutions."""

import keras
import numpy as np
import pytest
from subclassed_model import built_subclassed_model

import tfsparse
from tfsparse import masks, oneshot
from tfsparse.oneshot.algorithms import sparsegpt

L = keras.layers


def _inputs(n=512, d=32, seed=0):
    """Correlated features of unequal scales, like a network's activations: a shared factor plus noise, rescaled."""
    rng = np.random.default_rng(seed)
    scales = np.random.default_rng(100).lognormal(0.0, 1.0, d)
    return ((rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(n, 1))) * scales).astype("float32")


def _dense(d=32, units=8, **kwargs):
    return keras.Sequential([keras.Input((d,)), L.Dense(units, name="fc", **kwargs)])


def _hessian(x):
    x = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
    return x.T @ x / len(x)


def _reference(w, h, sparsity, block_size, damping=0.01):
    """SparseGPT written with explicit inverses of the remaining columns' Hessian (no Cholesky factor)."""
    w = np.array(w, np.float64)
    n = len(h)
    h = h + damping * np.mean(np.diag(h)) * np.eye(n)
    inverse = [np.linalg.inv(h[c:, c:]) for c in range(n)]  # row 0 of inverse[c]: OBS update when removing c
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        scores = np.stack([w[:, c] ** 2 / inverse[c][0, 0] for c in range(start, stop)], axis=1)
        quota = round(sparsity * stop) - round(sparsity * start)
        pruned = np.zeros(scores.shape, bool)
        np.put_along_axis(pruned, np.argsort(scores, axis=1, kind="stable")[:, :quota], True, axis=1)
        for c in range(start, stop):
            error = np.where(pruned[:, c - start], w[:, c], 0.0) / inverse[c][0, 0]
            w[:, c:] -= np.outer(error, inverse[c][0])
            w[pruned[:, c - start], c] = 0.0
    return w


@pytest.mark.parametrize("block_size", [128, 5])
def test_sparsegpt_matches_the_obs_updates_written_with_explicit_inverses(block_size):
    x = _inputs(256, 16)
    w = np.random.default_rng(1).normal(size=(6, 16))
    h = _hessian(x)
    result = sparsegpt(w, h, 0.6, block_size=block_size)
    np.testing.assert_allclose(result, _reference(w, h, 0.6, block_size), rtol=1e-7, atol=1e-9)
    assert ((result == 0).sum(axis=1) == round(0.6 * 16)).all()


@pytest.mark.parametrize("sparsity", [0.5, 0.75])
def test_sparsegpt_reconstructs_the_outputs_better_than_magnitude(sparsity):
    x = _inputs()
    errors = {}
    for method in oneshot.METHODS:
        keras.utils.set_random_seed(0)  # the same dense kernel for both
        model = _dense()
        kernel = model.get_layer("fc").kernel.numpy().astype(np.float64)
        report = oneshot.prune(model, x, sparsity, method=method, batch_size=100)
        pruned = model.get_layer("fc").kernel.numpy().astype(np.float64)
        direct = np.linalg.norm(x @ kernel - x @ pruned) / np.linalg.norm(x @ kernel)
        assert report["fc"].error == pytest.approx(direct, rel=1e-5)
        assert report.method == method and report.samples == 512 and report.target == sparsity
        errors[method] = direct
    assert errors["sparsegpt"] < 0.6 * errors["magnitude"], errors


def test_exact_zeros_and_masks_that_fit_and_a_later_gmp_keep():
    x = _inputs(256)
    y = np.random.default_rng(2).normal(size=(256, 8)).astype("float32")
    model = _dense()
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, verbose=0)  # traced before pruning: prune must make fit retrace
    report = oneshot.prune(model, x, 0.75)
    kernel = model.get_layer("fc").kernel
    zeros = kernel.numpy() == 0
    assert (zeros.sum(axis=0) == 24).all() and report["fc"].sparsity == 0.75  # every output unit: 24 of 32 inputs
    np.testing.assert_array_equal(masks.get_mask(kernel).numpy(), ~zeros)
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(kernel.numpy() == 0, zeros)
    assert not np.allclose(kernel.numpy()[~zeros], 0.0)
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.75, initial_sparsity=0.75, end_step=4, frequency=2)
    before = kernel.numpy().copy()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[gmp])
    assert gmp.history and gmp.history[-1][1] == 0.75
    np.testing.assert_array_equal(kernel.numpy() == 0, zeros)
    assert not np.array_equal(kernel.numpy(), before)  # it trained


def test_magnitude_reaches_the_layer_target_and_existing_masked_zeros_stay():
    model = _dense()
    kernel = model.get_layer("fc").kernel
    masks.attach(kernel)
    kept = np.ones(kernel.shape)
    kept[:3] = 0.0  # an earlier mask: three inputs cut
    masks.set_mask(kernel, kept)
    oneshot.prune(model, _inputs(128), 0.5, method="magnitude")
    assert np.count_nonzero(kernel.numpy()) == 128 and (kernel.numpy()[:3] == 0).all()
    model = _dense()
    masks.attach(model.layers[0].kernel)
    masks.set_mask(model.layers[0].kernel, kept)
    oneshot.prune(model, _inputs(128), 0.5)
    assert (model.layers[0].kernel.numpy()[:3] == 0).all()
    assert ((model.layers[0].kernel.numpy() == 0).sum(axis=0) == 16).all()


@pytest.mark.parametrize("strides", [1, 2])
def test_a_1x1_convolution_is_pruned_as_a_dense_layer_over_its_pixels(strides):
    images = _inputs(6 * 25, 8).reshape(6, 5, 5, 8)
    conv = keras.Sequential([keras.Input((5, 5, 8)), L.Conv2D(6, 1, strides=strides, name="pw")])
    kernel = conv.get_layer("pw").kernel.numpy()
    pixels = images[:, ::strides, ::strides].reshape(-1, 8)
    dense = _dense(8, 6)
    dense.get_layer("fc").kernel.assign(kernel.reshape(8, 6))
    conv_report = oneshot.prune(conv, images, 0.5, batch_size=4)
    dense_report = oneshot.prune(dense, pixels, 0.5)
    np.testing.assert_allclose(conv.get_layer("pw").kernel.numpy().reshape(8, 6), dense.get_layer("fc").kernel.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert conv_report["pw"].error == pytest.approx(dense_report["fc"].error, rel=1e-5)
    assert conv_report["pw"].shape == (1, 1, 8, 6)


def test_later_layers_see_the_pruned_earlier_layers():
    x = _inputs(256, 16)
    model = keras.Sequential([keras.Input((16,)), L.Dense(12, activation="relu", name="a"), L.Dense(4, name="b")])
    (ka, ba), kb = [v.numpy().astype(np.float64) for v in model.get_layer("a").weights], model.get_layer("b").kernel
    kb = kb.numpy().astype(np.float64)
    oneshot.prune(model, x, 0.5, block_size=4)
    pruned_a = model.get_layer("a").kernel.numpy()
    np.testing.assert_allclose(pruned_a.T, sparsegpt(ka.T, _hessian(x), 0.5, block_size=4), rtol=1e-5, atol=1e-6)
    expected_b = sparsegpt(kb.T, _hessian(np.maximum(x @ pruned_a + ba, 0.0)), 0.5, block_size=4).T
    np.testing.assert_allclose(model.get_layer("b").kernel.numpy(), expected_b, rtol=1e-4, atol=1e-5)
    from_dense_a = sparsegpt(kb.T, _hessian(np.maximum(x @ ka + ba, 0.0)), 0.5, block_size=4).T
    assert not np.allclose(from_dense_a, expected_b, rtol=1e-2, atol=1e-3)  # the order matters, so the check bites


def test_nested_models_and_shared_layers():
    """A Dense inside a nested Sequential, and a Dense called on two tensors (its H pools both calls)."""
    inner = keras.Sequential([keras.Input((16,)), L.Dense(16, name="inner_fc")], name="inner")
    inputs = keras.Input((16,))
    shared = L.Dense(3, name="shared")
    hidden = inner(inputs)
    model = keras.Model(inputs, L.Concatenate()([shared(inputs), shared(hidden)]))
    x = _inputs(128, 16)
    k_inner, b_inner = [v.numpy().astype(np.float64) for v in inner.get_layer("inner_fc").weights]
    k_shared = shared.kernel.numpy().astype(np.float64)
    report = oneshot.prune(model, x, 0.5, layers=["inner_fc", "shared"])
    assert [r.layer for r in report.layers] == ["inner_fc", "shared"]  # call order: inner_fc feeds shared's 2nd call
    np.testing.assert_allclose(inner.get_layer("inner_fc").kernel.numpy().T,
                               sparsegpt(k_inner.T, _hessian(x), 0.5), rtol=1e-5, atol=1e-6)
    hidden_pruned = x @ inner.get_layer("inner_fc").kernel.numpy() + b_inner
    pooled = (_hessian(x) + _hessian(hidden_pruned)) / 2
    np.testing.assert_allclose(shared.kernel.numpy().T, sparsegpt(k_shared.T, pooled, 0.5), rtol=1e-4, atol=1e-5)


def test_arrays_datasets_and_generators_calibrate_alike():
    import tensorflow as tf

    x = _inputs(96, 16)
    results = []
    for data in (x, tf.data.Dataset.from_tensor_slices((x, np.zeros(96))).batch(32), (b for b in np.split(x, 3))):
        keras.utils.set_random_seed(0)
        model = _dense(16, 4)
        report = oneshot.prune(model, data, 0.5)
        results.append(model.get_layer("fc").kernel.numpy())
        assert report.samples == 96
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-5, atol=1e-6)


def test_sparsegpt_keeps_a_trained_model_closer_to_the_dense_one():
    def data(seed, n):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, 16)) + 1.5 * rng.normal(size=(n, 1))
        labels = (z @ np.random.default_rng(101).normal(size=(16, 4))).argmax(1).astype("int32")
        return (z * np.random.default_rng(100).lognormal(0.0, 1.0, 16)).astype("float32"), labels

    x, y = data(0, 1024)
    x_test, y_test = data(1, 512)
    model = keras.Sequential([keras.Input((16,)), L.Dense(32, activation="relu", name="h1"),
                              L.Dense(32, activation="relu", name="h2"), L.Dense(4, name="out")])
    rng = np.random.default_rng(0)  # NumPy's Glorot-uniform kernels, no shuffling: the same training on every backend
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("float32") * np.sqrt(6 / sum(w.shape)) if w.ndim == 2
                       else np.zeros(w.shape, "float32") for w in model.get_weights()])
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=10, verbose=0, shuffle=False)
    dense_logits = model.predict(x_test, verbose=0)
    dense_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    assert dense_accuracy > 0.8
    trained = model.get_weights()
    logit_error, accuracy = {}, {}
    for method in oneshot.METHODS:
        model.set_weights(trained)
        masks.detach_all(model)
        oneshot.prune(model, x[:256], 0.75, method=method)
        logits = model.predict(x_test, verbose=0)
        logit_error[method] = np.linalg.norm(logits - dense_logits) / np.linalg.norm(dense_logits)
        accuracy[method] = model.evaluate(x_test, y_test, verbose=0)[1]
    assert logit_error["sparsegpt"] < 0.75 * logit_error["magnitude"], logit_error
    assert dense_accuracy - accuracy["sparsegpt"] < dense_accuracy - accuracy["magnitude"] - 0.03, accuracy


def test_only_the_xnnpack_convolutions_with_the_policy():
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(inputs))
    x = L.Conv2D(16, 1, name="pw")(x)
    model = keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))
    report = oneshot.prune(model, np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32"), 0.75,
                           policy="xnnpack")
    assert [r.layer for r in report.layers] == ["pw"] and not masks.has_mask(model.get_layer("head").kernel)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pytest.warns re-raises Keras' own, filtered by module
def test_unsupported_weights_are_skipped_with_a_warning_or_refused_when_selected():
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, name="conv3")(inputs)
    model = keras.Model(inputs, L.Dense(2, name="head")(L.Flatten()(x)))
    images = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
    conv_kernel = model.get_layer("conv3").kernel.numpy().copy()
    with pytest.warns(UserWarning, match=r"conv3/kernel \(a 3x3 convolution"):
        report = oneshot.prune(model, images, 0.5)
    assert [r.layer for r in report.layers] == ["head"]
    np.testing.assert_array_equal(model.get_layer("conv3").kernel.numpy(), conv_kernel)
    assert not masks.has_mask(model.get_layer("conv3").kernel)
    with pytest.raises(ValueError, match="argument `layers`.*conv3/kernel"):
        oneshot.prune(model, images, 0.5, layers=["conv3", "head"])


def _nan_after_first_layer():
    inputs = keras.Input((8,))
    x = L.Lambda(lambda t: t * np.inf)(L.Dense(8, name="a")(inputs))
    return keras.Model(inputs, L.Dense(2, name="b")(x))


def test_a_failure_restores_every_kernel():
    model = _nan_after_first_layer()
    before = model.get_layer("a").kernel.numpy().copy()
    with pytest.raises(ValueError, match=r"argument `data`.*inputs of layer 'b'"):
        oneshot.prune(model, _inputs(64, 8), 0.5)
    np.testing.assert_array_equal(model.get_layer("a").kernel.numpy(), before)
    assert not masks.has_mask(model.get_layer("a").kernel)


@pytest.mark.parametrize("kwargs, match", [
    ({"sparsity": 1.5}, r"argument `sparsity`. Expected a float in \(0, 1\). Received: sparsity=1.5"),
    ({"sparsity": 0.0}, "argument `sparsity`"),
    ({"method": "obs"}, "argument `method`"),
    ({"damping": -0.1}, "argument `damping`"),
    ({"block_size": 0}, "argument `block_size`"),
    ({"batch_size": 0}, "argument `batch_size`"),
    ({"policy": "arm"}, "argument `policy`"),
    ({"data": np.zeros((0, 32), "float32")}, "argument `data`. Expected at least one calibration sample"),
    ({"data": []}, "argument `data`"),
    ({"data": np.full((4, 32), np.nan, "float32")}, "argument `data`. Expected finite values"),
    ({"data": iter([np.full((4, 32), np.inf, "float32")])}, "argument `data`. Expected finite values"),
    ({"layers": "nothing"}, "argument `layers`"),
])
def test_bad_input_is_refused_with_the_argument_named(kwargs, match):
    model = _dense()
    before = model.get_layer("fc").kernel.numpy().copy()
    arguments = {"data": _inputs(16), "sparsity": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        oneshot.prune(model, arguments.pop("data"), arguments.pop("sparsity"), **arguments)
    np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(), before)
    assert not masks.has_mask(model.get_layer("fc").kernel)


def test_unsupported_only_and_subclassed_models_are_refused():
    model = keras.Sequential([keras.Input((6, 6, 3)), L.DepthwiseConv2D(3, name="dw")])
    with pytest.raises(ValueError, match=r"argument `model`.*dw/kernel \(a DepthwiseConv2D"):
        oneshot.prune(model, np.zeros((4, 6, 6, 3), "float32"), 0.5)
    with pytest.raises(ValueError, match="argument `layers`.*none is selected"):
        oneshot.prune(model, np.zeros((4, 6, 6, 3), "float32"), 0.5, layers="dw")
    with pytest.raises(ValueError, match="argument `model`. Expected a Sequential or Functional model"):
        oneshot.prune(built_subclassed_model(), np.zeros((4, 3), "float32"), 0.5)

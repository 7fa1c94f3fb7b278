"""Channel importance criteria: what they measure, on planted weights."""

import logging

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.graph import importance

L = keras.layers


def _conv_model(filters=6, bn=True, name="conv"):
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(filters, 3, padding="same", name=name)(inputs)
    if bn:
        x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU()(x)
    outputs = L.Dense(4, name="head")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def _group_of(model, layer_name):
    (group,) = [g for g in tfsparse.graph.trace(model).prunable() if layer_name in g.sources]
    return group


def _residual_model():
    inputs = keras.Input((6, 6, 2))
    a = L.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(4, 1, name="b")(inputs)
    x = L.Add(name="add")([a, b])
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    outputs = L.Dense(3, name="head")(L.GlobalAveragePooling2D()(y))
    return keras.Model(inputs, outputs)


def test_l1_on_a_conv_equals_numpy_filter_norms():
    model = _conv_model()
    conv = model.get_layer("conv")
    conv.bias.assign(np.full(6, 100.0, "float32"))  # biases and BN parameters are not part of l1
    expected = np.abs(conv.kernel.numpy()).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(importance.l1(_group_of(model, "conv")), expected, rtol=1e-6)


def test_l1_sums_coupled_layers_and_depthwise_positions():
    model = _residual_model()
    group = _group_of(model, "a")
    assert set(group.sources) == {"a", "b"}
    a, b, dw = (model.get_layer(n).kernel.numpy() for n in ("a", "b", "dw"))
    # dw kernel (3, 3, 4, 2): input channel c makes outputs 2c and 2c + 1, both scored for c
    expected = np.abs(a).sum(axis=(0, 1, 2)) + np.abs(b).sum(axis=(0, 1, 2)) + np.abs(dw).sum(axis=(0, 1, 3))
    np.testing.assert_allclose(importance.l1(group), expected, rtol=1e-6)


def test_bn_gamma_ranks_by_absolute_gamma():
    model = _conv_model()
    gamma = np.array([0.3, -2.0, 0.01, 1.0, -0.5, 0.2], "float32")
    model.get_layer("bn").gamma.assign(gamma)
    scores = importance.bn_gamma(_group_of(model, "conv"))
    np.testing.assert_allclose(scores, np.abs(gamma), rtol=1e-6)
    assert np.argsort(scores).tolist() == np.argsort(np.abs(gamma)).tolist()


def test_bn_gamma_without_batch_norm_falls_back_to_l1_with_a_warning(caplog):
    model = _conv_model(bn=False)
    group = _group_of(model, "conv")
    with caplog.at_level(logging.WARNING):
        scores = importance.BNGamma()(group)
    np.testing.assert_allclose(scores, importance.l1(group))
    assert any("no BatchNormalization gamma" in record.getMessage() for record in caplog.records)


def _plant_weak_channel(model, channel):
    """Channel `channel` of `conv` gets tiny filters, gamma and head weights: it barely matters."""
    conv, bn, head = model.get_layer("conv"), model.get_layer("bn"), model.get_layer("head")
    kernel = conv.kernel.numpy()
    kernel[..., channel] *= 1e-3
    conv.kernel.assign(kernel)
    gamma = np.ones(conv.filters, "float32")
    gamma[channel] = 1e-3
    bn.gamma.assign(gamma)
    head_kernel = head.kernel.numpy()
    head_kernel[channel] *= 1e-3
    head.kernel.assign(head_kernel)


@pytest.mark.parametrize("name", ["l1", "bn_gamma", "taylor"])
def test_criteria_rank_a_planted_weak_channel_lowest(name):
    model = _conv_model(filters=8)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 4, size=32).astype("int32")
    _plant_weak_channel(model, 5)
    scores = importance.get_criterion(name)(_group_of(model, "conv"), model=model, data=(x, y))
    assert scores.shape == (8,) and int(np.argmin(scores)) == 5


def _loss(model, x, y):
    return float(model.evaluate(x, y, batch_size=len(x), verbose=0))


def test_taylor_separates_a_channel_that_matters_from_one_that_does_not():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    hidden = L.Dense(3, activation="tanh", name="hidden")(inputs)
    model = keras.Model(inputs, L.Dense(1, name="head")(hidden))
    model.compile(loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(64, 1)).astype("float32")
    hidden_layer, head = model.get_layer("hidden"), model.get_layer("head")
    kernel = hidden_layer.kernel.numpy()
    kernel[:, 1] = kernel[:, 0] * 3  # unit 1: the largest filter ...
    hidden_layer.kernel.assign(kernel)
    head.kernel.assign(np.array([[2.0], [0.0], [0.5]], "float32"))  # ... but nothing reads it
    group = _group_of(model, "hidden")

    scores = importance.taylor(group, model=model, data=(x, y))
    assert scores[1] == 0.0 and scores[0] > 0 and scores[2] > 0
    assert int(np.argmax(importance.l1(group))) == 1  # magnitude alone keeps the useless unit

    def loss_without(unit):
        saved = [w.copy() for w in hidden_layer.get_weights()]
        pruned = [w.copy() for w in saved]
        pruned[0][:, unit], pruned[1][unit] = 0.0, 0.0
        hidden_layer.set_weights(pruned)
        value = _loss(model, x, y)
        hidden_layer.set_weights(saved)
        return value

    base = _loss(model, x, y)
    assert loss_without(1) == pytest.approx(base, abs=1e-6)
    assert abs(loss_without(0) - base) > 1e-3  # unit 0 matters, and taylor scores it above unit 1


def test_taylor_accepts_arrays_batches_and_datasets_alike():
    import tensorflow as tf

    model = _conv_model(filters=4)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 4, size=20).astype("int32")
    group = _group_of(model, "conv")
    from_arrays = importance.Taylor(batch_size=8)(group, model=model, data=(x, y))
    from_list = importance.taylor(group, model=model, data=[(x[:8], y[:8]), (x[8:16], y[8:16]), (x[16:], y[16:])])
    from_dataset = importance.taylor(group, model=model, data=tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    np.testing.assert_allclose(from_list, from_arrays, rtol=1e-5)
    np.testing.assert_allclose(from_dataset, from_arrays, rtol=1e-5)
    explicit = importance.Taylor(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), batch_size=8)
    np.testing.assert_allclose(explicit(group, model=model, data=(x, y)), from_arrays, rtol=1e-5)


def test_taylor_scores_many_groups_in_one_pass():
    model = _residual_model()
    model.compile(loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 2)).astype("float32")
    y = np.zeros((8, 3), "float32")
    groups = tfsparse.graph.trace(model).prunable()
    together = importance.taylor.score(groups, model=model, data=(x, y))
    for group, scores in zip(groups, together):
        np.testing.assert_allclose(scores, importance.taylor(group, model=model, data=(x, y)), rtol=1e-6)


def test_taylor_needs_model_data_and_a_loss():
    model = _conv_model(filters=4)
    group = _group_of(model, "conv")
    data = (np.zeros((2, 6, 6, 3), "float32"), np.zeros(2, "int32"))
    with pytest.raises(ValueError, match="Invalid value received for argument `data`"):
        importance.taylor(group, model=model)
    with pytest.raises(ValueError, match="Invalid value received for argument `model`"):
        importance.taylor(group, data=data)
    with pytest.raises(ValueError, match="a compiled model"):
        importance.taylor(group, model=model, data=data)
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="at least one calibration batch"):
        importance.taylor(group, model=model, data=[])
    with pytest.raises(ValueError, match="batches of"):
        importance.taylor(group, model=model, data=[np.zeros(3)])


def test_random_is_seeded_and_per_group():
    model = _residual_model()
    groups = tfsparse.graph.trace(model).prunable()
    first = [importance.Random(seed=7)(g) for g in groups]
    again = [importance.Random(seed=7)(g) for g in groups]
    other = [importance.Random(seed=8)(g) for g in groups]
    for a, b, c, group in zip(first, again, other, groups):
        assert a.shape == (group.size,)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="argument `seed`"):
        importance.Random(seed=-1)


def test_get_criterion_names_callables_and_errors():
    assert importance.get_criterion("l1") is importance.l1
    assert isinstance(importance.get_criterion("taylor"), importance.Taylor)
    with pytest.raises(ValueError, match=r"Expected one of \('l1', 'bn_gamma', 'taylor', 'random'\)"):
        importance.get_criterion("l2")
    with pytest.raises(ValueError, match="argument `criterion`"):
        importance.get_criterion(3)

    model = _conv_model(filters=4)
    group = _group_of(model, "conv")
    by_group = importance.get_criterion(lambda g: np.arange(g.size, dtype=float))
    np.testing.assert_array_equal(by_group(group, model=model, data=None), [0, 1, 2, 3])
    seen = {}

    def with_context(g, *, model):
        seen["model"] = model
        return np.ones(g.size)

    importance.get_criterion(with_context)(group, model=model, data="ignored")
    assert seen["model"] is model
    with pytest.raises(ValueError, match="must return 4 finite scores"):
        importance.check_scores(np.ones(3), group, "bad")
    with pytest.raises(ValueError, match="must return 4 finite scores"):
        importance.check_scores([1.0, np.nan, 1.0, 1.0], group, "bad")


def test_serialize_criterion_round_trips_builtins_only():
    for name in importance.NAMES:
        assert importance.serialize_criterion(name) == name
        assert importance.serialize_criterion(importance.get_criterion(name)) == name
    config = importance.serialize_criterion(importance.Random(seed=3))
    assert config == {"name": "random", "config": {"seed": 3}}
    assert importance.get_criterion(config).seed == 3
    taylor = importance.get_criterion(importance.serialize_criterion(importance.Taylor(loss="mse", batch_size=4)))
    assert (taylor.loss, taylor.batch_size) == ("mse", 4)
    with pytest.raises(ValueError, match="cannot be saved"):
        importance.serialize_criterion(lambda g: np.ones(g.size))

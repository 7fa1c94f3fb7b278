"""The `channel` strategy: structured channel pruning over the channel graph."""

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.graph import importance
from tfsparse.strategies.channel import ChannelPruning

L = keras.layers


def residual_cnn(width=8, wide=16, classes=10):
    """stem -> BN -> ReLU, a depthwise + 1x1 branch added back (stem and res share channels), a wide conv, a head."""
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(width, 3, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.BatchNormalization(momentum=0.9, name="dw_bn")(y)
    y = L.ReLU(name="dw_relu")(y)
    y = L.Conv2D(width, 1, name="res")(y)
    y = L.BatchNormalization(momentum=0.9, name="res_bn")(y)
    x = L.Add(name="add")([x, y])
    x = L.ReLU(name="add_relu")(x)
    x = L.Conv2D(wide, 3, padding="same", activation="relu", name="wide")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(classes, name="head")(x))


def _compiled(model, learning_rate=0.01):
    model.compile(keras.optimizers.Adam(learning_rate) if learning_rate else keras.optimizers.SGD(0.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1)).astype("float32")
    return x, (x.mean(axis=(1, 2, 3)) * 10).astype("int32") % 10


class KeptCounts(keras.callbacks.Callback):
    """Records the kept channels of each selected group whenever they change."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy
        self.counts = []

    def on_train_batch_end(self, batch, logs=None):
        counts = tuple(state.kept for state in self.strategy.groups)
        if not self.counts or self.counts[-1] != counts:
            self.counts.append(counts)


def _zero_out_channels(variable, axis):
    values = np.moveaxis(variable.numpy(), axis, 0)
    return np.flatnonzero(~np.any(values.reshape(values.shape[0], -1) != 0, axis=1))


def test_reaches_target_counts_with_round_to_and_step_cap(images):
    x, y = images
    model = _compiled(residual_cnn())
    strategy = ChannelPruning(target_sparsity=0.5, begin_step=0, end_step=8, frequency=1)
    recorder = KeptCounts(strategy)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[strategy, recorder])

    assert [state.group.sources for state in strategy.groups] == [("stem", "res"), ("wide",)]
    counts = [(8, 16), *recorder.counts]
    assert counts[-1] == (4, 8)  # half the channels, multiples of round_to=4
    for before, after in zip(counts, counts[1:]):
        for b, a in zip(before, after):
            assert 0 <= b - a <= max(1, int(0.2 * b))  # at most 20% of what is left per update
    assert history.history["sparsity"][-1] == pytest.approx(12 / 24)
    assert strategy.current_sparsity() == pytest.approx(0.5)


def test_masked_channels_are_exactly_zero_after_fit_and_coupled_convs_agree(images):
    x, y = images
    model = _compiled(residual_cnn())
    strategy = ChannelPruning(target_sparsity=0.5, begin_step=0, end_step=4, frequency=1, max_step_fraction=1.0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[strategy])

    stem = _zero_out_channels(model.get_layer("stem").kernel, -1)
    assert len(stem) == 4
    for name, attribute, axis in [("stem", "bias", 0), ("stem_bn", "gamma", 0), ("stem_bn", "beta", 0),
                                  ("dw", "kernel", 2), ("dw", "bias", 0), ("dw_bn", "gamma", 0),
                                  ("res", "kernel", 3), ("res", "bias", 0), ("res_bn", "beta", 0)]:
        zero = _zero_out_channels(getattr(model.get_layer(name), attribute), axis)
        assert set(stem) <= set(zero), (name, attribute)
    np.testing.assert_array_equal(_zero_out_channels(model.get_layer("res").kernel, -1), stem)
    removed = np.flatnonzero(strategy.groups[0].removed)
    np.testing.assert_array_equal(removed, stem)

    probe = keras.Model(model.inputs, [model.get_layer("add").output, model.get_layer("wide").output])
    added, wide = probe.predict(x, verbose=0)
    assert not np.any(added[..., removed]) and np.any(added[..., np.setdiff1d(np.arange(8), removed)])
    wide_removed = np.flatnonzero(strategy.groups[1].removed)
    assert len(wide_removed) == 8 and not np.any(wide[..., wide_removed])


def test_finalize_detaches_masks_and_shrinks(images):
    x, y = images
    model = _compiled(residual_cnn())
    strategy = ChannelPruning(target_sparsity=0.5, begin_step=0, end_step=2, frequency=1, max_step_fraction=1.0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[strategy])
    deployable = ChannelPruning.finalize(model)
    assert deployable is not model
    assert not any(tfsparse.masks.has_mask(v) for v in deployable.weights)
    assert any(tfsparse.masks.has_mask(v) for v in model.weights)  # the trained model keeps training
    np.testing.assert_allclose(deployable.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert (deployable.get_layer("stem").filters, deployable.get_layer("wide").filters) == (4, 8)


@pytest.mark.parametrize(
    "min_channels, round_to, expected",
    [(1, 4, 4), (6, 4, 8), (3, 1, 3), (1, 1, 2), (1, 5, 5)],
)
def test_min_channels_and_round_to_bound_the_kept_count(min_channels, round_to, expected):
    model = keras.Sequential([keras.Input((4,)), L.Dense(16, name="hidden"), L.Dense(2, name="out")])
    _compiled(model, learning_rate=None)
    strategy = ChannelPruning(target_sparsity=0.9, begin_step=0, end_step=1, frequency=1, min_channels=min_channels,
                              round_to=round_to, max_step_fraction=1.0)
    x = np.ones((8, 4), "float32")
    model.fit(x, np.zeros(8, "int32"), batch_size=4, epochs=1, verbose=0, callbacks=[strategy])
    assert strategy.groups[0].kept == expected  # 16 * 0.1 = 1.6 channels asked for
    assert 16 - len(_zero_out_channels(model.get_layer("hidden").kernel, 1)) == expected


def test_step_cap_goes_on_after_end_step_until_the_target():
    model = keras.Sequential([keras.Input((4,)), L.Dense(16, name="hidden"), L.Dense(2, name="out")])
    _compiled(model, learning_rate=None)
    strategy = ChannelPruning(target_sparsity=0.75, begin_step=0, end_step=2, frequency=1, round_to=1)
    recorder = KeptCounts(strategy)
    x = np.ones((48, 4), "float32")
    model.fit(x, np.zeros(48, "int32"), batch_size=4, epochs=1, verbose=0, callbacks=[strategy, recorder])
    counts = [c for (c,) in recorder.counts]
    assert counts == [16, 13, 11, 9, 8, 7, 6, 5, 4]
    assert counts[-1] == 4
    assert all(0 < b - a <= max(1, int(0.2 * b)) for b, a in zip(counts, counts[1:]))
    steps = [step for step, _ in strategy.history]
    assert steps[:3] == [0, 1, 2] and max(steps) > 2
    assert not strategy._capped
    last = strategy.history[-1]
    model.fit(x, np.zeros(48, "int32"), batch_size=4, epochs=1, verbose=0, callbacks=[strategy])
    assert strategy.history[-1] == last  # target reached: no more updates


def test_global_scope_takes_the_weakest_channels_across_groups():
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="a")(inputs)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="b")(x)
    model = keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x)))
    kernel = model.get_layer("a").kernel.numpy()
    kernel[..., [1, 2, 5, 6]] *= 0.01
    model.get_layer("a").kernel.assign(kernel)
    _compiled(model, learning_rate=None)
    strategy = ChannelPruning(target_sparsity=0.25, begin_step=0, end_step=1, frequency=1, scope="global",
                              max_step_fraction=1.0)
    x = np.random.default_rng(0).random((8, 6, 6, 2)).astype("float32")
    model.fit(x, np.zeros(8, "int32"), batch_size=4, epochs=1, verbose=0, callbacks=[strategy])
    assert np.flatnonzero(strategy.groups[0].removed).tolist() == [1, 2, 5, 6]
    assert not strategy.groups[1].removed.any()
    assert strategy.current_sparsity() == 0.25


def test_bn_gamma_criterion_removes_the_smallest_gammas(images):
    x, y = images
    model = residual_cnn()
    gamma = np.array([1.0, 0.01, 1.5, -0.02, 2.0, 0.03, 0.0, 1.2], "float32")
    model.get_layer("stem_bn").gamma.assign(gamma)
    wide_norms = np.abs(model.get_layer("wide").kernel.numpy()).sum(axis=(0, 1, 2))
    _compiled(model, learning_rate=None)
    strategy = ChannelPruning(target_sparsity=0.5, begin_step=0, end_step=1, frequency=1, criterion="bn_gamma",
                              max_step_fraction=1.0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[strategy])
    # dw_bn and res_bn gammas are all ones, so the stem's decide; `wide` has no BN and falls back to l1
    assert np.flatnonzero(strategy.groups[0].removed).tolist() == [1, 3, 5, 6]
    assert set(np.flatnonzero(strategy.groups[1].removed)) == set(np.argsort(wide_norms)[:8])


@pytest.mark.parametrize("criterion", [
    pytest.param("taylor", marks=pytest.mark.tensorflow_only("the taylor criterion computes gradients with "
                                                             "tf.GradientTape (refused elsewhere, test below)")),
    "random",
])
def test_taylor_and_random_criteria_train(images, criterion):
    x, y = images
    extra = {"calibration_data": (x[:16], y[:16])} if criterion == "taylor" else {}
    model = _compiled(residual_cnn())
    strategy = ChannelPruning(target_sparsity=0.5, begin_step=0, end_step=3, frequency=1, criterion=criterion,
                              max_step_fraction=1.0, **extra)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[strategy])
    assert [state.kept for state in strategy.groups] == [4, 8], criterion


def test_taylor_is_refused_off_tensorflow_with_the_backend_named(images, monkeypatch):
    x, y = images
    model = _compiled(residual_cnn())
    groups = tfsparse.graph.trace(model).prunable()
    backend = keras.backend.backend()
    if backend == "tensorflow":  # what JAX and PyTorch get
        backend = "jax"
        monkeypatch.setattr(importance.keras.backend, "backend", lambda: backend)
    with pytest.raises(ValueError, match=r"Expected a model on the TensorFlow backend \(taylor computes gradients "
                                         rf"with tf.GradientTape\). Received: model='{backend}'"):
        importance.taylor.score(groups, model=model, data=(x[:16], y[:16]))


def test_already_zero_channels_stay_removed():
    model = keras.Sequential([keras.Input((4,)), L.Dense(8, name="hidden"), L.Dense(2, name="out")])
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:, 6] = 0.0  # with its zero bias: channel 6 was pruned before
    model.get_layer("hidden").set_weights([kernel, bias])
    _compiled(model)
    strategy = ChannelPruning(target_sparsity=0.5, begin_step=3, end_step=4, frequency=1, max_step_fraction=1.0)
    at_start = []
    probe = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: at_start.append(strategy.current_sparsity()))
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model.fit(x, (x[:, 0] > 0).astype("int32"), batch_size=4, epochs=1, verbose=0, callbacks=[strategy, probe])
    assert at_start == [1 / 8]
    assert strategy.groups[0].removed[6] and strategy.groups[0].kept == 4
    assert not np.any(model.get_layer("hidden").kernel.numpy()[:, 6])  # Adam did not bring it back


def test_layers_selection_picks_groups_by_source(images):
    x, y = images
    model = _compiled(residual_cnn())
    strategy = ChannelPruning(target_sparsity=0.5, begin_step=0, end_step=1, frequency=1, max_step_fraction=1.0,
                              layers="wide")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[strategy])
    assert [state.group.sources for state in strategy.groups] == [("wide",)]
    assert len(_zero_out_channels(model.get_layer("stem").kernel, -1)) == 0
    coupled = ChannelPruning(target_sparsity=0.5, end_step=1, exclude="stem").select_groups(model)
    assert [group.sources for group in coupled] == [("stem", "res"), ("wide",)]  # `res` still selects the group


def test_digits_accuracy_is_kept_at_half_the_channels():
    from tfsparse import data

    digits = data.load("digits")  # 8x8x1 images
    model = _compiled(residual_cnn(width=16, wide=32), learning_rate=0.003)
    rng = np.random.default_rng(0)  # NumPy's Glorot-uniform kernels, no shuffling: about the same run on every backend
    glorot = [np.sqrt(6 / (np.prod(w.shape[:-1]) + w.shape[-1])) for w in model.get_weights()]
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("float32") * limit if w.ndim > 1 else w
                       for w, limit in zip(model.get_weights(), glorot)])
    strategy = ChannelPruning(target_sparsity=0.5, begin_step=0, end_step=100, frequency=10)
    model.fit(digits.x_train, digits.y_train, batch_size=32, epochs=12, verbose=0, shuffle=False, callbacks=[strategy])
    assert [state.kept for state in strategy.groups] == [8, 16]
    accuracy = model.evaluate(digits.x_test, digits.y_test, verbose=0, return_dict=True)["accuracy"]
    assert accuracy > 0.85
    deployable = ChannelPruning.finalize(model)
    np.testing.assert_allclose(deployable.predict(digits.x_test, verbose=0), model.predict(digits.x_test, verbose=0),
                               atol=1e-4)


def test_errors_are_clear():
    model = residual_cnn()
    for bad in (0.0, 1.0, -0.1, 1.5, "half", None):
        with pytest.raises(ValueError, match="argument `target_sparsity`"):
            ChannelPruning(target_sparsity=bad, end_step=4)
    with pytest.raises(ValueError, match="argument `end_step`"):
        ChannelPruning(target_sparsity=0.5)
    with pytest.raises(ValueError, match=r"Expected one of \('l1', 'bn_gamma', 'taylor', 'random'\)"):
        ChannelPruning(target_sparsity=0.5, end_step=4, criterion="l2")
    with pytest.raises(ValueError, match="argument `calibration_data`"):
        ChannelPruning(target_sparsity=0.5, end_step=4, criterion="taylor")
    with pytest.raises(ValueError, match="argument `scope`"):
        ChannelPruning(target_sparsity=0.5, end_step=4, scope="model")
    for argument, value in [("min_channels", 0), ("round_to", 0), ("max_step_fraction", 0.0),
                            ("max_step_fraction", 1.5), ("policy", "xnnpack")]:
        with pytest.raises(ValueError, match=f"argument `{argument}`"):
            ChannelPruning(target_sparsity=0.5, end_step=4, **{argument: value})
    with pytest.raises(ValueError, match="argument `min_channels`.*at most 8"):
        ChannelPruning(target_sparsity=0.5, end_step=4, min_channels=9).prepare(model)
    with pytest.raises(ValueError, match="argument `round_to`"):
        ChannelPruning(target_sparsity=0.5, end_step=4, round_to=32).prepare(model)
    with pytest.raises(ValueError, match="prunable channel group"):
        ChannelPruning(target_sparsity=0.5, end_step=4, layers="head").prepare(model)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = L.Dense(4), L.Dense(2)

        def call(self, x):
            return self.out(self.hidden(x))

    subclassed = Subclassed()
    subclassed(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model"):
        ChannelPruning(target_sparsity=0.5, end_step=4).prepare(subclassed)


def test_a_bad_custom_criterion_is_named():
    model = _compiled(keras.Sequential([keras.Input((4,)), L.Dense(8), L.Dense(2)]))
    strategy = ChannelPruning(target_sparsity=0.5, end_step=1, frequency=1, criterion=lambda group: np.ones(3))
    with pytest.raises(ValueError, match="must return 8 finite scores"):
        model.fit(np.ones((8, 4)), np.zeros(8, "int32"), batch_size=4, verbose=0, callbacks=[strategy])


def test_config_round_trip():
    configs = [
        dict(target_sparsity=0.5, begin_step=2, end_step=10, frequency=2),
        dict(target_sparsity=0.3, end_step=10, criterion="bn_gamma", scope="global", min_channels=2, round_to=8,
             max_step_fraction=0.5, power=1, layers=["stem", "wide"], exclude="res"),
        dict(target_sparsity=0.3, end_step=10, criterion=importance.Random(seed=3)),
    ]
    for kwargs in configs:
        strategy = ChannelPruning(**kwargs)
        config = strategy.get_config()
        clone = ChannelPruning.from_config(config)
        assert clone.get_config() == config
        assert tfsparse.get_strategy("channel") is ChannelPruning
    assert ChannelPruning.from_config(configs[2] | {"criterion": {"name": "random", "config": {"seed": 3}}}) \
        ._criterion.seed == 3
    data = (np.zeros((2, 8, 8, 1), "float32"), np.zeros(2, "int32"))
    taylor = ChannelPruning(target_sparsity=0.5, end_step=4, criterion="taylor", calibration_data=data)
    config = taylor.get_config()
    assert "calibration_data" not in config and config["criterion"] == "taylor"
    assert ChannelPruning.from_config({**config, "calibration_data": data}).get_config() == config
    with pytest.raises(ValueError, match="cannot be saved"):
        ChannelPruning(target_sparsity=0.5, end_step=4, criterion=lambda g: np.ones(g.size)).get_config()

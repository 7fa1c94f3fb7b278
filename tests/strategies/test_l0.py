"""The `l0` strategy: gate placement, training modes, freezing, finalize and errors."""

from unittest import mock

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.layers import L0Gate
from tfsparse.strategies.l0 import FROZEN_LOG_ALPHA, L0, FreezeGates
from tfsparse.training import make_strategy

L = keras.layers
SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _types(model):
    return [type(layer).__name__ for layer in model.layers]


def _gates(model):
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, L0Gate)]


def _close(gate, channels):
    values = gate.get_log_alpha()
    values[list(channels)] = -FROZEN_LOG_ALPHA
    gate.set_log_alpha(values)


def _cnn():
    """Conv+BN+ReLU, a residual Add, a Conv with its own relu, GAP, Dense head."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="r1")(x)
    y = L.Conv2D(8, 1, activation="relu", name="c2")(x)
    x = L.Add(name="add")([x, y])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(3, name="out")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn1")
    rng = np.random.default_rng(0)
    bn.moving_mean.assign(rng.normal(size=8).astype("float32"))
    bn.beta.assign(rng.normal(size=8).astype("float32"))
    return model


def test_prepare_sequential_moves_the_activation_into_the_gate_and_keeps_predictions(mlp, classification_data):
    x, _ = classification_data
    gated = L0(l0=0.1).prepare(mlp)
    assert isinstance(gated, keras.Sequential) and gated is not mlp
    assert _types(gated) == ["Dense", "L0Gate", "Dense"]  # the output layer gets no gate
    gate = gated.get_layer("hidden_l0_gate")
    assert gate.get_config()["activation"] == "relu"
    assert gated.get_layer("hidden").get_config()["activation"] == "linear"
    np.testing.assert_allclose(gated.predict(x[:16], verbose=0), mlp.predict(x[:16], verbose=0), atol=1e-6)
    assert mlp.get_layer("hidden").get_config()["activation"] == "relu"  # the input model is unchanged


def test_prepare_functional_puts_the_gate_after_batch_normalization_and_closed_channels_are_zero():
    model = _cnn()
    gated = L0(l0=0.1).prepare(model)
    names = [layer.name for layer in gated.layers]
    assert names.index("bn1") < names.index("c1_l0_gate") < names.index("r1")
    assert names.index("c2") < names.index("c2_l0_gate") < names.index("add")
    assert "out_l0_gate" not in names
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(gated.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    _close(gated.get_layer("c1_l0_gate"), [0, 3])
    _close(gated.get_layer("c2_l0_gate"), [0, 5])
    probe = keras.Model(gated.input, [gated.get_layer("r1").output, gated.get_layer("c2_l0_gate").output])
    after_relu, after_c2 = probe.predict(x, verbose=0)
    assert np.all(after_relu[..., [0, 3]] == 0) and np.any(after_relu[..., 1] != 0)  # despite BN's shift
    assert np.all(after_c2[..., [0, 5]] == 0)
    add = keras.Model(gated.input, gated.get_layer("add").output).predict(x, verbose=0)
    assert np.all(add[..., 0] == 0)  # both branches of channel 0 closed: nothing flows downstream


def test_prepare_rewrites_nested_models_and_keeps_them_sequential():
    block = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="tanh", name="inner")], name="block")
    inputs = keras.Input((4,))
    x = L.Dense(6, name="stem")(inputs)
    outputs = L.Dense(2, name="head")(block(x))
    model = keras.Model(inputs, outputs)
    gated = L0(l0=0.1).prepare(model)
    new_block = gated.get_layer("block")
    assert isinstance(new_block, keras.Sequential) and _types(new_block) == ["Dense", "L0Gate"]
    assert "stem_l0_gate" in [layer.name for layer in gated.layers]
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(gated.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**{"name": "gated_net", **kwargs})
        self.hidden = L.Dense(16)
        self.gate = L0Gate(activation="relu")
        self.out = L.Dense(3)

    def call(self, x, training=None):
        return self.out(self.gate(self.hidden(x), training=training))


def test_subclassed_model_with_user_placed_gates_is_found_and_trained(classification_data):
    x, y = classification_data
    model = _Subclassed()
    model(x[:1])
    strategy = L0(l0=5.0, frequency=2)
    assert strategy.prepare(model) is model
    model.compile(keras.optimizers.Adam(0.2), SCE)
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0, callbacks=[strategy])
    assert strategy.gates == [model.gate]
    assert history.history["sparsity"][-1] > 0 and history.history["l0_penalty"][-1] > 0
    deployable = L0.finalize(model)
    np.testing.assert_allclose(deployable.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), atol=1e-6)


def test_subclassed_model_without_gates_is_refused_with_guidance():
    plain = keras.Sequential([L.Dense(2)])

    class NoGates(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = NoGates()
    net(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match="add `tfsparse.layers.L0Gate\\(\\)`"):
        L0(l0=0.1).prepare(net)
    with pytest.raises(ValueError, match="not built"):
        L0(l0=0.1).prepare(plain)


def test_training_without_gates_is_refused(mlp, classification_data):
    x, y = classification_data
    mlp.compile("adam", SCE)
    with pytest.raises(ValueError, match="model returned by `prepare"):
        mlp.fit(x, y, epochs=1, verbose=0, callbacks=[L0(l0=0.1)])


def test_a_prepared_model_is_returned_as_it_is(mlp):
    strategy = L0(l0=0.1)
    gated = strategy.prepare(mlp)
    assert strategy.prepare(gated) is gated


@pytest.mark.parametrize(
    "layers, match",
    [
        ("emb", "a Embedding cannot take an L0 gate \\(supported: Dense, Conv1D"),
        ("sig", "its activation 'sigmoid' maps 0 to a nonzero value"),
        ("pre_bn", "feeds BatchNormalization 'bn' and other layers"),
        ("pre_soft", "activation layer 'soft' after it maps 0 to a nonzero value"),
        ("pre_ln", "LayerNormalization 'ln' follows it"),
    ],
)
def test_layers_that_cannot_take_a_gate_are_refused_when_selected(layers, match):
    inputs = keras.Input((5,), dtype="int32")
    x = L.Embedding(10, 4, name="emb")(inputs)
    x = L.Flatten()(x)
    x = L.Dense(6, activation="sigmoid", name="sig")(x)
    y = L.Dense(6, name="pre_bn")(x)
    x = L.Add()([L.BatchNormalization(name="bn")(y), y])
    x = L.Activation("softplus", name="soft")(L.Dense(6, name="pre_soft")(x))
    x = L.LayerNormalization(name="ln")(L.Dropout(0.1)(L.Dense(6, name="pre_ln")(x)))
    model = keras.Model(inputs, L.Dense(2, name="out")(x))
    with pytest.raises(ValueError, match=f"Invalid value received for argument `layers`.*{match}"):
        L0(l0=0.1, layers=layers).prepare(model)


def test_default_selection_skips_what_cannot_take_a_gate():
    inputs = keras.Input((5,), dtype="int32")
    x = L.Flatten()(L.Embedding(10, 4, name="emb")(inputs))
    x = L.Dense(6, activation="sigmoid", name="sig")(x)
    x = L.Dense(6, activation="relu", name="ok")(x)
    outputs = L.Softmax()(L.Dense(2, name="out")(x))
    gated = L0(l0=0.1).prepare(keras.Model(inputs, outputs))
    assert [gate.name for gate in _gates(gated)] == ["ok_l0_gate"]


def test_no_layer_to_gate_is_refused():
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    with pytest.raises(ValueError, match="a layer that can take an L0 gate"):
        L0(l0=0.1).prepare(model)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"l0": -1}, "Invalid value received for argument `l0`. Expected a float >= 0. Received: l0=-1"),
        ({"l0": "big"}, "argument `l0`"),
        ({}, "Expected a float >= 0, or pass target_sparsity"),
        ({"target_sparsity": 1.0, "end_step": 10}, "argument `target_sparsity`"),
        ({"target_sparsity": 0.5}, "argument `end_step`"),
        ({"target_sparsity": 0.5, "end_step": 10, "l0": 0.0}, "a float > 0"),
        ({"l0": 0.1, "policy": "xnnpack"}, "argument `policy`"),
        ({"l0": 0.1, "log_alpha_scale": -2}, "Expected .auto. or a float > 0. Received: log_alpha_scale=-2"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L0(**kwargs)


@pytest.mark.parametrize("target", [0.01, 0.99])
def test_unreachable_target_is_refused(mlp, target):
    with pytest.raises(ValueError, match="closes at least one and keeps at least one open"):
        L0(target_sparsity=target, end_step=10).prepare(mlp)  # 32 gates: rounds to 0 or 32 closed


def test_config_round_trip_and_make_strategy():
    strategy = make_strategy("l0", target_sparsity=0.3, steps={"begin_step": 2, "end_step": 40, "frequency": 5},
                             layers="hidden")
    assert isinstance(strategy, L0) and strategy.target_sparsity == 0.3 and strategy.schedule.end_step == 40
    config = strategy.get_config()
    assert L0.from_config(config).get_config() == config
    fixed = L0(l0=0.2, exclude=[L.Conv2D], log_alpha_scale=3.0)
    assert L0.from_config(fixed.get_config()).log_alpha_scale == 3.0
    assert L0.from_config(fixed.get_config()).get_config() == fixed.get_config()


def test_fixed_lambda_closes_gates_and_logs(mlp, classification_data, tmp_path):
    x, y = classification_data
    strategy = L0(l0=2.0, frequency=4, log_dir=str(tmp_path))
    model = strategy.prepare(mlp)
    model.compile(keras.optimizers.Adam(0.02), SCE)  # log_alpha must fall by ~5 to close a gate: ~0.2 per step
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0, callbacks=[strategy])
    assert {"sparsity", "l0_penalty", "l0_lambda"} <= set(history.history)
    assert history.history["l0_lambda"][-1] == 2.0 and history.history["sparsity"][-1] > 0.2
    gate = model.get_layer("hidden_l0_gate")
    assert float(gate.l0.numpy()) == 0.0  # lambda is released when fit ends
    assert strategy.current_sparsity() == pytest.approx(gate.closed().mean())
    assert list(tmp_path.iterdir())  # TensorBoard scalars


def test_target_mode_reaches_the_target_then_freezes_the_gates():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype("float32")
    model = keras.Sequential([keras.Input((64,)), L.Dense(64, activation="relu"), L.Dense(64, activation="relu"),
                              L.Dense(10)])
    strategy = L0(target_sparsity=0.5, end_step=300, frequency=10)
    gated = strategy.prepare(model)
    gated.compile(keras.optimizers.Adam(0.003), SCE, metrics=["accuracy"])
    history = gated.fit(x, y, batch_size=64, epochs=14, verbose=0, callbacks=[strategy])  # 392 steps
    assert abs(strategy.reached_sparsity - 0.5) <= 0.1  # what lambda alone reached
    assert history.history["sparsity"][-1] == 0.5 and history.history["accuracy"][-1] > 0.9
    for gate in strategy.gates:  # frozen for the 92 steps after end_step despite Adam's momentum
        assert set(np.abs(gate.get_log_alpha()).tolist()) == {FROZEN_LOG_ALPHA}
        assert isinstance(gate.log_alpha.constraint, FreezeGates)
    assert history.history["l0_lambda"][-1] == 0.0
    deployable = L0.finalize(gated)
    assert not _gates(deployable)
    np.testing.assert_allclose(deployable.predict(x[:32], verbose=0), gated.predict(x[:32], verbose=0), atol=1e-5)
    closed = strategy.gates[0].closed()  # finalize shrinks: the closed units are gone, the next layer's rows too
    assert deployable.layers[0].units == int((~closed).sum())
    assert deployable.layers[1].kernel.shape[0] == int((~closed).sum())
    zeroed = tfsparse.finalize(gated, shrink=False)
    assert np.all(zeroed.layers[0].kernel.numpy()[:, closed] == 0)


def test_the_registry_finds_l0():
    assert tfsparse.get_strategy("l0") is L0


def test_target_mode_at_adams_default_learning_rate_closes_gates_in_500_steps():
    """With the paper's parametrization log_alpha would move ~0.5 in 500 steps at lr 1e-3: no gate could close."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), L.Dense(64, activation="relu"), L.Dense(64, activation="relu"),
                              L.Dense(10)])
    strategy = L0(target_sparsity=0.6, end_step=500, frequency=10)
    gated = strategy.prepare(model)
    assert all(gate.log_alpha_scale == 10.0 for gate in _gates(gated))  # until training starts
    gated.compile(keras.optimizers.Adam(1e-3), SCE, metrics=["accuracy"])
    history = gated.fit(x, y, batch_size=32, epochs=10, verbose=0, callbacks=[strategy])  # 570 steps
    assert all(gate.log_alpha_scale == 20.0 for gate in strategy.gates)  # auto: 10 / (1e-3 * 500)
    assert abs(strategy.reached_sparsity - 0.6) <= 0.05  # closed by lambda, not by the freeze's ranking
    assert history.history["sparsity"][-1] == round(0.6 * 128) / 128 and history.history["accuracy"][-1] > 0.9


@pytest.mark.filterwarnings("ignore:.*schedule ends at step:UserWarning")  # one-step fits on purpose
def test_auto_scale_keeps_log_alpha_and_predictions_and_a_slow_fixed_scale_warns(mlp, classification_data):
    x, y = classification_data
    strategy = L0(target_sparsity=0.25, end_step=50, frequency=5)
    gated = strategy.prepare(mlp)
    gate = gated.get_layer("hidden_l0_gate")
    gate.set_log_alpha(np.linspace(-4.0, 4.0, gate.units))
    before, predictions = gate.get_log_alpha(), gated.predict(x[:8], verbose=0)
    gated.compile(keras.optimizers.SGD(0.0), SCE)  # nothing moves: only the rescaling acts
    gated.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0, callbacks=[strategy])
    assert gate.log_alpha_scale == 1000.0  # a learning rate of 0: the largest automatic scale
    np.testing.assert_allclose(gate.get_log_alpha(), before, rtol=1e-5)
    np.testing.assert_allclose(gated.predict(x[:8], verbose=0), predictions, rtol=1e-5, atol=1e-6)
    slow = L0(target_sparsity=0.25, end_step=50, frequency=5, log_alpha_scale=1.0)
    model = slow.prepare(mlp)
    model.compile(keras.optimizers.Adam(1e-3), SCE)
    with mock.patch("tfsparse.strategies.l0.strategy.logging.warning") as warning:
        model.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0, callbacks=[slow])
    message = warning.call_args_list[0].args[0] % warning.call_args_list[0].args[1:]
    assert "few or no gates will close" in message and "log_alpha_scale=200" in message
    assert model.get_layer("hidden_l0_gate").log_alpha_scale == 1.0


def test_freezing_never_closes_the_last_open_gate_of_a_layer():
    from tfsparse.strategies.l0.strategy import _close_lowest

    log_alpha = [np.array([-9.0, -8.0, -7.0]), np.array([0.0, 1.0, 2.0, 3.0])]
    closed = _close_lowest(log_alpha, 4)  # the 4 lowest are -9, -8, -7, 0: layer 0 would have none open
    assert closed[0].tolist() == [True, True, False] and closed[1].tolist() == [True, True, False, False]
    assert sum(int(c.sum()) for c in closed) == 4

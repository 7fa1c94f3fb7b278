"""`tfsparse.layers.L0Gate` and folding gates into weights (`tfsparse.strategies.l0.fold`)."""

import math
import os

import keras
import numpy as np
import pytest
from gradients import gradient

import tfsparse
from tfsparse.layers import L0Gate
from tfsparse.strategies.l0.fold import fold_l0_gates

L = keras.layers
SHIFT = (2 / 3) * math.log(0.1 / 1.1)  # beta * log(-gamma / zeta)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _gate(values, **kwargs):
    gate = L0Gate(log_alpha_initializer=keras.initializers.Constant(values), **kwargs)
    gate.build((None, len(values)))
    return gate


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_gradients_reach_log_alpha_through_gates_and_penalty():
    gate = _gate([0.0, 1.0, -1.0, 2.0], l0=0.5)
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(32, 4)).astype("float32"))
    data_grad = gradient(lambda: keras.ops.sum(gate(x, training=True) ** 2), gate.log_alpha)
    assert np.all(np.isfinite(data_grad)) and np.count_nonzero(data_grad) > 0

    def penalty():
        gate(x, training=True)
        assert len(gate.losses) == 1
        return gate.losses[0]

    grad = gradient(penalty, gate.log_alpha)
    p = _sigmoid(np.array([0.0, 1.0, -1.0, 2.0]) - SHIFT)
    np.testing.assert_allclose(grad, 0.5 * p * (1 - p), rtol=1e-5)


def test_expected_l0_matches_its_closed_form_and_the_sampled_frequency():
    log_alpha = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    gate = _gate(log_alpha, l0=0.25)
    expected = _sigmoid(log_alpha - SHIFT)
    np.testing.assert_allclose(_np(gate.open_probability()), expected, rtol=1e-6)
    assert float(_np(gate.expected_l0())) == pytest.approx(expected.sum(), rel=1e-6)
    gate(np.ones((1, 5), "float32"), training=True)
    assert [float(_np(loss)) for loss in gate.losses] == [pytest.approx(0.25 * expected.sum(), rel=1e-6)]
    many = _gate(np.tile(log_alpha, 4000))  # 4000 draws of each gate in one sample
    samples = _np(many.sample_gates()).reshape(4000, 5)
    np.testing.assert_allclose((samples != 0).mean(axis=0), expected, atol=0.03)
    assert samples.min() == 0 and samples.max() == 1 and np.any((samples > 0) & (samples < 1))


def test_inference_gates_are_deterministic_and_training_gates_are_not():
    log_alpha = np.array([-5.0, -1.0, 0.0, 1.0, 5.0])
    gate = _gate(log_alpha)
    x = np.ones((3, 5), "float32")
    first, second = _np(gate(x)), _np(gate(x, training=False))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first[0], np.clip(_sigmoid(log_alpha) * 1.2 - 0.1, 0, 1), rtol=1e-6)
    assert first[0, 0] == 0 and first[0, -1] == 1
    assert not np.array_equal(_np(gate(x, training=True)), _np(gate(x, training=True)))
    gate(x)
    assert gate.losses == []  # no penalty outside training


def test_default_gates_are_open_at_inference():
    gate = L0Gate()
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    np.testing.assert_array_equal(_np(gate(x)), x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"l0": -1}, "Expected a float >= 0. Received: l0=-1"),
        ({"l0": float("nan")}, "argument `l0`"),
        ({"activation": "sigmoid"}, "f\\(0\\) = 0"),
        ({"beta": 0.0}, "argument `beta`"),
        ({"gamma": 0.1}, "argument `gamma`"),
        ({"zeta": 1.0}, "argument `zeta`"),
        ({"axis": 1.5}, "argument `axis`"),
        ({"log_alpha_scale": 0.0}, "Expected a float > 0. Received: log_alpha_scale=0.0"),
        ({"log_alpha_scale": True}, "argument `log_alpha_scale`"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L0Gate(**kwargs)


def test_batch_axis_is_refused():
    with pytest.raises(ValueError, match="not the batch axis"):
        L0Gate(axis=0)(np.ones((2, 3), "float32"))


def test_config_round_trip_keeps_the_current_l0():
    gate = _gate([1.0, 2.0], l0=0.1, activation="relu", axis=-1, seed=3, name="g")
    gate.l0.assign(0.7)
    config = gate.get_config()
    assert config["l0"] == pytest.approx(0.7) and config["activation"] == "relu"
    clone = L0Gate.from_config(config)
    assert clone.get_config() == config


def test_log_alpha_scale_stores_log_alpha_divided_and_moves_it_faster_under_adam():
    values = np.array([-1.0, 0.5, 2.5], "float32")
    slow, fast = _gate(values), _gate(values, log_alpha_scale=10.0)
    np.testing.assert_allclose(fast.log_alpha.numpy(), values / 10, rtol=1e-6)
    np.testing.assert_allclose(fast.get_log_alpha(), values, rtol=1e-6)
    np.testing.assert_allclose(_np(fast.inference_gates()), _np(slow.inference_gates()), rtol=1e-6)
    np.testing.assert_allclose(_np(fast.expected_l0()), _np(slow.expected_l0()), rtol=1e-6)
    fast.set_log_alpha([3.0, -3.0, 0.0])
    np.testing.assert_allclose(fast.log_alpha.numpy(), [0.3, -0.3, 0.0], rtol=1e-6)
    fast.set_log_alpha(values)
    moved = []
    for gate in (slow, fast):  # one Adam step on the penalty: each weight moves by about the learning rate
        optimizer = keras.optimizers.Adam(0.01)
        grad = gradient(gate.expected_l0, gate.log_alpha)
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(grad), gate.log_alpha)])
        moved.append(values - gate.get_log_alpha())
    np.testing.assert_allclose(moved[0], 0.01, rtol=1e-3)
    np.testing.assert_allclose(moved[1], 0.1, rtol=1e-3)
    config = fast.get_config()
    assert config["log_alpha_scale"] == 10.0 and L0Gate.from_config(config).get_config() == config


def _gated_cnn():
    """A small CNN with gates after Conv+BN, a Conv with relu, a residual, depthwise, separable and Dense."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="c1")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L0Gate(name="g1")(x)
    x = L.ReLU(name="r1")(x)
    y = L.Conv2D(6, 1, name="c2")(x)
    y = L0Gate(activation="relu", name="g2")(y)
    x = L.Add(name="add")([x, y])
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = L0Gate(activation="relu", name="g3")(x)
    x = L.SeparableConv2D(5, 3, name="sep", activation="relu")(x)
    x = L0Gate(name="g4")(x)  # after a relu layer: relu(z x) = z relu(x)
    x = L.Conv2DTranspose(4, 3, strides=2, name="tr")(x)
    x = L0Gate(activation="tanh", name="g5")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(7, name="fc")(x)
    x = L0Gate(name="g6")(x)
    outputs = L.Dense(3, name="out")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, L0Gate):  # closed, fractional and open gates
            layer.log_alpha.assign(rng.choice([-6.0, -1.0, 0.0, 1.0, 6.0], size=layer.units).astype("float32"))
            layer.log_alpha.assign(np.concatenate([[-6.0], layer.log_alpha.numpy()[1:]]).astype("float32"))
        if isinstance(layer, L.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=6).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2, size=6).astype("float32"))
            layer.beta.assign(rng.normal(size=6).astype("float32"))
    return model


def test_folding_is_exact_and_zeroes_closed_channels():
    model = _gated_cnn()
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    folded, report = fold_l0_gates(model, return_report=True)
    assert not any(isinstance(layer, L0Gate) for layer in folded.layers)
    assert report.kept == {} and len(report.folded) == 6
    closed = {layer.name: layer.closed() for layer in model.layers if isinstance(layer, L0Gate)}
    assert report.closed == report.zeroed == sum(int(c.sum()) for c in closed.values())
    assert report.channels == 6 + 6 + 12 + 5 + 4 + 7
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    bn = folded.get_layer("bn1")
    assert np.all(bn.gamma.numpy()[closed["g1"]] == 0) and np.all(bn.beta.numpy()[closed["g1"]] == 0)
    assert np.all(folded.get_layer("c1").kernel.numpy()[..., closed["g1"]] == 0)
    assert np.all(folded.get_layer("c2").kernel.numpy()[..., closed["g2"]] == 0)
    assert np.all(folded.get_layer("c2").bias.numpy()[closed["g2"]] == 0)
    assert folded.get_layer("c2").get_config()["activation"] == "relu"
    depthwise = folded.get_layer("dw").kernel.numpy().reshape(3, 3, 12)
    assert np.all(depthwise[..., closed["g3"]] == 0)
    assert np.all(folded.get_layer("sep").pointwise_kernel.numpy()[..., closed["g4"]] == 0)
    assert np.all(folded.get_layer("tr").kernel.numpy()[..., closed["g5"], :] == 0)
    assert folded.get_layer("tr").get_config()["activation"] == "tanh"
    assert np.all(folded.get_layer("fc").kernel.numpy()[:, closed["g6"]] == 0)
    assert model.get_layer("c2").get_config()["activation"] == "linear"  # the input model is left alone


def test_a_gate_that_cannot_fold_is_kept_with_the_reason():
    inputs = keras.Input((4,))
    a, b = L.Dense(3, name="a")(inputs), L.Dense(3, name="b")(inputs)
    x = L0Gate(name="after_add", log_alpha_initializer=keras.initializers.Constant([-6.0, 0.0, 6.0]))(L.Add()([a, b]))
    model = keras.Model(inputs, L.Dense(2)(x))
    folded, report = fold_l0_gates(model, return_report=True)
    assert list(report.kept) == ["after_add"] and "Add" in report.kept["after_add"]
    assert folded is model
    assert (report.closed, report.zeroed) == (1, 0)
    assert "0 closed channels zeroed (tfsparse.finalize then removes them" in report.describe()


def test_a_gate_after_batch_normalization_gets_gamma_when_it_had_none():
    gate = L0Gate(log_alpha_initializer=keras.initializers.Constant([-6.0, 0.0, 6.0]), activation="relu")
    model = keras.Sequential([keras.Input((5,)), L.Dense(3), L.BatchNormalization(scale=False, name="bn"), gate])
    model.get_layer("bn").moving_mean.assign([0.5, -1.0, 2.0])
    folded = fold_l0_gates(model)
    assert [type(layer).__name__ for layer in folded.layers] == ["Dense", "BatchNormalization", "Activation"]
    assert folded.get_layer("bn").scale
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert np.all(folded.predict(x, verbose=0)[:, 0] == 0)


def test_finalize_and_export_fold_the_gates(tmp_path):
    gate = L0Gate(log_alpha_initializer=keras.initializers.Constant([-6.0, 0.0, 1.0, 6.0]), activation="relu")
    model = keras.Sequential([keras.Input((5,)), L.Dense(4), gate, L.Dense(2)])
    deployable = tfsparse.finalize(model)
    assert [type(layer).__name__ for layer in deployable.layers] == ["Dense", "Dense"]
    result = tfsparse.export(model, os.fspath(tmp_path / "gated.tflite"), target="dense")
    assert result.verification.passed and dict(result.operators) == {"FULLY_CONNECTED": 2}


def test_save_load_round_trip_of_a_gated_model(tmp_path):
    model = _gated_cnn()
    for layer in model.layers:
        if isinstance(layer, L0Gate):
            layer.l0.assign(0.3)
    path = os.fspath(tmp_path / "gated.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    gates = [layer for layer in loaded.layers if isinstance(layer, L0Gate)]
    assert len(gates) == 6 and all(float(g.l0.numpy()) == pytest.approx(0.3) for g in gates)
    assert gates[2].get_config()["activation"] == "relu"

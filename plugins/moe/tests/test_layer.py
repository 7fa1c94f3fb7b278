"""`MoE`: routing, gates, expert outputs, losses, masks, serialization, TFLite."""

import math
import os

import keras
import numpy as np
import pytest
from keras import ops

import tfsparse
from tfsparse_moe import MoE


def numpy_moe(layer, x):
    """The layer's inference output computed with numpy from its weights."""
    w = {v.name: np.asarray(ops.convert_to_numpy(v), np.float64) for v in layer.weights}
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    logits = flat @ w["router_kernel"] + w["router_bias"] + (1 - w["expert_mask"]) * -1e9
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    top = np.argsort(-probs, axis=-1, kind="stable")[:, :layer.top_k]
    chosen = np.take_along_axis(probs, top, -1)
    if layer.renormalizes:
        chosen /= chosen.sum(-1, keepdims=True)
    gates = np.zeros_like(probs)
    np.put_along_axis(gates, top, chosen, -1)
    hidden = np.einsum("nd,edh->neh", flat, w["expert_kernel_in"]) + w["expert_bias_in"]
    if layer.activation == "relu":
        hidden = np.maximum(hidden, 0)
    elif layer.activation == "gelu":
        hidden = 0.5 * hidden * (1 + np.vectorize(math.erf)(hidden / np.sqrt(2)))
    else:
        g = np.einsum("nd,edh->neh", flat, w["expert_kernel_gate"])
        hidden = g / (1 + np.exp(-g)) * hidden
    out = np.einsum("neh,ehd->ned", hidden, w["expert_kernel_out"]) + w["expert_bias_out"]
    return (gates[..., None] * out).sum(1).reshape(x.shape), gates, probs


def planted(top_k=2, num_experts=4, **kwargs):
    """A layer of width 4 whose token `e_i + 0.5 e_(i+1)` prefers expert i, then i + 1."""
    layer = MoE(num_experts=num_experts, hidden_units=6, top_k=top_k, **kwargs)
    layer.build((None, 4))
    layer.router_kernel.assign(5.0 * np.eye(4, num_experts, dtype="float32"))
    return layer


def planted_tokens():
    x = np.zeros((4, 4), "float32")
    for i in range(4):
        x[i, i] = 1.0
        x[i, (i + 1) % 4] = 0.5
    return x


def test_top_k_routing_and_renormalized_gates():
    layer = planted(top_k=2)
    route = {k: ops.convert_to_numpy(v) for k, v in layer.routing(planted_tokens()).items()}
    for i in range(4):
        assert set(np.flatnonzero(route["routed"][i])) == {i, (i + 1) % 4}
        p = route["probs"][i]
        expected = p[[i, (i + 1) % 4]] / p[[i, (i + 1) % 4]].sum()
        np.testing.assert_allclose(route["gates"][i, [i, (i + 1) % 4]], expected, rtol=1e-6)
    np.testing.assert_allclose(route["gates"].sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("normalize, expected", [(None, "probability"), (True, "one")])
def test_top1_gate_is_the_router_probability_unless_renormalized(normalize, expected):
    layer = planted(top_k=1, normalize_gates=normalize)
    route = {k: ops.convert_to_numpy(v) for k, v in layer.routing(planted_tokens()).items()}
    np.testing.assert_array_equal(route["routed"].argmax(-1), np.arange(4))
    want = route["probs"].max(-1) if expected == "probability" else np.ones(4)
    np.testing.assert_allclose(route["gates"].max(-1), want, rtol=1e-6)
    assert (route["gates"] > 0).sum(-1).tolist() == [1] * 4


@pytest.mark.parametrize("activation", ["gelu", "relu", "swiglu"])
def test_output_is_the_gate_weighted_sum_of_experts(activation, tokens):
    layer = MoE(num_experts=5, hidden_units=7, top_k=2, activation=activation)
    layer.build(tokens.shape)
    layer.router_kernel.assign(np.random.default_rng(1).normal(size=(8, 5)).astype("float32"))
    layer.expert_bias_in.assign(np.random.default_rng(2).normal(size=(5, 7)).astype("float32"))
    layer.expert_mask.assign([1.0, 0.0, 1.0, 1.0, 1.0])
    expected, gates, _ = numpy_moe(layer, tokens)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(tokens)), expected, atol=1e-5)
    assert gates[:, 1].max() == 0.0


def test_load_balancing_loss_closed_form_on_planted_router():
    layer = planted(top_k=2, load_balance_weight=0.5)
    x = planted_tokens()[[0, 0, 1, 2]]  # routed to {0, 1}, {0, 1}, {1, 2}, {2, 3}
    fraction = np.array([2, 3, 2, 1]) / (4 * 2)
    logits = 5.0 * x.astype(np.float64)
    probability = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).mean(0)
    layer(x, training=True)
    (loss,) = [float(v) for v in layer.losses]
    assert loss == pytest.approx(0.5 * 4 * float(fraction @ probability), rel=1e-5)


def test_balanced_router_loss_equals_its_weight():
    layer = planted(top_k=1, load_balance_weight=0.3)
    layer.router_kernel.assign(np.zeros((4, 4), "float32"))  # uniform probabilities, argmax ties go to expert 0
    layer(planted_tokens(), training=True)
    # f = (1, 0, 0, 0), P = 1/4 each: E * sum(f * P) = 1
    assert float(layer.losses[0]) == pytest.approx(0.3, rel=1e-6)


def test_router_z_loss_closed_form():
    layer = planted(load_balance_weight=0.0, router_z_loss_weight=0.1)
    x = planted_tokens()
    logits = x.astype(np.float64) @ (5.0 * np.eye(4))
    z = np.log(np.exp(logits).sum(-1))
    layer(x, training=True)
    (loss,) = [float(v) for v in layer.losses]
    assert loss == pytest.approx(0.1 * np.mean(z ** 2), rel=1e-5)


def test_no_losses_or_statistics_at_inference(tokens):
    layer = MoE(num_experts=4, hidden_units=8)
    layer(tokens)
    assert layer.losses == []
    assert layer.read_statistics()["tokens"] == 0.0


def test_removed_expert_is_never_routed_even_when_preferred():
    layer = planted(top_k=2)
    layer.expert_mask.assign([0.0, 1.0, 1.0, 1.0])
    route = {k: ops.convert_to_numpy(v) for k, v in layer.routing(planted_tokens()).items()}
    assert route["probs"][:, 0].max() == 0.0 and route["routed"][:, 0].max() == 0.0
    assert np.isfinite(route["logits"]).all()
    np.testing.assert_allclose(route["gates"].sum(-1), 1.0, rtol=1e-6)


def test_padded_tokens_count_in_neither_losses_nor_statistics():
    layer = planted(top_k=1, load_balance_weight=1.0)
    x = planted_tokens()[None]  # [1, 4 tokens, 4]
    mask = np.array([[True, True, False, False]])
    layer(x, training=True, mask=mask)
    stats = layer.read_statistics()
    assert stats["tokens"] == 2.0
    np.testing.assert_array_equal(stats["routed"], [1.0, 1.0, 0.0, 0.0])
    route = {k: ops.convert_to_numpy(v) for k, v in layer.routing(x[:, :2]).items()}
    expected = 4 * (route["routed"].sum(0) / 2) @ route["probs"].mean(0)
    assert float(layer.losses[0]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kwargs, argument", [
    ({"num_experts": 4, "hidden_units": 8, "top_k": 4}, "top_k"),
    ({"num_experts": 4, "hidden_units": 8, "top_k": 0}, "top_k"),
    ({"num_experts": 1, "hidden_units": 8, "top_k": 1}, "num_experts"),
    ({"num_experts": 4, "hidden_units": 0}, "hidden_units"),
    ({"num_experts": 4, "hidden_units": 8, "activation": "tanh"}, "activation"),
    ({"num_experts": 4, "hidden_units": 8, "load_balance_weight": -1.0}, "load_balance_weight"),
    ({"num_experts": 4, "hidden_units": 8, "normalize_gates": "yes"}, "normalize_gates"),
])
def test_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{argument}`.*Received: {argument}="):
        MoE(**kwargs)


def test_seeded_experts_differ_and_are_reproducible():
    first, second = (MoE(num_experts=3, hidden_units=4, seed=7, activation="swiglu") for _ in range(2))
    for layer in (first, second):
        layer.build((None, 4))
    kernel = ops.convert_to_numpy(first.expert_kernel_in)
    np.testing.assert_array_equal(kernel, ops.convert_to_numpy(second.expert_kernel_in))
    assert not np.allclose(kernel[0], kernel[1])
    assert not np.allclose(kernel, ops.convert_to_numpy(first.expert_kernel_gate))


def test_config_round_trip(tokens):
    layer = MoE(num_experts=4, hidden_units=8, top_k=1, activation="swiglu", normalize_gates=True,
                load_balance_weight=0.02, router_z_loss_weight=0.001, use_bias=False, seed=3, name="moe")
    layer(tokens)
    clone = MoE.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(tokens)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(ops.convert_to_numpy(clone(tokens)), ops.convert_to_numpy(layer(tokens)), atol=1e-6)


def moe_model(num_experts=4):
    inputs = keras.Input((5, 8))
    x = MoE(num_experts=num_experts, hidden_units=8, name="moe")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D()(x)))


def test_keras_save_and_load_keeps_outputs_and_expert_mask(tmp_path, tokens):
    model = moe_model()
    model.get_layer("moe").expert_mask.assign([1.0, 1.0, 0.0, 1.0])
    path = os.path.join(tmp_path, "moe.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("moe").kept_experts().tolist() == [True, True, False, True]
    np.testing.assert_allclose(loaded.predict(tokens, verbose=0), model.predict(tokens, verbose=0), atol=1e-6)


def test_tflite_conversion_matches_keras(tmp_path, tokens):
    model = moe_model()
    model.get_layer("moe").expert_mask.assign([1.0, 0.0, 1.0, 1.0])
    result = tfsparse.export(model, os.path.join(tmp_path, "moe.tflite"), target="dense",
                             representative_data=tokens, verify=False)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=result.path)
    runner = interpreter.get_signature_runner()
    (input_name,) = runner.get_input_details()
    (output,) = runner(**{input_name: tokens}).values()
    np.testing.assert_allclose(output, model.predict(tokens, verbose=0), atol=1e-5)
    operators = dict(result.operators)
    assert "TOPK_V2" in operators and not any(op.startswith("FLEX") or op == "CUSTOM" for op in operators)

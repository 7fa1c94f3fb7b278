"""Physical removal of pruned experts: `remove_pruned_experts`, `tfsparse.finalize`, `.keras` and `.tflite`."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse_moe import MoE, remove_pruned_experts


def _model(activation="gelu", nested=False):
    inputs = keras.Input((5, 8))
    x = MoE(num_experts=6, hidden_units=12, top_k=2, activation=activation, seed=1, name="moe_a")(inputs)
    x = keras.layers.LayerNormalization()(x)
    block = MoE(num_experts=4, hidden_units=8, top_k=1, activation=activation, seed=2, name="moe_b")
    if nested:
        inner_inputs = keras.Input((5, 8))
        block = keras.Model(inner_inputs, block(inner_inputs), name="inner")
    x = block(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(3)
    for variable in model.weights:  # non-trivial router biases and expert biases
        if variable.name in ("router_bias", "expert_bias_in", "expert_bias_out"):
            variable.assign(rng.normal(size=variable.shape).astype("float32"))
    return model


def _moe(model, name):
    return next(layer for layer in tfsparse.prunable.iter_layers(model) if layer.name == name)


def _prune(model, pruned):
    for name, experts in pruned.items():
        layer = _moe(model, name)
        mask = np.ones(layer.num_experts, "float32")
        mask[experts] = 0
        layer.expert_mask.assign(mask)


@pytest.mark.parametrize("activation,nested", [("gelu", False), ("swiglu", True), ("relu", False)])
def test_removal_slices_router_and_experts_and_keeps_outputs(tokens, activation, nested):
    model = _model(activation, nested)
    _prune(model, {"moe_a": [1, 4], "moe_b": [0]})
    small = remove_pruned_experts(model)
    big_a, small_a = _moe(model, "moe_a"), _moe(small, "moe_a")
    assert (small_a.num_experts, _moe(small, "moe_b").num_experts) == (4, 3)
    kept = [0, 2, 3, 5]
    np.testing.assert_array_equal(small_a.router_kernel.numpy(), big_a.router_kernel.numpy()[:, kept])
    np.testing.assert_array_equal(small_a.router_bias.numpy(), big_a.router_bias.numpy()[kept])
    for small_variable, big_variable in zip(small_a.expert_variables(), big_a.expert_variables()):
        np.testing.assert_array_equal(small_variable.numpy(), big_variable.numpy()[kept])
    assert small_a.kept_experts().all()
    np.testing.assert_allclose(small.predict(tokens, verbose=0), model.predict(tokens, verbose=0), atol=1e-5)
    assert small.count_params() < model.count_params()


def test_nothing_pruned_returns_the_model_itself():
    model = _model()
    assert remove_pruned_experts(model) is model


def test_finalize_applies_it_after_a_keras_round_trip(tmp_path, tokens):
    model = _model()
    _prune(model, {"moe_a": [0, 1, 2]})
    path = os.path.join(tmp_path, "pruned.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    small = tfsparse.finalize(reloaded)
    assert _moe(small, "moe_a").num_experts == 3 and _moe(small, "moe_b").num_experts == 4
    np.testing.assert_allclose(small.predict(tokens, verbose=0), model.predict(tokens, verbose=0), atol=1e-5)
    small.save(os.path.join(tmp_path, "small.keras"))
    assert os.path.getsize(os.path.join(tmp_path, "small.keras")) < os.path.getsize(path)


def test_export_writes_a_smaller_verified_tflite(tmp_path, tokens):
    dense = _model()
    pruned = _model()
    _prune(pruned, {"moe_a": [0, 1, 2], "moe_b": [3]})
    sizes = {}
    for name, model in (("dense", dense), ("pruned", pruned)):
        result = tfsparse.export(model, os.path.join(tmp_path, f"{name}.tflite"), target="dense",
                                 representative_data=tokens[:4])
        assert result.verification.passed
        sizes[name] = result.size_bytes
    trainable = {name: sum(int(np.prod(v.shape)) for v in tfsparse.finalize(model).trainable_weights)
                 for name, model in (("dense", dense), ("pruned", pruned))}
    removed_bytes = 4 * (trainable["dense"] - trainable["pruned"])  # float32 router columns and expert slices
    assert removed_bytes > 0 and sizes["dense"] - sizes["pruned"] >= 0.9 * removed_bytes


def test_keeping_top_k_experts_or_fewer_is_refused():
    model = _model()
    _prune(model, {"moe_b": [0, 1, 2]})  # top_k=1: keeps 1
    with pytest.raises(ValueError, match="must keep more than top_k"):
        remove_pruned_experts(model)


def test_subclassed_models_are_returned_unchanged_and_stay_correct(tokens):
    class Wrapper(keras.Model):
        def __init__(self):
            super().__init__()
            self.moe = MoE(num_experts=4, hidden_units=8, top_k=1)

        def call(self, x):
            return self.moe(x)

    model = Wrapper()
    model(tokens[:1])
    model.moe.expert_mask.assign([1.0, 0.0, 1.0, 1.0])
    assert remove_pruned_experts(model) is model


def test_command_line_export_loads_moe_models_without_importing_the_plugin(tmp_path):
    model = _model()
    _prune(model, {"moe_a": [0, 1]})
    source, output = os.path.join(tmp_path, "pruned.keras"), os.path.join(tmp_path, "pruned.tflite")
    model.save(source)
    result = subprocess.run([sys.executable, "-m", "tfsparse.cli.main", "export", f"--model={source}",
                             f"--output={output}", "--target=dense", "--json"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(output) and os.path.isfile(source)

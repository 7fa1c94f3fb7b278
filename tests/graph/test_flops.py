"""`tfsparse.flops`: MACs against hand counts, parameters against `count_params`."""

import keras
import pytest
from subclassed_model import built_subclassed_model

import tfsparse
from tfsparse.graph.cost import FlopsReport
from tfsparse.xnnpack.macs import layer_macs

L = keras.layers


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)  # 8x8 out, 3x3x3 kernel, 4 filters
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)  # 6x6x8 out
    x = L.SeparableConv2D(5, 3, name="sep")(x)  # 4x4x5 out from 8 channels
    x = L.Conv2DTranspose(2, 3, strides=2, name="up")(x)  # 4x4 in -> 9x9x2
    x = L.Reshape((81, 2))(x)
    x = L.Dense(3, name="rows")(x)  # 81 positions
    x = L.Conv1D(4, 3, name="conv1d")(x)  # 79x4 out
    x = L.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, L.Dense(2, name="head")(L.Flatten()(x)))


def test_macs_and_params_of_a_tiny_model_match_a_hand_count():
    report = tfsparse.flops(_tiny_model())
    expected = {
        "conv": 8 * 8 * 9 * 3 * 4,
        "dw": 6 * 6 * 9 * 4 * 2,
        "sep": 4 * 4 * 9 * 8 + 4 * 4 * 8 * 5,
        "up": 4 * 4 * 9 * 5 * 2,
        "rows": 81 * 2 * 3,
        "conv1d": 79 * 3 * 3 * 4,
        "head": 79 * 4 * 2,
    }
    assert report.per_layer == expected
    assert list(report.per_layer) == list(expected)  # graph order
    assert report.macs == sum(expected.values()) == 16698
    params = (3 * 3 * 3 * 4 + 4) + (9 * 4 * 2 + 8) + (9 * 8 + 8 * 5 + 5) + (9 * 5 * 2 + 2) + (2 * 3 + 3) \
        + (3 * 3 * 4 + 4) + 4 * 4 + (316 * 2 + 2)
    assert report.params == params == _tiny_model().count_params()


@pytest.mark.parametrize("layer, input_shape, expected", [
    (L.Conv3D(2, (1, 2, 3)), (4, 5, 6, 3), 4 * 4 * 4 * 6 * 3 * 2),
    (L.Conv2D(6, 3, groups=3), (5, 5, 6), 3 * 3 * 9 * 2 * 6),
    (L.Conv1DTranspose(3, 2, strides=2), (5, 4), 5 * 2 * 4 * 3),
    (L.Conv3DTranspose(2, 2), (2, 2, 2, 3), 8 * 8 * 3 * 2),
    (L.DepthwiseConv1D(3, depth_multiplier=2), (10, 4), 8 * 3 * 4 * 2),
    (L.SeparableConv1D(5, 3, depth_multiplier=2), (10, 4), 8 * 3 * 4 * 2 + 8 * 8 * 5),
    (L.Dense(3), (2, 5, 4), 2 * 5 * 4 * 3),
    (L.Conv2D(4, 3, padding="same", strides=2), (7, 7, 2), 4 * 4 * 9 * 2 * 4),
], ids=lambda value: type(value).__name__ if isinstance(value, L.Layer) else None)
def test_macs_of_each_layer_type(layer, input_shape, expected):
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    report = tfsparse.flops(model)
    assert report.per_layer == {layer.name: expected}
    assert report.params == model.count_params()


def test_layers_without_arithmetic_are_left_out():
    inputs = keras.Input((6, 6, 3))
    x = L.BatchNormalization()(L.MaxPooling2D()(L.ReLU()(inputs)))
    x = L.Add()([x, L.LayerNormalization()(x)])
    report = tfsparse.flops(keras.Model(inputs, L.GlobalAveragePooling2D()(x)))
    assert report.macs == 0 and report.per_layer == {}
    assert report.params == 4 * 3 + 2 * 3


def test_nested_models_shared_layers_and_variables():
    shared = L.Dense(4, name="shared")
    backbone_in = keras.Input((8, 8, 3))
    backbone = keras.Model(backbone_in, L.Conv2D(6, 1, name="conv")(backbone_in), name="backbone")
    neck = keras.Sequential([keras.Input((6,)), shared, L.ReLU()], name="neck")
    inputs = keras.Input((8, 8, 3))
    features = L.GlobalAveragePooling2D()(backbone(inputs))
    x = neck(features)
    x = L.Dense(6, name="widen")(x)
    x = shared(x)  # the same kernel again: its MACs count twice, its weights once
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    report = tfsparse.flops(model)
    assert report.per_layer == {"backbone/conv": 64 * 3 * 6, "neck/shared": 6 * 4, "widen": 4 * 6, "shared": 6 * 4,
                                "head": 4 * 2}
    assert report.params == model.count_params() == (3 * 6 + 6) + (6 * 4 + 4) + (4 * 6 + 6) + (4 * 2 + 2)


def test_sequential_grown_with_add_counts_each_call_once():
    model = keras.Sequential([keras.Input((4,))])
    model.add(L.Dense(3, name="a"))
    model.add(L.Dense(2, name="b"))
    assert tfsparse.flops(model).per_layer == {"a": 12, "b": 6}


def test_params_include_non_trainable_weights():
    model = _tiny_model()
    model.get_layer("conv").trainable = False
    report = tfsparse.flops(model)
    assert report.params == model.count_params()
    assert sum(int(w.numpy().size) for w in model.non_trainable_weights) > 4 * 2  # frozen conv + BN statistics


def test_mobilenet_v2_and_v1_match_published_macs():
    v2 = keras.applications.MobileNetV2(weights=None)
    report = tfsparse.flops(v2)
    assert report.macs == pytest.approx(300e6, rel=0.01)  # "300M multiply-adds" (Sandler et al. 2018, table 4)
    assert report.params == v2.count_params()
    v1 = keras.applications.MobileNet(weights=None)
    assert tfsparse.flops(v1).macs == pytest.approx(569e6, rel=0.01)  # Howard et al. 2017, table 8


def test_agrees_with_the_planners_layer_macs_where_both_count():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)
    report = tfsparse.flops(model)
    assert report.per_layer == {layer.name: layer_macs(layer) for layer in model.layers if layer_macs(layer)}
    inputs = keras.Input((4, 4, 4, 2))
    conv3d = L.Conv3D(2, 1)
    keras.Model(inputs, conv3d(inputs))
    assert layer_macs(conv3d) == 0  # the planner's count is unchanged: it never counted 3D convolutions


def test_report_prints_and_serializes():
    report = tfsparse.flops(_tiny_model())
    assert isinstance(report, FlopsReport) and tfsparse.flops is tfsparse.graph.flops
    assert str(report) == "16.70 K MACs, 1.10 K params"
    assert report.to_dict() == {"macs": report.macs, "params": report.params, "per_layer": report.per_layer}
    with pytest.raises(AttributeError):
        report.macs = 0


def test_rejects_subclassed_and_unbuilt_models():
    model = built_subclassed_model()
    with pytest.raises(ValueError, match="subclassed model"):
        tfsparse.flops(model)
    with pytest.raises(ValueError, match="not built"):
        tfsparse.flops(keras.Sequential([L.Dense(2)]))

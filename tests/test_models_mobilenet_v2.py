"""The MobileNet-V2-style builder: shape, MACs, residuals, XNNPACK eligibility."""

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse import masks
from tfsparse.model_source import load_builder, load_model_source
from tfsparse.strategies.gmp import keep_largest
from tfsparse.xnnpack.macs import layer_macs

SOURCE = "models/mobilenet_v2.py"


def _build(**kwargs):
    return load_model_source(f"{SOURCE}:mobilenet_v2", **kwargs)


def _pointwise(model):
    return load_builder(f"{SOURCE}:pointwise_layers")(model)


def test_output_shape_and_default_input():
    model = _build(input_shape=(64, 64, 3), num_classes=7, width=0.35)
    assert model.output_shape == (None, 7)
    default = load_builder(f"{SOURCE}:mobilenet_v2")()
    assert (default.input_shape, default.output_shape) == ((None, 224, 224, 3), (None, 1000))


def test_one_by_one_macs_share_matches_published_mobilenet_v2():
    # Published: the 1x1 convolutions hold 89.1% of MobileNet v2's MACs (V1: 94.9%). This builder has the
    # Keras MobileNetV2 1.0 layer sizes (3.54M parameters, 300.8M MACs counted over conv and dense layers),
    # so the share lands within a fraction of a point: 267.9M / 300.8M = 0.891.
    model = _build(input_shape=(224, 224, 3), num_classes=1000, width=1.0)
    assert model.count_params() == 3_538_984  # keras.applications.MobileNetV2(alpha=1.0) has the same count
    pointwise = set(_pointwise(model))
    assert len(pointwise) == 34  # 16 expansions + 17 projections + the head
    assert all(isinstance(model.get_layer(name), keras.layers.Conv2D)
               and tuple(model.get_layer(name).kernel_size) == (1, 1) for name in pointwise)
    total = sum(layer_macs(layer) for layer in model.layers)
    share = sum(layer_macs(model.get_layer(name)) for name in pointwise) / total
    assert total == pytest.approx(300.8e6, rel=0.005)
    assert share == pytest.approx(0.891, abs=0.02)


def test_residual_adds_where_stride_one_and_channels_match():
    model = _build(input_shape=(224, 224, 3), num_classes=10, width=1.0)
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    # n - 1 repeats of every (t, c, n, s) row: 0 + 1 + 2 + 3 + 2 + 2 + 0.
    assert len(adds) == 10
    assert "block3_add" in adds and "block2_add" not in adds


def test_stride_two_layers_pad_symmetrically_and_min_feature_size_holds():
    model = _build(input_shape=(32, 32, 3), num_classes=10, width=0.35)
    stride_two = [layer for layer in model.layers
                  if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and layer.strides == (2, 2)]
    assert stride_two and all(layer.padding == "valid" for layer in stride_two)
    assert model.get_layer("head_pw").output.shape[1:3] == (2, 2)


def test_rejects_non_rgb_inputs():
    with pytest.raises(ValueError, match="stem over 3 channels"):
        _build(input_shape=(32, 32, 1))


def test_pruned_export_passes_the_xnnpack_linter(tmp_path):
    model = _build(input_shape=(64, 64, 3), num_classes=10, width=0.35)
    for weight in tfsparse.select_weights(model, layers=_pointwise(model)):
        masks.attach(weight.variable)
        value = weight.variable.numpy()
        masks.set_mask(weight.variable, keep_largest(value, value.size - round(0.9 * value.size)))
    path = str(tmp_path / "v2.tflite")
    result = tfsparse.export(model, path, target="xnnpack", verify=False)
    assert result.sparse_tensors
    report = tfsparse.xnnpack.lint(path)
    assert report.fires, report.reasons
    assert report.pooled_sparsity == pytest.approx(0.9, abs=0.01)
    assert any(v.op == "ADD" and v.role == "elementwise" and not v.problems for v in report.ops)
    assert np.isfinite(model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)).all()

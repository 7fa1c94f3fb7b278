"""The Keras-model planner `tfsparse.xnnpack.check`: roles, reasons, Amdahl bound."""

import json
import warnings

import keras
import pytest
from xnnpack_variants import (mobilenet_v1, mobilenet_v1_folded_mean, mobilenet_v2_style, one_channel_stem,
                              prune_1x1, same_padding_v1)

import tfsparse
from tfsparse.model_source import load_model_source
from tfsparse.xnnpack import check, lint
from tfsparse.xnnpack.macs import amdahl_bound, layer_macs

L = keras.layers


def test_eligible_mobilenet_v1_roles_and_sparse_layers():
    model = mobilenet_v1()
    report = check(model, sparsity=0.9)
    assert report.eligible and report.fires and report.reasons == []
    assert report.sparse_layers == [f"block{i}_pw" for i in range(1, 7)]
    roles = {plan.name: plan.role for plan in report.layers}
    assert roles["stem_conv"] == "stem" and roles["stem_pad"] == "before"
    assert roles["block2_pad"] == "pad" and roles["block2_dw"] == "depthwise" and roles["stem_bn"] == "folded"
    assert roles["pool"] == "pool" and roles["logits"] == "after"
    assert not any(plan.in_region for plan in report.layers if plan.role in ("before", "after"))


def test_macs_share_and_amdahl_bound_match_a_hand_count():
    model = mobilenet_v1()
    report = check(model, sparsity=0.8)
    pointwise = sum(layer_macs(model.get_layer(f"block{i}_pw")) for i in range(1, 7))
    total = sum(layer_macs(layer) for layer in model.layers)
    assert report.total_macs == total
    assert report.sparse_macs_share == pytest.approx(pointwise / total)
    assert report.amdahl_bound == pytest.approx(1 / ((1 - pointwise / total) + pointwise / total * 0.2))


def test_mobilenet_v1_at_224_matches_the_published_share():
    """1x1 convolutions are 94.9% of MobileNet v1's MACs; the bound at 90% is about 6.84x."""
    model = load_model_source("models/mobilenet_v1.py:mobilenet_v1", input_shape=(224, 224, 3), num_classes=1000)
    report = check(model, sparsity=0.9)
    assert report.sparse_macs_share == pytest.approx(0.949, abs=0.002)
    assert report.total_macs == pytest.approx(569e6, rel=0.01)
    assert report.amdahl_bound == pytest.approx(6.84, abs=0.03)
    assert report.bound_at(0.7) == pytest.approx(2.98, abs=0.02)


def test_v2_style_with_residual_adds_and_5x5_is_eligible():
    report = check(mobilenet_v2_style(), sparsity=0.9)
    assert report.fires, report.reasons
    assert {"elementwise", "depthwise", "sparse 1x1"} <= {plan.role for plan in report.layers}
    assert any(plan.type == "Add" and plan.role == "elementwise" for plan in report.layers)


def test_same_padding_on_stride_2_names_the_fix():
    report = check(same_padding_v1(), sparsity=0.9)
    assert not report.eligible and not report.fires and report.amdahl_bound == 1.0
    assert any("stem padding is (0, 1, 0, 1)" in r and "make_compatible" in r for r in report.reasons)


def test_stride_2_same_depthwise_after_a_good_stem_is_reported_with_its_padding():
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same")(L.ZeroPadding2D(1)(inputs))  # 34 -> SAME pads 0/1 on top: bad
    model = keras.Model(inputs, x)
    assert not check(model).eligible
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(inputs))
    x = L.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)
    x = L.Conv2D(32, 1)(x)
    model = keras.Model(inputs, L.GlobalAveragePooling2D()(x))
    report = check(model, sparsity=0.9)
    assert any(r.startswith("dw: stride-2 DepthwiseConv2D with padding='same' pads (0, 1, 0, 1)")
               and "ZeroPadding2D(1) + padding='valid'" in r for r in report.reasons), report.reasons


def test_one_channel_stem_says_to_replicate_to_3_channels():
    report = check(one_channel_stem(64), sparsity=0.9)
    assert any("1 input channels" in r and "3 channels" in r for r in report.reasons)


def test_a_1x1_map_at_the_pooling_is_reported():
    report = check(mobilenet_v1_folded_mean(), sparsity=0.9)
    assert not report.eligible
    assert any(r.startswith("pool:") and "2x2" in r for r in report.reasons)


def test_unsupported_layers_inside_the_region_break_it():
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(inputs))
    a = L.Conv2D(16, 1)(x)
    b = L.Conv2D(16, 3, padding="same", name="full3x3")(x)
    x = L.Concatenate(name="concat")([a, b])
    model = keras.Model(inputs, L.GlobalAveragePooling2D()(x))
    report = check(model, sparsity=0.9)
    roles = {plan.name: (plan.role, plan.problems) for plan in report.layers}
    assert roles["full3x3"][0] == "outside" and "only 1x1 stride-1" in roles["full3x3"][1][0]
    assert roles["concat"][0] == "outside" and "GlobalAveragePooling2D" in roles["concat"][1][0]
    assert not report.eligible


def test_unsupported_activation_is_reported():
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(inputs))
    x = L.Conv2D(16, 1, activation="tanh", name="pw")(x)
    report = check(keras.Model(inputs, L.GlobalAveragePooling2D()(x)), sparsity=0.9)
    assert any(r.startswith("pw: activation 'tanh'") for r in report.reasons)


def test_measured_sparsity_from_masks_decides_whether_it_fires():
    dense = check(mobilenet_v1())
    assert dense.eligible and not dense.fires and dense.sparsity == 0.0 and dense.amdahl_bound == 1.0
    assert any("2/3" in r and "policy='xnnpack'" in r for r in dense.reasons)
    pruned = check(prune_1x1(mobilenet_v1(), 0.9))
    assert pruned.fires and pruned.sparsity == pytest.approx(0.9, abs=0.01)
    assert pruned.amdahl_bound == pytest.approx(amdahl_bound(pruned.sparse_macs_share, pruned.sparsity))
    assert not check(prune_1x1(mobilenet_v1(), 0.6)).fires


@pytest.mark.parametrize("builder", [mobilenet_v1, mobilenet_v2_style, same_padding_v1, one_channel_stem,
                                     mobilenet_v1_folded_mean])
def test_planner_agrees_with_the_linter_on_the_xnnpack_export(builder, tmp_path):
    model = prune_1x1(builder(), 0.9)
    planned = check(model)
    path = tmp_path / "m.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ineligible xnnpack exports warn
        kwargs = {} if planned.fires else {"allow_ineligible": True}
        tfsparse.export(model, path, target="xnnpack", verify=False, **kwargs)
    assert planned.fires == lint(str(path)).fires, planned.reasons


def test_sequential_models_are_planned_and_subclassed_ones_refused():
    model = keras.Sequential([keras.Input((32, 32, 3)), L.ZeroPadding2D(1), L.Conv2D(8, 3, strides=2),
                              L.Conv2D(32, 1), L.GlobalAveragePooling2D(), L.Dense(2)])
    assert check(model, sparsity=0.9).fires

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional keras.Model"):
        check(Subclassed())
    with pytest.raises(ValueError, match="argument `sparsity`"):
        check(model, sparsity=1.5)


def test_report_prints_a_table_and_serializes():
    report = check(mobilenet_v1(), sparsity=0.9)
    text = str(report)
    assert "FIRES" in text and "Amdahl bound" in text and "block1_pw" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["fires"] is True and data["layers"][0]["in_region"] is False


def test_inspect_xnnpack_on_a_keras_file(tmp_path, capsys):
    from tfsparse.cli.main import main

    path = tmp_path / "v1.keras"
    mobilenet_v1().save(path)
    assert main(["tfsparse", "inspect", str(path), "--xnnpack", "--sparsity=0.9"]) == 0
    out = capsys.readouterr().out
    assert "FIRES" in out and "Amdahl bound of the speedup" in out
    assert main(["tfsparse", "inspect", str(path), "--xnnpack", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["eligible"] is True
    assert main(["tfsparse", "inspect", str(path), "--sparsity=0.9"]) == 1
    assert "only applies with --xnnpack" in capsys.readouterr().err


def test_a_model_without_convolutions_has_no_region():
    model = keras.Sequential([keras.Input((16,)), L.Dense(8), L.Dense(2)])
    report = check(model, sparsity=0.9)
    assert not report.eligible and report.sparse_layers == [] and report.amdahl_bound == 1.0
    assert report.reasons == ["no Conv2D: there is no region XNNPACK could run sparse"]
    assert all(plan.role == "before" for plan in report.layers)

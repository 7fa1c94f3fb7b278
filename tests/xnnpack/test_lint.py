"""The .tflite linter's predicted verdicts on model variants (no emulator needed)."""

import keras
import numpy as np
import pytest
from xnnpack_variants import (export_even_if_ineligible, mobilenet_v1, mobilenet_v1_folded_mean, mobilenet_v2_style,
                              prune_1x1, same_padding_v1)

import tfsparse
from tfsparse.model_source import load_model_source
from tfsparse.xnnpack import lint

L = keras.layers


def _export(model, tmp_path, target, sparsity=0.9, **kwargs):
    path = tmp_path / f"{model.name}_{target}.tflite"
    export_even_if_ineligible(prune_1x1(model, sparsity), path, target, **kwargs)
    return lint(str(path))


def test_default_mobilenet_v1_at_32x32_keeps_a_2x2_map_and_fires(tmp_path):
    model = load_model_source("models/mobilenet_v1.py:mobilenet_v1", input_shape=(32, 32, 3), num_classes=10, width=0.25)
    assert model.get_layer("block13_pw").output.shape[1:3] == (2, 2)
    assert _export(model, tmp_path, "xnnpack").fires


def test_eligible_mobilenet_v1_fires(tmp_path):
    report = _export(mobilenet_v1(), tmp_path, "xnnpack")
    assert report.fires, report.reasons
    roles = {v.role for v in report.ops}
    assert {"stem", "sparse 1x1", "depthwise", "pool"} <= roles
    assert report.pooled_sparsity == pytest.approx(0.9, abs=0.01)
    assert "FIRES" in str(report) and report.to_dict()["fires"] is True


def test_eligible_mobilenet_v2_style_with_adds_and_5x5_fires(tmp_path):
    report = _export(mobilenet_v2_style(), tmp_path, "xnnpack")
    assert report.fires, report.reasons
    assert any(v.op == "ADD" for v in report.ops)


def test_same_padding_on_stride_2_does_not_fire(tmp_path):
    report = _export(same_padding_v1(), tmp_path, "xnnpack")
    assert not report.fires
    assert any("stem padding is (0, 1, 0, 1)" in r and "ZeroPadding2D(1)" in r for r in report.reasons)


def test_dynamic_batch_does_not_fire(tmp_path):
    report = _export(mobilenet_v1(), tmp_path, "sparse")
    assert not report.fires and any("static batch of 1" in r for r in report.reasons)


def test_int8_does_not_fire(tmp_path):
    x = np.random.default_rng(0).random((16, 64, 64, 3), dtype=np.float32)
    report = _export(mobilenet_v1(), tmp_path, "int8", representative_data=x)
    assert not report.fires and any("INT8" in r for r in report.reasons)


def test_60_percent_sparse_is_below_the_pooled_two_thirds(tmp_path):
    report = _export(mobilenet_v1(), tmp_path, "xnnpack", sparsity=0.6)
    assert not report.fires and any("2/3" in r for r in report.reasons)


def test_stem_on_one_channel_does_not_fire(tmp_path):
    report = _export(mobilenet_v1(channels=1), tmp_path, "xnnpack")
    assert not report.fires and any("1 input channels" in r for r in report.reasons)


def test_zeros_without_sparse_encoding_do_not_fire(tmp_path):
    report = _export(mobilenet_v1(), tmp_path, "dense")
    assert not report.fires and any("no sparse-encoded weights" in r for r in report.reasons)


def test_final_1x1_feature_map_folds_the_mean_away(tmp_path):
    """At 32x32 the last blocks are 1x1 spatial: the converter drops the MEAN, so no region end."""
    report = _export(mobilenet_v1_folded_mean(), tmp_path, "xnnpack")
    assert not report.fires and any("never ends" in r for r in report.reasons)


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all", None])
def test_bad_files_give_clear_errors(tmp_path, content):
    path = tmp_path / "bad.tflite"
    if content is None:  # truncated real file
        model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
        tfsparse.export(model, path, target="dense", verify=False)
        path.write_bytes(path.read_bytes()[:40])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="cannot be parsed"):
        lint(str(path))
    with pytest.raises(ValueError, match="does not exist"):
        lint(str(tmp_path / "missing.tflite"))


def test_inspect_xnnpack_cli(tmp_path, capsys):
    from tfsparse.cli.main import main

    path = tmp_path / "v1.tflite"
    tfsparse.export(prune_1x1(mobilenet_v1(), 0.9), path, target="xnnpack", verify=False)
    assert main(["tfsparse", "inspect", str(path), "--xnnpack"]) == 0
    assert "FIRES" in capsys.readouterr().out


# ---------------------------------------------------------------- prediction = observation
def _int8_kwargs():
    return {"representative_data": np.random.default_rng(0).random((16, 64, 64, 3), dtype=np.float32)}


VARIANTS = {
    "eligible_v1": (mobilenet_v1, "xnnpack", 0.9, dict),
    "eligible_v2_adds_5x5": (mobilenet_v2_style, "xnnpack", 0.9, dict),
    "same_padding_stride_2": (same_padding_v1, "xnnpack", 0.9, dict),
    "dynamic_batch": (mobilenet_v1, "sparse", 0.9, dict),
    "int8": (mobilenet_v1, "int8", 0.9, _int8_kwargs),
    "only_60_percent_sparse": (mobilenet_v1, "xnnpack", 0.6, dict),
    "stem_on_1_channel": (lambda: mobilenet_v1(channels=1), "xnnpack", 0.9, dict),
    "zeros_without_sparse_encoding": (mobilenet_v1, "dense", 0.9, dict),
    "mean_folded_at_1x1": (mobilenet_v1_folded_mean, "xnnpack", 0.9, dict),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_prediction_equals_emulated_observation(variant, tmp_path, emulator_ready):
    from tfsparse.emulator import observe

    builder, target, sparsity, kwargs = VARIANTS[variant]
    path = tmp_path / f"{variant}.tflite"
    export_even_if_ineligible(prune_1x1(builder(), sparsity), path, target, **kwargs())
    predicted = lint(str(path))
    observed = observe(str(path))
    assert predicted.fires == observed.fired, f"lint: {predicted.reasons}; observed: {observed}"
    assert predicted.fires == (variant.startswith("eligible"))

"""The N:M pattern (`tfsparse.nm`) and `tfsparse inspect --nm` on .keras and .tflite files."""

import json

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.cli.main import main
from tfsparse.nm import check, nm_mask, parse_nm, reduction_axis, violations


def _brute_force_mask(values, n, m, axis):
    """Reference: loop over every block, keep its n largest magnitudes."""
    moved = np.moveaxis(values, axis, -1)
    mask = np.zeros(moved.shape, dtype=np.float32)
    for index in np.ndindex(*moved.shape[:-1]):
        row = moved[index]
        for start in range(0, row.size, m):
            block = np.abs(row[start:start + m])
            keep = np.argsort(-block, kind="stable")[:n]
            mask[index + (start + keep,)] = 1.0
    return np.moveaxis(mask, -1, axis)


@pytest.mark.parametrize("shape,axis,n,m", [((8, 3), 0, 2, 4), ((3, 3, 8, 5), 2, 1, 4), ((2, 7), 1, 2, 4),
                                            ((16, 2), 0, 3, 8)])
def test_nm_mask_keeps_n_largest_of_every_block(shape, axis, n, m):
    values = np.random.default_rng(1).normal(size=shape)
    mask = nm_mask(values, n, m, axis)
    np.testing.assert_array_equal(mask, _brute_force_mask(values, n, m, axis))
    assert violations(values * mask, n, m, axis)[0] == 0
    assert violations(values, n, m, axis)[0] == violations(values, n, m, axis)[1]  # dense: every block > n


def test_violations_counts_blocks_along_the_axis_and_pads_the_tail():
    w = np.zeros((6, 2))
    w[0:3, 0] = 1.0  # 3 non-zeros in the first block of column 0
    w[4:6, 1] = 1.0  # 2 in the partial tail block of column 1
    assert violations(w, 2, 4, axis=0) == (1, 4)  # 2 columns x 2 blocks (6 padded to 8)
    assert violations(w.T, 2, 4, axis=1) == (1, 4)
    w[4:6, 0] = 1.0
    w[5, 1] = 0.0
    assert violations(w, 1, 4, axis=0) == (2, 4)  # column 0: 3 and 2 non-zeros; column 1: 0 and 1


@pytest.mark.parametrize("text,expected", [("2:4", (2, 4)), (" 1 : 8 ", (1, 8)), ("3:4", (3, 4))])
def test_parse_nm(text, expected):
    assert parse_nm(text) == expected


@pytest.mark.parametrize("text,match", [("4:4", r"Expected 1 <= n < m.*Received: n=4, m=4"),
                                        ("0:4", "Received: n=0, m=4"), ("2", "Expected `N:M`"),
                                        ("a:b", "Received: nm='a:b'"), ("2:4:8", "Expected `N:M`")])
def test_parse_nm_rejects_bad_text(text, match):
    with pytest.raises(ValueError, match=match):
        parse_nm(text)


def test_reduction_axes_follow_the_input_channels():
    def built(layer, shape):
        layer.build(shape)
        return layer

    cases = [
        (built(keras.layers.Dense(4), (None, 8)), "kernel", 0),
        (built(keras.layers.Conv2D(4, 3), (None, 5, 5, 8)), "kernel", 2),
        (built(keras.layers.Conv1D(4, 3), (None, 5, 8)), "kernel", 1),
        (built(keras.layers.Conv2DTranspose(4, 3), (None, 5, 5, 8)), "kernel", 3),  # (kh, kw, out, in)
        (built(keras.layers.SeparableConv2D(4, 3), (None, 5, 5, 8)), "pointwise_kernel", 2),
        (built(keras.layers.SeparableConv2D(4, 3), (None, 5, 5, 8)), "depthwise_kernel", None),
        (built(keras.layers.DepthwiseConv2D(3), (None, 5, 5, 8)), "kernel", None),
        (built(keras.layers.Embedding(10, 4), (None, 3)), "embeddings", None),
        (built(keras.layers.EinsumDense("abc,cde->abde", (3, 2, 4)), (None, 3, 8)), "kernel", 0),
        (built(keras.layers.EinsumDense("abcd,cde->abe", (3, 4)), (None, 3, 2, 8)), "kernel", None),
    ]
    for layer, attribute, axis in cases:
        assert reduction_axis(layer, getattr(layer, attribute)) == axis, (layer.name, attribute)


def _nm_model():
    """A CNN whose Conv2D and Dense kernels are exactly 2:4 (no training)."""
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="fc")(x))
    for layer, axis in ((model.get_layer("conv"), 2), (model.get_layer("fc"), 0)):
        kernel = layer.kernel.numpy()
        layer.kernel.assign(kernel * nm_mask(kernel, 2, 4, axis))
    return model


def test_keras_check_passes_and_finds_a_planted_violation(tmp_path):
    model = _nm_model()
    path = tmp_path / "nm.keras"
    model.save(path)
    report = check(path, n=2, m=4)
    assert report.ok and [t.name.split("/")[-2] for t in report.tensors] == ["conv", "fc"]
    assert [name.split("/")[-2] for name, _ in report.skipped] == ["dw"]
    assert report.tensors[1].blocks == 32 // 4 * 3 and report.tensors[1].axis == 0

    kernel = model.get_layer("fc").kernel.numpy()
    kernel[4:8, 1] = 1.0  # one dense block of 4 input channels for output 1
    model.get_layer("fc").kernel.assign(kernel)
    model.save(path)
    report = check(path, n=2, m=4)
    assert not report.ok
    assert [(t.name.split("/")[-2], t.violating) for t in report.violations] == [("fc", 1)]
    assert check(path, n=3, m=4).ok is False and check(path, n=1, m=2).ok is False
    text = str(report)
    assert "VIOLATED: 1 of 2 weights are not 2:4" in text and "do not accelerate N:M" in text


def test_tflite_check_uses_the_tflite_layout_and_names_the_violating_tensor(tmp_path):
    model = _nm_model()
    clean = tmp_path / "clean.tflite"
    tfsparse.export(model, clean, target="dense", verify=False)
    report = check(clean, n=2, m=4)
    assert report.ok and sorted(t.op.split()[0] for t in report.tensors) == ["CONV_2D", "FULLY_CONNECTED"]
    fc = next(t for t in report.tensors if t.op.startswith("FULLY_CONNECTED"))
    assert fc.shape == (3, 32) and fc.axis == 1  # (out, in): blocks along the innermost axis
    assert [reason.split()[0] for _, reason in report.skipped] == ["DEPTHWISE_CONV_2D"]

    kernel = model.get_layer("conv").kernel.numpy()
    kernel[1, 1, 0:4, 5] = 1.0  # input channels 0..3 of output 5 at one tap: a 4:4 block
    model.get_layer("conv").kernel.assign(kernel)
    planted = tmp_path / "planted.tflite"
    tfsparse.export(model, planted, target="dense", verify=False)
    report = check(planted, n=2, m=4)
    assert not report.ok and [(t.op.split()[0], t.violating) for t in report.violations] == [("CONV_2D", 1)]
    assert "conv" in report.violations[0].name and report.violations[0].name in str(report)


def test_tflite_check_decodes_sparse_encoded_weights(tmp_path):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, name="fc")])
    kernel = model.layers[0].kernel.numpy()
    model.layers[0].kernel.assign(kernel * nm_mask(kernel, 1, 4, 0))
    path = tmp_path / "sparse.tflite"
    tfsparse.export(model, path, target="sparse", verify=False)
    assert tfsparse.inspect_tflite(path).sparse_tensors  # the weight really is sparse-encoded
    assert check(path, n=1, m=4).ok
    assert [t.violating for t in check(path, n=1, m=8).tensors] == [64 * 8]


def test_check_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="Expected a `.keras` or `.tflite`"):
        check(tmp_path / "model.h5")
    with pytest.raises(ValueError, match="does not exist"):
        check(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match=r"Expected 1 <= n < m.*Received: n=4, m=4"):
        check(_nm_model(), n=4, m=4)


def test_cli_inspect_nm(tmp_path, capsys):
    model = _nm_model()
    model.save(tmp_path / "clean.keras")
    kernel = model.get_layer("fc").kernel.numpy()
    kernel[0:4, 0] = 1.0
    model.get_layer("fc").kernel.assign(kernel)
    path = tmp_path / "planted.keras"
    model.save(path)

    def run(*args, path=path):
        status = main(["tfsparse", "inspect", str(path), *args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    status, out, _ = run("--nm=2:4")
    assert status == 0 and "VIOLATED: 1 of 2" in out
    violating = [line for line in out.splitlines() if "VIOLATES" in line]
    assert len(violating) == 1 and "fc/kernel" in violating[0] and "1/24" in violating[0]
    status, out, _ = run("--nm=2:4", "--json")
    result = json.loads(out)
    assert status == 0 and result["ok"] is False and result["nm"] == "2:4"
    assert [name.split("/")[-2] for name in result["violations"]] == ["fc"]
    status, out, _ = run("--nm=2:4", path=tmp_path / "clean.keras")
    assert status == 0 and "OK: all 2 weights are 2:4" in out and "VIOLATES" not in out
    status, _, err = run("--nm=4:4")
    assert status == 1 and "Expected 1 <= n < m" in err
    status, _, err = run("--nm=2:4", "--xnnpack")
    assert status == 1 and "separate checks" in err
    status, out, _ = run()  # without --nm: the usual sparsity table
    assert status == 0 and "TOTAL" in out

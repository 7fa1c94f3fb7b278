"""The FULLY_CONNECTED linter's predicted kernels and reasons on converted MLP variants (no emulator needed).

Kernels are masked by hand with numpy; the files come from TF's converter
directly (so the hybrid and per-channel cases, which tfsparse's targets do
not write, are covered too) and from `tfsparse.export`.
"""

import dataclasses
import json

import numpy as np
import pytest

import tfsparse
from tfsparse.sparse_fc import RUNTIMES, FcFacts, Runtime, lint, predict, zeros_in_aligned_blocks
from tfsparse.sparse_fc import kernels as K
from tfsparse.xnnpack.tflite_graph import TfliteGraph


@pytest.fixture(scope="module")
def files(fc, module_tmp):
    """`{variant: .tflite bytes}`, converted once for the module."""
    x = fc.inputs()
    out = {}
    out["fp32_1x4"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 4, 0.9), module_tmp, "float32")
    out["fp32_mixed"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 4, 0.9, layers=(0,)), module_tmp, "float32")
    out["fp32_random"] = fc.convert(fc.mask_random(fc.make_mlp(), 0.9), module_tmp, "float32")
    out["fp32_shift2_70"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 4, 0.7, shift=2), module_tmp, "float32")
    out["fp32_shift2_95"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 4, 0.95, shift=2), module_tmp, "float32")
    out["fp32_below"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 4, 0.2), module_tmp, "float32")
    out["int8_1x16_channel"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 16, 0.9), module_tmp, "int8", x=x)
    out["int8_1x16_tensor"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 16, 0.9), module_tmp, "int8", x=x,
                                         per_tensor=True)
    out["int8_1x4"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 4, 0.9), module_tmp, "int8", x=x)
    out["hybrid_1x16"] = fc.convert(fc.mask_blocks(fc.make_mlp(), 16, 0.9), module_tmp, "hybrid")
    return out


def _kernels(report):
    return [v.kernel for v in report.ops]


def test_float32_aligned_1x4_blocks_run_the_1x4_kernel(files):
    report = lint(files["fp32_1x4"])
    assert report.fires and report.path == "<bytes>" and report.runtime is RUNTIMES["tflite-runtime-2.14-aarch64"]
    assert _kernels(report) == [K.BUILTIN_SPARSE_1X4, K.BUILTIN_SPARSE_1X4, K.BUILTIN_DENSE]
    first, _, last = report.ops
    assert (first.version, first.encoding, first.block, first.dtype) == (8, "block-sparse", 4, "float32")
    assert first.shape == (64, 128) and first.reasons == [] and first.sparse
    assert first.sparsity == pytest.approx(0.9, abs=0.03) and first.zeros_in_blocks == 1.0
    # the classifier is dense, but the shared op code is version 8: XNNPACK refuses it too
    assert last.version == 8 and last.encoding == "dense" and not last.sparse
    assert last.reasons[0].startswith("below 30% zeros (0.0%)")
    assert "version 8" in last.reasons[1] and "XNNPACK refuse" in last.reasons[1]
    assert last.reasons[1].endswith("it runs the builtin dense kernel")
    assert report.count(K.BUILTIN_SPARSE_1X4) == 2 and report.count(K.XNNPACK_DENSE) == 0


def test_mixed_file_dense_layer_loses_xnnpack(files):
    report = lint(files["fp32_mixed"])
    assert _kernels(report) == [K.BUILTIN_SPARSE_1X4, K.BUILTIN_DENSE, K.BUILTIN_DENSE]
    hidden = report.ops[1]
    assert hidden.shape == (32, 64) and hidden.sparsity == 0.0 and hidden.version == 8
    assert any("FULLY_CONNECTED version 8" in r and "XNNPACK refuse" in r for r in hidden.reasons)


def test_unstructured_mask_gets_densify_and_xnnpack(files):
    report = lint(files["fp32_random"])
    assert not report.fires
    assert _kernels(report) == [K.XNNPACK_DENSE] * 3
    first = report.ops[0]
    assert first.encoding == "densify" and first.version == 1
    # a zero's 3 block neighbours are all zero with probability 0.9 ** 3
    assert first.zeros_in_blocks == pytest.approx(0.9 ** 3, abs=0.05)
    reason = first.reasons[0]
    assert reason.startswith("DENSIFY: the converter did not find aligned 1x4 blocks (")
    assert f"{first.zeros_in_blocks:.0%} of its zeros lie in aligned 1x4 blocks" in reason
    assert "more than 90%" in reason and "GMP(block_shape=(1, 4))" in reason
    assert len(first.reasons) == 1  # delegated to XNNPACK: nothing else to say
    assert report.reasons[0].startswith("op 1 (") and "DENSIFY" in report.reasons[0]


def test_unaligned_blocks(files):
    # shifted by 2 rows at 70%: only ~half the zeros fill aligned blocks, under the converter's 90%
    report = lint(files["fp32_shift2_70"])
    assert _kernels(report)[:2] == [K.XNNPACK_DENSE] * 2
    assert report.ops[0].encoding == "densify" and report.ops[0].zeros_in_blocks < 0.9
    assert "did not find aligned 1x4 blocks" in report.ops[0].reasons[0]
    # at 95% an aligned block is empty when both blocks it straddles are: 0.95 ** 2 / 0.95 = 95% of the zeros,
    # over the converter's 90%: it blocks the weight, and the stored blocks carry the other zeros
    report = lint(files["fp32_shift2_95"])
    assert _kernels(report)[:2] == [K.BUILTIN_SPARSE_1X4] * 2
    note = report.ops[0].notes[0]
    assert "of the stored values are zeros: the mask is not aligned" in note
    assert float(note.split("%")[0]) > 40
    assert report.ops[0].zeros_in_blocks == pytest.approx(0.95, abs=0.03)


def test_below_30_percent(files):
    report = lint(files["fp32_below"])
    assert _kernels(report) == [K.XNNPACK_DENSE] * 3 and not report.fires
    first = report.ops[0]
    assert first.encoding == "dense" and first.zeros_in_blocks == 1.0
    assert first.reasons[0].startswith(f"below 30% zeros ({first.sparsity:.1%})")


def test_int8_1x16_per_tensor_runs_the_1x16_kernel(files):
    report = lint(files["int8_1x16_tensor"])
    assert _kernels(report) == [K.BUILTIN_SPARSE_1X16, K.BUILTIN_SPARSE_1X16, K.BUILTIN_DENSE]
    first, _, last = report.ops
    assert (first.dtype, first.input_dtype, first.block, first.version) == ("int8", "int8", 16, 8)
    assert any("XNNPACK delegates no int8 op" in r for r in last.reasons)


def test_int8_per_channel_1x16_is_unsupported_on_tflite_runtime_2_14(files):
    report = lint(files["int8_1x16_channel"])
    assert _kernels(report)[:2] == [K.UNSUPPORTED] * 2 and not report.fires
    reason = report.ops[0].reasons[0]
    assert reason.startswith("per-channel weight scales (64)") and "outputs are wrong" in reason
    assert "target='sparse-fc-int8'" in reason
    # a runtime whose 1x16 kernel honours per-channel scales (as LiteRT's current source does) runs it
    fixed = dataclasses.replace(RUNTIMES["tflite-runtime-2.14-aarch64"], name="per-channel", sparse_int8_per_channel=True)
    assert _kernels(lint(files["int8_1x16_channel"], runtime=fixed))[:2] == [K.BUILTIN_SPARSE_1X16] * 2


def test_int8_needs_1x16_blocks(files):
    report = lint(files["int8_1x4"])
    assert _kernels(report) == [K.BUILTIN_DENSE] * 3
    first = report.ops[0]
    assert first.encoding == "densify" and first.version == 4 and first.block is None
    assert first.reasons[0].startswith("DENSIFY: the converter did not find aligned 1x16 blocks")
    assert "int8 needs 1x16 blocks" in first.reasons[0] and "more than 80%" in first.reasons[0]
    assert "tflite-runtime 2.14's XNNPACK delegates no int8 op" in first.reasons[1]


def test_hybrid_version_12_is_unsupported(files):
    report = lint(files["hybrid_1x16"])
    assert _kernels(report) == [K.UNSUPPORTED] * 3
    first = report.ops[0]
    assert (first.version, first.dtype, first.input_dtype, first.encoding) == (12, "int8", "float32", "block-sparse")
    assert first.reasons[0].startswith("version 12 (dynamic-range \"hybrid\" quantization")
    assert "not supported by tflite-runtime 2.14" in first.reasons[0]
    newer = dataclasses.replace(RUNTIMES["tflite-runtime-2.14-aarch64"], name="v12", max_fc_version=12)
    assert _kernels(lint(files["hybrid_1x16"], runtime=newer))[:2] == [K.BUILTIN_SPARSE_1X16] * 2


def test_tfsparse_export_targets_are_linted_the_same(fc, tmp_path):
    model = fc.mask_blocks(fc.make_mlp(), 4, 0.9)
    path = tmp_path / "m.tflite"
    tfsparse.export(model, path, target="sparse-fc", verify=False)
    assert _kernels(lint(path)) == [K.BUILTIN_SPARSE_1X4, K.BUILTIN_SPARSE_1X4, K.BUILTIN_DENSE]
    assert lint(str(path)).path == str(path)
    tfsparse.export(model, tmp_path / "d.tflite", target="dense", verify=False)
    dense = lint(tmp_path / "d.tflite")
    assert _kernels(dense) == [K.XNNPACK_DENSE] * 3
    reason = dense.ops[0].reasons[0]
    assert reason.startswith("stored dense with ") and "zeros in aligned 1x4 blocks" in reason
    assert "converted without tf.lite.Optimize.EXPERIMENTAL_SPARSITY" in reason and "target='sparse-fc'" in reason


def test_an_all_zero_block_sparse_weight_is_read_as_block_sparse(fc, tmp_path):
    # GMP at 90% of a kernel with only a few blocks zeroes all of them: the file stores no values for it, which the
    # runtime still runs with the 1x4 kernel (observed); it must not read as "not constant" / builtin-dense.
    model = fc.mask_blocks(fc.make_mlp(), 4, 0.9)
    last = model.layers[-1]
    last.kernel.assign(np.zeros(last.kernel.shape, "float32"))
    path = tmp_path / "zero.tflite"
    tfsparse.export(model, path, target="sparse-fc", verify=False)
    report = lint(path)
    assert _kernels(report) == [K.BUILTIN_SPARSE_1X4] * 3
    assert report.ops[-1].encoding == "block-sparse" and report.ops[-1].sparsity == 1.0


def test_report_table_and_dict(files):
    report = lint(files["fp32_mixed"])
    text = str(report)
    assert text.startswith("Block-sparse FULLY_CONNECTED kernels for <bytes>: FIRES (1 of 3 sparse)")
    assert "tflite-runtime 2.14 on aarch64" in text
    assert "block-sparse 1x4" in text and "builtin-sparse-1x4" in text and "      - below 30% zeros" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["fires"] is True and data["runtime"] == "tflite-runtime-2.14-aarch64"
    assert data["kernels"] == {"builtin-sparse-1x4": 1, "builtin-dense": 2}
    assert [op["kernel"] for op in data["ops"]] == _kernels(report) and data["ops"][0]["shape"] == [64, 128]
    assert not lint(files["fp32_random"]).fires
    assert "DOES NOT FIRE" in str(lint(files["fp32_random"]))


def test_op_version_is_read(files):
    graph = TfliteGraph.load(files["int8_1x4"])
    assert {op.name: op.version for op in graph.ops}["FULLY_CONNECTED"] == 4
    assert {op.version for op in TfliteGraph.load(files["fp32_1x4"]).ops} == {8}


def test_bad_input(tmp_path, files):
    with pytest.raises(ValueError, match=r"Invalid value received for argument `runtime`. Expected a "
                                         r"tfsparse.sparse_fc.Runtime or one of \['tflite-runtime-2.14-aarch64'\]"):
        lint(files["fp32_1x4"], runtime="litert")
    with pytest.raises(ValueError, match="The file does not exist"):
        lint(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="truncated"):
        lint(files["fp32_1x4"][:100])


def test_no_fully_connected(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3)])
    path = tmp_path / "c.tflite"
    tfsparse.export(model, path, target="dense", verify=False)
    report = lint(path)
    assert report.ops == [] and not report.fires and report.reasons == ["no FULLY_CONNECTED operator in the file"]
    assert "no FULLY_CONNECTED operator" in str(report)


# The rules on facts no converter writes (hand-made files).
RUNTIME = RUNTIMES["tflite-runtime-2.14-aarch64"]
SPARSE = dict(index=0, weight="w", shape=(8, 64), version=8, levels=("dense", "csr", "dense"), block_map=(1,),
              sparsity=0.9, zeros_in_blocks=1.0)


@pytest.mark.parametrize("facts, kernel, reason", [
    (dict(dtype="float32", input_dtype="float32", encoding="block-sparse", block=4), K.BUILTIN_SPARSE_1X4, None),
    (dict(dtype="float32", input_dtype="float32", encoding="block-sparse", block=16), K.UNSUPPORTED,
     "float32 1x16 blocks: the float kernel takes 1x4 blocks only"),
    (dict(dtype="float32", input_dtype="float32", encoding="random-sparse", levels=("dense", "csr"), block_map=()),
     K.BUILTIN_RANDOM_SPARSE, "stored sparse without blocks"),
    (dict(dtype="float32", input_dtype="float32", encoding="block-sparse", block=4, levels=("csr", "csr", "dense")),
     K.UNSUPPORTED, "sparse format csr/csr/dense"),
    (dict(dtype="float32", input_dtype="float32", encoding="block-sparse", block=4, block_map=(0,)), K.UNSUPPORTED,
     "blocks along dimension [0]"),
    (dict(dtype="int8", input_dtype="int8", encoding="block-sparse", block=16, scales=1), K.BUILTIN_SPARSE_1X16, None),
    (dict(dtype="int8", input_dtype="int8", encoding="block-sparse", block=16, scales=1, zero_points_zero=False),
     K.UNSUPPORTED, "asymmetric int8 weights"),
    (dict(dtype="int8", input_dtype="int8", encoding="block-sparse", block=4, scales=1), K.UNSUPPORTED,
     "int8 needs 1x16 blocks (stored with 1x4 blocks)"),
    (dict(dtype="int8", input_dtype="int16", encoding="block-sparse", block=16, scales=1), K.UNSUPPORTED,
     "no sparse kernel for int8 weights with int16 inputs"),
    (dict(dtype="float32", input_dtype="float32", encoding="block-sparse", block=4, activation="TANH"), K.UNSUPPORTED,
     "fused activation TANH"),
    (dict(dtype="float32", input_dtype="float32", encoding="dense", version=1, sparsity=0.0, zeros_in_blocks=None),
     K.XNNPACK_DENSE, "below 30% zeros"),
    (dict(dtype="float32", input_dtype="float32", encoding="not constant", version=1, sparsity=None,
          zeros_in_blocks=None), K.BUILTIN_DENSE, "the weight is computed at run time"),
    (dict(dtype="float16", input_dtype="float32", encoding="dense", version=1), K.XNNPACK_DENSE,
     "float16 weights: no block-sparse kernel"),
    (dict(dtype="float32", stored_dtype="float16", input_dtype="float32", encoding="densify", version=1),
     K.XNNPACK_DENSE, "stored as float16 and expanded to float32 by DEQUANTIZE"),
    (dict(dtype="float32", stored_dtype="float16", input_dtype="float32", encoding="block-sparse", block=4,
          version=1), K.UNSUPPORTED, "a DEQUANTIZE op reads the sparse-encoded float16 weight as if it were dense"),
])
def test_rules(facts, kernel, reason):
    got, reasons, _ = predict(FcFacts(**{**SPARSE, **facts}), RUNTIME)
    assert got == kernel
    if reason is None:
        assert reasons == []
    else:
        assert any(r.startswith(reason) for r in reasons), reasons


def test_runtime_without_xnnpack():
    bare = Runtime(name="bare", label="bare", description="no delegate", max_fc_version=11, xnnpack=False)
    facts = FcFacts(**{**SPARSE, "dtype": "float32", "input_dtype": "float32", "encoding": "dense", "version": 1,
                       "sparsity": 0.0, "zeros_in_blocks": None})
    kernel, reasons, _ = predict(facts, bare)
    assert kernel == K.BUILTIN_DENSE and "applies no XNNPACK delegate" in reasons[-1]


def test_zeros_in_aligned_blocks():
    w = np.ones((2, 10))
    w[0, :4] = 0  # a whole block
    w[1, 2:6] = 0  # straddles two blocks
    w[1, 8:] = 0  # the last, partial block (8, 9 + padding) counts
    assert zeros_in_aligned_blocks(w, 4) == pytest.approx(6 / 10)
    assert zeros_in_aligned_blocks(np.ones((3, 4)), 4) is None
    assert zeros_in_aligned_blocks(np.zeros((3, 32)), 16) == 1.0

"""Targets `sparse-fc` / `sparse-fc-int8`: refused unless a FULLY_CONNECTED runs TFLite's block-sparse kernel.

Kernels are masked by hand with numpy (blocks of consecutive input rows of
the Keras `[inputs, outputs]` kernel). `tfsparse.export` verifies every
written file against Keras.
"""

import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as fb

from tfsparse.cli.main import main as cli_main
from tfsparse.deploy import IneligibleError, encoding, export, inspect_tflite, targets
from tfsparse.deploy import convert as convert_module
from tfsparse.sparse_fc import kernels as K
from tfsparse.sparse_fc import lint

WIDTH = 128


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((WIDTH,)), keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)], name="mlp")


def _blocks(model, block, fraction=0.9, *, layers=(0, 1), seed=0):
    """Zeroes `fraction` of the blocks of `block` consecutive input rows of the kernels in `layers`."""
    rng = np.random.default_rng(seed)
    for i in layers:
        kernel = model.layers[i].kernel
        rows, cols = kernel.shape
        kernel.assign(kernel.numpy() * np.repeat(rng.random((rows // block, cols)) >= fraction, block, axis=0))
    return model


def _x(n=64):
    return np.random.default_rng(1).normal(size=(n, WIDTH)).astype("float32")


def _fc_weight_scales(path):
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(path.read_bytes(), 0))
    graph = model.subgraphs[0]
    scales = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == fb.BuiltinOperator.FULLY_CONNECTED:
            scales.append(len(graph.tensors[op.inputs[1]].quantization.scale))
    return scales


def test_sparse_fc_writes_a_verified_block_sparse_file(tmp_path):
    path = tmp_path / "m.tflite"
    result = export(_blocks(_mlp(), 4), path, target="sparse-fc")  # filterwarnings=error: no warning either
    assert result.target == "sparse-fc" and result.verification.passed
    assert path.stat().st_size == result.size_bytes < result.dense_fp32_bytes
    assert result.fc_lint["fires"] is True and result.fc_lint["reasons"] == []
    assert result.fc_lint["kernel"] == K.BUILTIN_SPARSE_1X4 and result.fc_lint["runtime"] == "tflite-runtime-2.14-aarch64"
    assert [op["kernel"] for op in result.fc_lint["ops"]] == [K.BUILTIN_SPARSE_1X4] * 2 + [K.BUILTIN_DENSE]
    assert [t.shape for t in inspect_tflite(path).inputs] == [(-1, WIDTH)]  # the model's own batch dimension
    assert result.xnnpack_lint is None and len(result.sparse_tensors) == 2
    data = json.loads(json.dumps(result.to_dict()))
    assert data["fc_lint"]["fires"] is True and data["fc_lint"]["ops"][0]["kernel"] == K.BUILTIN_SPARSE_1X4
    assert "sparse FC       2 of 3 FULLY_CONNECTED run builtin-sparse-1x4 on tflite-runtime-2.14-aarch64" in str(result)
    assert [v.kernel for v in lint(path).ops] == [op["kernel"] for op in result.fc_lint["ops"]]


def test_channel_shrink_is_skipped_to_keep_blocks_aligned(tmp_path):
    # 64 inputs: 16 blocks per column, so at 90% some whole output columns are zero. target='sparse' removes those
    # channels, and with them input rows of the next layer, which shifts its blocks; 'sparse-fc' keeps them
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)])
    _blocks(model, 4, layers=(0, 1))
    assert (np.abs(model.layers[0].kernel.numpy()).sum(axis=0) == 0).any()  # zero channels exist
    export(model, tmp_path / "s.tflite", target="sparse", verify=False)
    assert lint(tmp_path / "s.tflite").ops[0].shape[0] < 64
    result = export(model, tmp_path / "f.tflite", target="sparse-fc")
    ops = lint(tmp_path / "f.tflite").ops
    assert [v.shape for v in ops] == [(64, 64), (32, 64), (4, 32)]
    assert [v.kernel for v in ops] == [K.BUILTIN_SPARSE_1X4] * 2 + [K.BUILTIN_DENSE] and result.verification.passed


def test_refused_when_no_fully_connected_runs_sparse(tmp_path, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("verified a file that is refused anyway")

    monkeypatch.setattr(convert_module, "verify_tflite", must_not_run)
    model = keras.Sequential([keras.Input((WIDTH,)), keras.layers.Dense(16)])
    rng = np.random.default_rng(0)
    model.layers[0].kernel.assign(model.layers[0].kernel.numpy() * (rng.random((WIDTH, 16)) > 0.9))  # unstructured
    with pytest.raises(IneligibleError) as info:
        export(model, tmp_path / "m.tflite", target="sparse-fc")
    error = info.value
    assert isinstance(error, ValueError) and error.target == "sparse-fc" and len(error.reasons) == 1
    assert error.reasons[0].startswith("op 1 (") and "did not find aligned 1x4 blocks" in error.reasons[0]
    assert "GMP(block_shape=(1, 4))" in error.reasons[0]
    message = str(error)
    assert message.startswith("Invalid value received for argument `target`. The converted model will not run any "
                              "FULLY_CONNECTED with TFLite's builtin-sparse-1x4 kernel on tflite-runtime 2.14 (aarch64):"
                              "\n  - op ")
    assert "tfsparse inspect --fc" in message and "target='sparse' for size only" in message
    assert "allow_ineligible=True" in message and message.endswith("Received: target='sparse-fc'")
    assert os.listdir(tmp_path) == []


def test_refused_export_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"user data")
    with pytest.raises(IneligibleError, match="below 30% zeros"):
        export(_mlp(), path, target="sparse-fc", overwrite=True)
    assert path.read_bytes() == b"user data" and os.listdir(tmp_path) == ["m.tflite"]


def test_allow_ineligible_writes_and_warns(tmp_path):
    path = tmp_path / "m.tflite"
    with pytest.warns(UserWarning, match=r"(?s)Wrote .*m\.tflite with allow_ineligible=True, but no FULLY_CONNECTED "
                                         r"of it will run TFLite's builtin-sparse-1x4 kernel.*below 30% zeros") as record:
        result = export(_mlp(), path, target="sparse-fc", allow_ineligible=True)
    assert len(record) == 1 and record[0].filename == __file__
    assert path.stat().st_size == result.size_bytes and result.verification.passed
    assert result.fc_lint["fires"] is False and len(result.fc_lint["reasons"]) == 3
    assert [op["kernel"] for op in result.fc_lint["ops"]] == [K.XNNPACK_DENSE] * 3
    assert "sparse FC       will NOT run builtin-sparse-1x4: op 0" in str(result)


def test_sparse_fc_int8_writes_per_tensor_1x16_weights(tmp_path):
    path = tmp_path / "q.tflite"
    x = _x()
    result = export(_blocks(_mlp(), 16), path, target="sparse-fc-int8", representative_data=x)
    assert result.verification.passed and result.verification.quantized
    assert result.fc_lint["fires"] and result.fc_lint["kernel"] == K.BUILTIN_SPARSE_1X16
    assert [op["kernel"] for op in result.fc_lint["ops"]] == [K.BUILTIN_SPARSE_1X16] * 2 + [K.BUILTIN_DENSE]
    assert _fc_weight_scales(path) == [1, 1, 1]  # per tensor: tflite-runtime 2.14's 1x16 kernel needs it
    assert [t.dtype for t in inspect_tflite(path).inputs] == ["float32"]
    assert [t.shape for t in inspect_tflite(path).inputs] == [(-1, WIDTH)]


def test_int8_target_keeps_per_channel_weights_and_warns_about_arm(tmp_path):
    path = tmp_path / "q.tflite"
    with pytest.warns(UserWarning, match=r"(?s)tflite-runtime 2.14 on aarch64 cannot run it right.*per-channel "
                                         r"weight scales \(\d+\).*target='sparse-fc-int8'") as record:
        result = export(_blocks(_mlp(), 16), path, target="int8", representative_data=_x())
    assert record[0].filename == __file__ and result.fc_lint is None and result.verification.passed
    scales = _fc_weight_scales(path)  # one per output channel (target 'int8' also removes the zero channels)
    assert len(scales) == 3 and min(scales) > 1


def test_sparse_fc_int8_refuses_4_row_blocks(tmp_path):
    with pytest.raises(IneligibleError) as info:
        export(_blocks(_mlp(), 4), tmp_path / "q.tflite", target="sparse-fc-int8", representative_data=_x())
    error = info.value
    assert error.target == "sparse-fc-int8" and len(error.reasons) == 3
    assert "int8 needs 1x16 blocks" in error.reasons[0] and "GMP(block_shape=(1, 16))" in error.reasons[0]
    assert "builtin-sparse-1x16 kernel" in str(error) and "target='int8' for size only" in str(error)
    assert os.listdir(tmp_path) == []


def test_sparse_fc_int8_needs_representative_data(tmp_path):
    with pytest.raises(ValueError, match="to calibrate target='sparse-fc-int8'"):
        export(_blocks(_mlp(), 16), tmp_path / "q.tflite", target="sparse-fc-int8")


@pytest.mark.parametrize("target", ["sparse-fc", "sparse-fc-int8", "xnnpack"])
def test_allow_ineligible_is_valid_for_the_gated_targets(target):
    convert_module.check_allow_ineligible(True, target)
    assert targets.get_target(target).gated


@pytest.mark.parametrize("target", ["dense", "sparse", "int8"])
def test_allow_ineligible_is_refused_for_the_others(target):
    with pytest.raises(ValueError, match=r"Expected False unless target='xnnpack', 'sparse-fc' or 'sparse-fc-int8': "
                                         rf"only those targets .* for target='{target}'\. Received: allow_ineligible=True"):
        convert_module.check_allow_ineligible(True, target)


def test_targets_table():
    assert targets.GATED == ("xnnpack", "sparse-fc", "sparse-fc-int8")
    fp32, int8 = targets.get_target("sparse-fc"), targets.get_target("sparse-fc-int8")
    assert (fp32.sparse, fp32.int8, fp32.batch_size, fp32.fc_kernel) == (True, False, None, K.BUILTIN_SPARSE_1X4)
    assert (int8.int8, int8.batch_size, int8.fc_kernel, int8.per_tensor_dense) == (True, None, K.BUILTIN_SPARSE_1X16,
                                                                                 True)
    assert not targets.shrinks(fp32) and targets.shrinks(targets.get_target("sparse"))


def _tiny_plus_big(tmp_path):
    """300 -> 8 (90% unstructured zeros: CSR behind DENSIFY, much smaller sparse) -> 4 (1x4 blocks, half zero:
    block-sparse, read by FULLY_CONNECTED itself, but its 16 values cost more than its 32 dense ones)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(8), keras.layers.Dense(4)])
    rng = np.random.default_rng(0)
    big, tiny = model.layers[0].kernel, model.layers[1].kernel
    big.assign(big.numpy() * (rng.random(big.shape) > 0.9))
    tiny.assign(tiny.numpy() * np.repeat(np.array([[1, 0, 1, 0], [0, 1, 0, 1]]), 4, axis=0))
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return converter.convert()


@pytest.mark.parametrize("keep", [False, True])
def test_encoding_never_leaves_version_8_without_a_sparse_weight(tmp_path, keep):
    content = _tiny_plus_big(tmp_path)
    before = lint(content)
    assert [(v.encoding, v.version) for v in before.ops] == [("densify", 8), ("block-sparse", 8)]
    rewritten, densified = encoding.densify_where_not_smaller(content, keep_block_sparse_fc=keep)
    after = lint(rewritten)
    # storing the tiny weight dense would keep version 8 (no XNNPACK) without the 1x4 kernel: it stays sparse
    assert [v.kernel for v in after.ops] == [K.BUILTIN_DENSE, K.BUILTIN_SPARSE_1X4]
    assert not any("dense_1" in name for name in densified)


def test_a_lone_tiny_block_sparse_weight(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    kernel = model.layers[0].kernel
    kernel.assign(kernel.numpy() * np.repeat(np.array([[1, 0, 1, 0], [0, 1, 0, 1]]), 4, axis=0))
    # size only: stored dense (not smaller), and with no sparse tensor left export writes the dense conversion
    result = export(model, tmp_path / "s.tflite", target="sparse")
    assert result.sparse_tensors == () and len(result.densified_tensors) == 1
    (op,) = lint(tmp_path / "s.tflite").ops
    assert (op.version, op.kernel) == (1, K.XNNPACK_DENSE)
    # sparse-fc keeps it block-sparse: the 1x4 kernel runs it
    result = export(model, tmp_path / "f.tflite", target="sparse-fc")
    assert result.densified_tensors == {} and len(result.sparse_tensors) == 1 and result.fc_lint["fires"]
    (op,) = lint(tmp_path / "f.tflite").ops
    assert (op.version, op.kernel) == (8, K.BUILTIN_SPARSE_1X4)


def test_cli_lists_the_targets_and_inspects_fc(tmp_path, capsys):
    from tfsparse.cli import export_command

    assert set(export_command.TARGETS) == set(targets.TARGETS)
    model_path = tmp_path / "mlp.keras"
    _blocks(_mlp(), 4).save(model_path)
    output = tmp_path / "mlp.tflite"
    assert cli_main(["tfsparse", "export", f"--model={model_path}", f"--output={output}", "--target=sparse-fc"]) == 0
    assert "sparse FC" in capsys.readouterr().out and output.exists()
    assert cli_main(["tfsparse", "inspect", str(output), "--fc"]) == 0
    out = capsys.readouterr().out
    assert "Block-sparse FULLY_CONNECTED kernels for" in out and "builtin-sparse-1x4" in out
    assert cli_main(["tfsparse", "inspect", str(output), "--fc", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fires"] is True and data["kernels"] == {"builtin-sparse-1x4": 2, "builtin-dense": 1}
    assert cli_main(["tfsparse", "inspect", str(model_path), "--fc"]) == 1
    assert "--fc reads the FULLY_CONNECTED operators of a converted `.tflite`" in capsys.readouterr().err
    assert cli_main(["tfsparse", "inspect", str(output), "--fc", "--xnnpack"]) == 1
    assert "--fc is a separate check; run it without --xnnpack" in capsys.readouterr().err


def test_cli_refusal_names_the_flags(tmp_path, capsys):
    model_path = tmp_path / "dense.keras"
    _mlp().save(model_path)
    status = cli_main(["tfsparse", "export", f"--model={model_path}", f"--output={tmp_path / 'm.tflite'}",
                       "--target=sparse-fc"])
    err = capsys.readouterr().err
    assert status == 1 and "builtin-sparse-1x4 kernel" in err and "--target=sparse for size only" in err
    assert "pass --allow_ineligible" in err and not (tmp_path / "m.tflite").exists()
    x = np.random.default_rng(0).random((32, WIDTH)).astype("float32")  # datasets hold values in [0, 1]
    np.savez(tmp_path / "data.npz", x_train=x, y_train=np.zeros(32, "int32"), x_test=x[:8], y_test=np.zeros(8, "int32"))
    status = cli_main(["tfsparse", "export", f"--model={model_path}", f"--output={tmp_path / 'q.tflite'}",
                       "--target=sparse-fc-int8", f"--representative_data={tmp_path / 'data.npz'}"])
    err = capsys.readouterr().err
    assert status == 1 and "builtin-sparse-1x16 kernel" in err and "--target=int8 for size only" in err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        status = cli_main(["tfsparse", "export", f"--model={model_path}", f"--output={tmp_path / 'm.tflite'}",
                           "--target=sparse-fc", "--allow_ineligible", "--json"])
    assert status == 0 and json.loads(capsys.readouterr().out)["fc_lint"]["fires"] is False

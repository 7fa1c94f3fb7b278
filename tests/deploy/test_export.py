import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsparse import masks
from tfsparse.deploy import ExportError, VerificationError, export, inspect_tflite
from tfsparse.deploy import convert as convert_module
from tfsparse.deploy import verify as verify_module


def _functional():
    inputs = keras.Input((12,), name="features")
    x = keras.layers.Dense(32, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _sequential():
    return keras.Sequential([keras.Input((12,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(4)])


@pytest.mark.parametrize("target", ["dense", "sparse", "xnnpack"])
@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_export_matches_keras(tmp_path, kind, target, two_layer, zero_fraction, run_tflite):
    model = {"sequential": _sequential, "functional": _functional, "subclassed": lambda: two_layer}[kind]()
    zero_fraction(model, 0.8)
    n_inputs = model.inputs[0].shape[-1] if kind != "subclassed" else 6
    x = np.random.default_rng(0).normal(size=(6, n_inputs)).astype("float32")
    if target == "xnnpack":  # MLPs have no convolution region: XNNPACK's sparse path cannot fire
        with pytest.warns(UserWarning, match="sparse path will not fire"):
            result = export(model, tmp_path / "m.tflite", target=target, allow_ineligible=True)
        assert result.xnnpack_lint["fires"] is False
    else:
        result = export(model, tmp_path / "m.tflite", target=target)
        assert result.xnnpack_lint is None
    assert result.verification.passed and result.verification.max_rel_error <= 1e-4
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    got = run_tflite(tmp_path / "m.tflite", x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_sparse_is_smaller_and_lists_sparse_tensors(tmp_path, sparse_mlp):
    dense = export(sparse_mlp, tmp_path / "dense.tflite", target="dense")
    sparse = export(sparse_mlp, tmp_path / "sparse.tflite", target="sparse")
    assert sparse.size_bytes == os.path.getsize(tmp_path / "sparse.tflite")
    assert sparse.size_bytes < 0.3 * dense.size_bytes
    assert sparse.dense_fp32_bytes == dense.size_bytes
    summary = inspect_tflite(tmp_path / "sparse.tflite")
    assert summary.op_counts["DENSIFY"] == 2 and summary.op_counts["FULLY_CONNECTED"] == 2
    assert len(summary.sparse_tensors) == 2
    assert set(sparse.sparse_tensors) == set(summary.sparse_tensors)
    assert not inspect_tflite(tmp_path / "dense.tflite").sparse_tensors
    assert "DENSIFY" not in inspect_tflite(tmp_path / "dense.tflite").op_counts


def test_xnnpack_target_fixes_batch_to_one(tmp_path, tiny_cnn):
    xnn = export(tiny_cnn, tmp_path / "x.tflite", target="xnnpack")
    sparse = export(tiny_cnn, tmp_path / "s.tflite", target="sparse")
    assert [t.shape for t in inspect_tflite(tmp_path / "x.tflite").inputs] == [(1, 8, 8, 3)]
    assert [t.shape for t in inspect_tflite(tmp_path / "s.tflite").inputs] == [(-1, 8, 8, 3)]
    assert list(xnn.input_shapes.values()) == [(1, 8, 8, 3)]
    assert xnn.sparse_tensors and xnn.verification.passed and sparse.verification.passed
    assert xnn.xnnpack_lint == {"fires": True, "reasons": []} and sparse.xnnpack_lint is None


def test_int8_verifies_and_reports_top1(tmp_path, tiny_cnn, images):
    result = export(tiny_cnn, tmp_path / "q.tflite", target="int8", representative_data=images)
    v = result.verification
    assert v.quantized and v.passed and v.samples == len(images)
    assert v.top1_agreement is not None and v.top1_agreement >= 0.5
    summary = inspect_tflite(tmp_path / "q.tflite")
    assert {t.dtype for t in summary.tensors if t.bytes and len(t.shape) == 4} == {"int8"}
    assert [t.dtype for t in summary.inputs] == ["float32"] and [t.dtype for t in summary.outputs] == ["float32"]
    assert result.size_bytes < result.dense_fp32_bytes
    # the 90%-zero 1x1 convolution is worth encoding sparse even in int8
    assert any("conv2d_1" in name for name in result.sparse_tensors)


def test_int8_accepts_an_iterable_of_xy_batches(tmp_path, sparse_mlp, inputs64):
    labels = np.zeros(len(inputs64), "int32")
    batches = ((inputs64[i:i + 16], labels[i:i + 16]) for i in range(0, len(inputs64), 16))
    result = export(sparse_mlp, tmp_path / "q.tflite", target="int8", representative_data=batches)
    assert result.verification.samples == len(inputs64) and result.verification.passed


def test_int8_fully_connected_weights_stay_dense_and_run_in_litert(tmp_path, sparse_mlp, inputs64, run_tflite):
    result = export(sparse_mlp, tmp_path / "q.tflite", target="int8", representative_data=inputs64)
    assert not result.sparse_tensors
    assert all("FULLY_CONNECTED" in reason for reason in result.densified_tensors.values())
    expected = keras.ops.convert_to_numpy(sparse_mlp(inputs64))
    got = run_tflite(tmp_path / "q.tflite", inputs64)  # LiteRT default: XNNPACK delegate on
    assert np.mean(got.argmax(-1) == expected.argmax(-1)) > 0.8


def _convert_int8(model, x, saved_dir, *, sparse):
    """The TFLite converter's own int8 output, without tfsparse."""
    model.export(str(saved_dir), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_dir))
    converter.optimizations = [tf.lite.Optimize.DEFAULT] + ([tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else [])
    converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TF's calibrator uses the deprecated tf.lite.Interpreter
        return converter.convert()


def test_int8_at_low_sparsity_is_not_larger_than_dense_int8(tmp_path, make_cnn, images):
    model = make_cnn(0.4)  # 40% zeros: int8 values + uint8 indices = 1.2 bytes per weight > 1 byte dense
    result = export(model, tmp_path / "q.tflite", target="int8", representative_data=images)
    dense_int8 = _convert_int8(model, images, tmp_path / "a", sparse=False)
    raw_sparse = _convert_int8(model, images, tmp_path / "b", sparse=True)
    assert len(raw_sparse) > len(dense_int8)  # what the converter alone would write
    assert result.size_bytes <= len(dense_int8)
    assert not result.sparse_tensors and result.densified_tensors


def test_existing_output_refused_without_overwrite(tmp_path, sparse_mlp, monkeypatch):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"old")

    def must_not_run(model):
        raise AssertionError("export did work before checking the path")

    monkeypatch.setattr(convert_module, "finalize", must_not_run)
    with pytest.raises(ValueError, match="already exists and is left untouched; pass overwrite=True"):
        export(sparse_mlp, path)
    assert path.read_bytes() == b"old"


def test_existing_output_replaced_with_overwrite(tmp_path, sparse_mlp):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"old")
    result = export(sparse_mlp, path, overwrite=True)
    assert path.stat().st_size == result.size_bytes
    assert inspect_tflite(path).op_counts["FULLY_CONNECTED"] == 2
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]


def test_missing_directory_is_refused(tmp_path, sparse_mlp):
    with pytest.raises(ValueError, match="does not exist; create it first"):
        export(sparse_mlp, tmp_path / "missing" / "m.tflite")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"target": "fp16"}, "argument `target`. Expected one of"),
        ({"target": "int8"}, "argument `representative_data`"),
    ],
)
def test_invalid_arguments(tmp_path, sparse_mlp, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export(sparse_mlp, tmp_path / "m.tflite", **kwargs)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "data, match",
    [
        (np.zeros((0, 64), "float32"), "holds no samples"),
        ({"wrong_name": np.zeros((4, 64), "float32")}, "not the model's input names"),
        (5, "neither an array nor an iterable"),
        ([np.zeros((4, 64), "float32"), np.zeros((3, 64), "float32"), 7], "the model has 1 input"),
    ],
    ids=["empty", "wrong_key", "scalar", "bad_element"],
)
def test_bad_representative_data_is_refused_before_work(tmp_path, sparse_mlp, monkeypatch, data, match):
    def must_not_run(model):
        raise AssertionError("export did work before checking representative_data")

    monkeypatch.setattr(convert_module, "finalize", must_not_run)
    with pytest.raises(ValueError, match=r"argument `representative_data`.*" + match):
        export(sparse_mlp, tmp_path / "m.tflite", target="int8", representative_data=data)
    assert not os.listdir(tmp_path)


def test_path_must_be_a_tflite_file(tmp_path, sparse_mlp):
    with pytest.raises(ValueError, match="ending in `.tflite`"):
        export(sparse_mlp, tmp_path / "model.keras")


def test_non_keras_and_unbuilt_models_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Expected a `keras.Model`"):
        export(lambda x: x, tmp_path / "m.tflite")
    with pytest.raises(ValueError, match="Expected a built model"):
        export(keras.Sequential([keras.layers.Dense(2)]), tmp_path / "m.tflite")
    assert not os.listdir(tmp_path)


def test_converter_failure_leaves_no_file(tmp_path, sparse_mlp, monkeypatch):
    from tensorflow.lite.python.lite import TFLiteSavedModelConverterV2

    def reject(self):
        raise RuntimeError("'tfl.fully_connected' op is neither a custom op nor a flex op")

    monkeypatch.setattr(TFLiteSavedModelConverterV2, "convert", reject)
    with pytest.raises(ExportError, match="converter rejected model 'mlp'.*neither a custom op.*try target='dense'"):
        export(sparse_mlp, tmp_path / "m.tflite")
    assert not os.listdir(tmp_path)


def test_verification_failure_leaves_no_file(tmp_path, sparse_mlp, monkeypatch):
    monkeypatch.setattr(verify_module, "FLOAT_RTOL", -1.0)  # every output now counts as wrong
    with pytest.raises(VerificationError, match="does not match the Keras model.*verify=False") as info:
        export(sparse_mlp, tmp_path / "m.tflite")
    assert info.value.verification.samples == verify_module.DEFAULT_RANDOM_SAMPLES
    assert not os.listdir(tmp_path)


def test_write_failure_leaves_no_temporary_file(tmp_path, sparse_mlp, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(convert_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        export(sparse_mlp, tmp_path / "m.tflite")
    assert not os.listdir(tmp_path)


def test_export_does_not_modify_the_model(tmp_path):
    model = _functional()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            masks.attach(layer.kernel)
            masks.set_mask(layer.kernel, np.random.default_rng(0).random(layer.kernel.shape) > 0.8)
    weights = [v.numpy().copy() for v in model.weights]
    constraints = [v.constraint for v in model.weights]
    mask_values = [masks.get_mask(v).numpy().copy() for v in model.weights if masks.has_mask(v)]
    names = [v.path for v in model.weights]
    with pytest.warns(UserWarning, match="sparse path will not fire"):
        export(model, tmp_path / "m.tflite", target="xnnpack", allow_ineligible=True)
    assert [v.path for v in model.weights] == names
    assert all(a is v.constraint for a, v in zip(constraints, model.weights))
    for before, v in zip(weights, model.weights):
        np.testing.assert_array_equal(before, v.numpy())
    for before, after in zip(mask_values, [masks.get_mask(v).numpy() for v in model.weights if masks.has_mask(v)]):
        np.testing.assert_array_equal(before, after)


def test_multi_input_multi_output_functional(tmp_path):
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="bee")
    x = keras.layers.Concatenate()([a, b])
    model = keras.Model([b, a], {"z": keras.layers.Dense(5)(x), "y": keras.layers.Dense(2)(x)})
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(10, 3)).astype("float32"), rng.normal(size=(10, 4)).astype("float32")]
    result = export(model, tmp_path / "m.tflite", target="sparse", representative_data=data)
    assert result.verification.passed and result.verification.samples == 10
    quantized = export(model, tmp_path / "q.tflite", target="int8",
                       representative_data={"a": data[1], "bee": data[0]})
    assert quantized.verification.passed


def test_result_to_dict_is_json(tmp_path, sparse_mlp):
    result = export(sparse_mlp, tmp_path / "m.tflite")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["target"] == "sparse" and data["size_bytes"] == result.size_bytes
    assert data["verification"]["passed"] is True
    assert data["operators"]["DENSIFY"] == 2
    text = str(result)
    assert "m.tflite" in text and "sparse tensors  2" in text and "PASS" in text


def test_saved_keras_file_exports_in_a_fresh_process(tmp_path, sparse_mlp):
    sparse_mlp.save(tmp_path / "pruned.keras")
    script = (
        "import json, sys, keras\n"
        "from tfsparse.deploy import export\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "print(json.dumps(export(model, sys.argv[2], target='sparse').to_dict()))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "pruned.keras"), str(tmp_path / "m.tflite")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(data["sparse_tensors"]) == 2 and data["verification"]["passed"]
    assert data["size_bytes"] < 0.3 * data["dense_fp32_bytes"]


def _tiny():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)], name="tiny")


def _with_non_finite(value, where):
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    x[where] = value
    return x


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("form", ["array", "iterable"])
def test_non_finite_representative_data_is_refused_before_any_work(tmp_path, monkeypatch, value, form):
    # NaN used to give a float file reported as int8 with "PASS, max abs error nan"; inf crashed the converter
    # (the process aborted) and left the temporary SavedModel behind.
    def must_not_run(*args, **kwargs):
        raise AssertionError("export did work before checking representative_data")

    monkeypatch.setattr(convert_module, "finalize", must_not_run)
    monkeypatch.setattr(convert_module, "_save", must_not_run)
    x = _with_non_finite(value, (5, 2))
    data = x if form == "array" else (x[i:i + 8] for i in range(0, 32, 8))
    with pytest.raises(ValueError) as info:
        export(_tiny(), tmp_path / "m.tflite", target="int8", representative_data=data)
    message = str(info.value)
    assert message.startswith("Invalid value received for argument `representative_data`. Expected finite values; "
                              "1 of 256 values are NaN/inf (first at sample 5). Remove or fix those samples. "
                              "Received: representative_data=")
    assert len(message) < 300  # no array dump
    assert not os.listdir(tmp_path)


def test_non_finite_representative_data_is_refused_for_float_targets_too(tmp_path):
    x = _with_non_finite(np.nan, (slice(None), 2))  # a whole NaN column
    with pytest.raises(ValueError, match=r"32 of 256 values are NaN/inf \(first at sample 0\).*"
                                         r"Received: representative_data=<float32 array of shape \(32, 8\)>$"):
        export(_tiny(), tmp_path / "m.tflite", target="sparse", representative_data=x)
    assert not os.listdir(tmp_path)


def test_inf_representative_data_does_not_crash_or_leave_a_temporary_folder(tmp_path):
    # in a fresh process: on the old code the converter aborted the whole interpreter
    script = (
        "import os, sys, tempfile, keras, numpy as np\n"
        "tempfile.tempdir = sys.argv[1]\n"
        "from tfsparse.deploy import export\n"
        "model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])\n"
        "x = np.random.default_rng(0).normal(size=(32, 8)).astype('float32'); x[3, 2] = np.inf\n"
        "try:\n"
        "    export(model, os.path.join(sys.argv[2], 'm.tflite'), target='int8', representative_data=x)\n"
        "except ValueError as error:\n"
        "    print('REFUSED', error)\n"
    )
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    out.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", script, str(temp), str(out)], capture_output=True, text=True,
                         timeout=300, env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "REFUSED Invalid value received for argument `representative_data`. Expected finite values" in run.stdout
    assert not os.listdir(temp) and not os.listdir(out)


@keras.saving.register_keras_serializable(package="tfsparse_tests")
class _NaNActivation(keras.layers.Layer):
    """sqrt of a negative number: NaN activations from finite inputs."""

    def call(self, x):
        return keras.ops.sqrt(x - 1e6)


def test_int8_export_that_comes_out_unquantized_is_refused(tmp_path):
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(3)(_NaNActivation()(keras.layers.Dense(4)(inputs)))
    model = keras.Model(inputs, outputs, name="nan_inside")
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    for verify in (True, False):  # the check does not depend on verification
        with pytest.raises(ExportError, match=r"did not quantize model 'nan_inside' to int8: 1 constant tensor\(s\) "
                                              r"stayed float .*Nothing was written"):
            export(model, tmp_path / "q.tflite", target="int8", representative_data=x, verify=verify)
    assert not os.listdir(tmp_path)


def test_int8_target_converted_to_float_is_refused(tmp_path, monkeypatch):
    original = convert_module.targets.converter

    def float_converter(saved, target, **kwargs):  # as if the converter silently skipped quantization
        return original(saved, convert_module.targets.TARGETS["dense"], **kwargs)

    monkeypatch.setattr(convert_module.targets, "converter", float_converter)
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    with pytest.raises(ExportError, match="did not quantize model 'tiny' to int8"):
        export(_tiny(), tmp_path / "q.tflite", target="int8", representative_data=x)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("data, match", [
    (np.zeros((4, 5), "float32"), r"Expected arrays of shape \(N, 8\) for the input of the model .*"
                                  r"a batch has shape \(4, 5\)"),
    (np.zeros((8,), "float32"), r"Expected arrays of shape \(N, 8\) .*a batch has shape \(8,\)"),
    (np.zeros(()), r"Expected arrays of shape \(N, 8\) .*a batch has shape \(\)"),
    (np.full((4, 8), "a"), r"Expected numbers that convert to float32 for the input of the model; a batch has dtype"),
], ids=["wrong_width", "no_batch_axis", "scalar", "strings"])
def test_representative_data_of_the_wrong_shape_or_dtype_is_refused_before_work(tmp_path, monkeypatch, data, match):
    # it used to reach the converter: "Attempting to resize dimension 1 ... Probably an op has no int8 kernel"
    def must_not_run(*args, **kwargs):
        raise AssertionError("export did work before checking representative_data")

    monkeypatch.setattr(convert_module, "_save", must_not_run)
    with pytest.raises(ValueError, match=r"^Invalid value received for argument `representative_data`. " + match):
        export(_tiny(), tmp_path / "m.tflite", target="int8", representative_data=data)
    assert not os.listdir(tmp_path)


def test_float64_and_integer_representative_data_are_cast_to_the_input_dtype(tmp_path):
    # float64 (NumPy's default) used to fail in the converter: "Got value of type FLOAT64 but expected FLOAT32"
    model = _tiny()
    x = np.random.default_rng(0).normal(size=(16, 8))
    result = export(model, tmp_path / "q.tflite", target="int8", representative_data=x)
    assert result.verification.passed and result.verification.samples == 16
    dense = export(model, tmp_path / "d.tflite", target="dense", representative_data=np.ones((4, 8), "int64"))
    assert dense.verification.passed and dense.verification.samples == 4


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("step", ["convert", "verify", "write"])
def test_interrupted_export_leaves_no_temporary_folder_or_file(tmp_path, monkeypatch, interrupt, step):
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    out.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where TemporaryDirectory puts the SavedModel

    def interrupted(*args, **kwargs):
        raise interrupt()

    if step == "convert":
        monkeypatch.setattr(convert_module.targets, "run_converter", interrupted)
    elif step == "verify":
        monkeypatch.setattr(convert_module, "verify_tflite", interrupted)
    else:
        monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(interrupt):
        export(_tiny(), out / "m.tflite", target="sparse")
    # (TensorFlow's autograph may leave its own generated files there until the process exits)
    assert not [name for name in os.listdir(temp) if name.startswith("tfsparse_export_")]
    assert not os.listdir(out)  # no output, no hidden .tfsparse-* temporary file


def test_calibration_batches_refuse_non_finite_iterables():
    from tfsparse.calibration import input_batches

    good = np.zeros((4, 3), "float32")
    bad = good.copy()
    bad[2, 1] = np.inf
    batches = input_batches(iter([good, (bad, np.zeros(4))]), batch_size=4)
    assert next(batches) is good
    with pytest.raises(ValueError, match=r"^Invalid value received for argument `data`. Expected finite values; "
                                         r"1 of 12 values are NaN/inf \(first at sample 6\). Remove or fix those "
                                         r"samples. Received: data=<list_iterator>$"):
        next(batches)
    with pytest.raises(ValueError, match=r"1 of 12 values are NaN/inf \(first at sample 2\).*"
                                         r"Received: data=<float32 array of shape \(4, 3\)>$"):
        next(input_batches(bad, batch_size=2))


class _Stop(BaseException):
    """What the test's SIGTERM handler raises (as the CLI's does)."""


@pytest.mark.parametrize("tensorflow_does", ["swallow", "mangle"])
def test_an_interrupt_that_tensorflow_swallows_still_stops_the_export(tmp_path, monkeypatch, tensorflow_does):
    # TensorFlow/Keras catch broad exceptions while tracing: a SIGTERM there used to vanish (the export went on and
    # wrote its file, exit status 0) or come out as an unrelated ExportError
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    out.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    original = convert_module.targets.run_converter

    def converter_catching_everything(converter):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except BaseException:
            if tensorflow_does == "mangle":
                raise RuntimeError("Failed to convert elements of (None, 288) to Tensor") from None
        return original(converter)

    def handler(signum, frame):
        raise _Stop()

    monkeypatch.setattr(convert_module.targets, "run_converter", converter_catching_everything)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(_Stop):
            export(_tiny(), out / "m.tflite", target="sparse")
        assert signal.getsignal(signal.SIGTERM) is handler  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not [name for name in os.listdir(temp) if name.startswith("tfsparse_export_")] and not os.listdir(out)

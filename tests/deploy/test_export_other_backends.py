"""`tfsparse.deploy.export` on JAX: the same `.tflite` targets, verified against the JAX model.

Keras reads `KERAS_BACKEND` once per process, so each JAX case runs this file
as a script in its own process (`python test_export_other_backends.py MODE
DIRECTORY`, with `KERAS_BACKEND=jax` and `TMPDIR` pointed at a private
directory, which must be empty afterwards); the TensorFlow twin runs in the
test process. Skipped when JAX is not installed.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

HERE = os.path.abspath(__file__)
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

# A custom layer in an importable module: the TensorFlow-backend subprocess must import it, then the
# converter rejects its op (tf.Erfinv is no TFLite builtin): an error that only the subprocess can meet.
ERFINV_MODULE = '''
import keras

@keras.saving.register_keras_serializable(package="tfsparse_tests_other_backends")
class Erfinv(keras.layers.Layer):
    def call(self, x):
        return keras.ops.erfinv(keras.ops.tanh(x) * 0.5)
'''

TWO_LAYER_MODULE = '''
import keras

@keras.saving.register_keras_serializable(package="tfsparse_tests_other_backends")
class TwoLayer(keras.Model):
    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(3)

    def call(self, x, training=False):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}
'''


def build_model():
    """A tiny XNNPACK-style CNN with seeded weights, 90% of each kernel exact zeros (same on every backend)."""
    import keras

    inputs = keras.Input((8, 8, 3), name="image")  # named layers: the same tensor names in every process
    x = keras.layers.ZeroPadding2D(1, name="pad")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="stem")(x)
    x = keras.layers.Conv2D(64, 1, activation="relu", name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="logits")(x), name="cnn")
    rng = np.random.default_rng(0)
    for variable in model.weights:
        value = (rng.normal(size=variable.shape) * 0.3).astype("float32")
        if value.ndim > 1:
            value[rng.random(value.shape) < 0.9] = 0.0
        variable.assign(value)
    return model


def images(count=32):
    return np.random.default_rng(1).normal(size=(count, 8, 8, 3)).astype("float32")


def _summary(result):
    from tfsparse.deploy import inspect_tflite

    summary = inspect_tflite(result.path)
    return {"size": result.size_bytes, "on_disk": os.path.getsize(result.path), "dense_fp32": result.dense_fp32_bytes,
            "sparse_tensors": len(summary.sparse_tensors), "tensor_bytes": sum(t.bytes for t in summary.tensors),
            "tensors": len(summary.tensors), "passed": result.verification.passed,
            "max_abs_error": result.verification.max_abs_error, "ops": dict(result.operators),
            "xnnpack_fires": None if result.xnnpack_lint is None else result.xnnpack_lint["fires"]}


# --- the script side (KERAS_BACKEND=jax) -------------------------------------------------------------------------


def _export_mode(out, target):
    import keras

    from tfsparse.deploy import export

    started = time.monotonic()
    exported = export(build_model(), os.path.join(out, f"{target}.tflite"), target=target,
                      representative_data=images())
    return {"backend": keras.backend.backend(), target: dict(_summary(exported), seconds=time.monotonic() - started)}


def _gmp_mode(out):
    """A model pruned by a strategy on JAX (masks attached) exports for XNNPACK."""
    import keras

    import tfsparse
    from tfsparse.deploy import export

    x = images()
    pruned = build_model()
    pruned.compile(optimizer="adam", loss="mse")
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.9, begin_step=0, end_step=4, frequency=2)
    pruned.fit(x, np.zeros((len(x), 5), "float32"), batch_size=8, epochs=2, verbose=0, callbacks=[gmp])
    zeros = [float(np.mean(keras.ops.convert_to_numpy(w) == 0)) for w in pruned.weights if len(w.shape) > 1]
    return {"backend": keras.backend.backend(), "gmp_zeros": zeros,
            "xnnpack": _summary(export(pruned, os.path.join(out, "xnnpack.tflite"), target="xnnpack"))}


def _subclassed_mode(out):
    """A subclassed model from an importable module: the subprocess imports it, loads it and calls it once."""
    import keras

    from tfsparse.deploy import export

    modules = os.path.join(os.path.dirname(out), "modules")
    os.makedirs(modules, exist_ok=True)
    with open(os.path.join(modules, "two_layer_model.py"), "w") as handle:
        handle.write(TWO_LAYER_MODULE)
    sys.path.insert(0, modules)
    from two_layer_model import TwoLayer

    model = TwoLayer()
    model(np.zeros((2, 6), "float32"))
    return {"backend": keras.backend.backend(),
            "subclassed": _summary(export(model, os.path.join(out, "subclassed.tflite"), target="dense"))}


def _error_mode(out):
    import subprocess as subprocess_module

    import keras

    from tfsparse.deploy import export

    started = []
    original = subprocess_module.Popen

    def counting_popen(*args, **kwargs):
        started.append(args[0])
        return original(*args, **kwargs)

    subprocess_module.Popen = counting_popen
    result = {"backend": keras.backend.backend(), "errors": {}}

    def attempt(case, model, path, **kwargs):
        before = len(started)
        try:
            export(model, path, **kwargs)
            result["errors"][case] = None
        except Exception as error:  # noqa: BLE001 - recorded for the test to check
            result["errors"][case] = {"type": type(error).__name__, "message": str(error),
                                      "subprocesses": len(started) - before}

    bad = images(8)
    bad[3, 0, 0, 0] = np.nan
    attempt("nan_data", build_model(), os.path.join(out, "nan.tflite"), target="int8", representative_data=bad)
    attempt("bad_path", build_model(), os.path.join(out, "missing", "m.tflite"))
    attempt("no_data_int8", build_model(), os.path.join(out, "int8.tflite"), target="int8")

    @keras.saving.register_keras_serializable(package="tfsparse_tests_main")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((4,))
    attempt("main_class", keras.Model(inputs, keras.layers.Dense(3)(Twice()(inputs))), os.path.join(out, "main.tflite"))

    with open(os.path.join(out, "erfinv_layer.py"), "w") as handle:
        handle.write(ERFINV_MODULE)
    sys.path.insert(0, out)
    from erfinv_layer import Erfinv

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(Erfinv()(inputs)), name="odd")
    attempt("converter", model, os.path.join(out, "odd.tflite"), target="sparse")
    result["written"] = sorted(name for name in os.listdir(out) if name.endswith(".tflite"))
    return result


def _signal_mode(out, name):
    """SIGTERM (turned into a BaseException, as the CLI does) or SIGINT while the subprocess converts."""
    import tempfile

    import keras

    from tfsparse.deploy import export

    class Terminated(BaseException):  # as the CLI's
        pass

    def terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    seen = {}

    def signal_once_the_subprocess_runs():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for entry in os.listdir(tempfile.gettempdir()):
                if os.path.exists(os.path.join(tempfile.gettempdir(), entry, "child.log")):
                    time.sleep(2.0)  # the subprocess is importing TensorFlow or converting
                    seen["subprocess"] = _processes_under(tempfile.gettempdir())
                    os.kill(os.getpid(), getattr(signal, name))
                    return
            time.sleep(0.05)

    threading.Thread(target=signal_once_the_subprocess_runs, daemon=True).start()
    path = os.path.join(out, "model.tflite")
    try:
        export(build_model(), path, target="sparse")
        outcome = "finished"
    except (Terminated, KeyboardInterrupt) as interrupt:
        outcome = type(interrupt).__name__
    return {"backend": keras.backend.backend(), "outcome": outcome, "subprocesses_seen": seen.get("subprocess", []),
            "written": os.path.exists(path), "subprocesses_after": _processes_under(tempfile.gettempdir())}


def _processes_under(directory):
    """Pids of processes whose command line mentions `directory` (Linux /proc)."""
    pids = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if os.fsencode(directory) in handle.read() and int(pid) != os.getpid():
                    pids.append(int(pid))
        except (OSError, ValueError):
            pass
    return pids


def _script(mode, out, *args):
    modes = {"_export": _export_mode, "_gmp": _gmp_mode, "_subclassed": _subclassed_mode, "_error": _error_mode,
             "_signal": _signal_mode}
    result = modes[mode](out, *args)
    import tempfile

    result["temporary_left"] = sorted(os.listdir(tempfile.gettempdir()))
    print(json.dumps(result))


# --- the test side ----------------------------------------------------------------------------------------------


def _run_on_jax(mode, tmp_path, *args):
    private_tmp, out = tmp_path / "tmp", tmp_path / "out"
    private_tmp.mkdir()
    out.mkdir()
    env = dict(os.environ, KERAS_BACKEND="jax", TMPDIR=str(private_tmp), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, HERE, mode, str(out), *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["temporary_left"] == [] and os.listdir(private_tmp) == []  # nothing left in TMPDIR
    return result, out


@needs_jax
@pytest.mark.parametrize("target", ["sparse", "int8"])
def test_jax_export_is_verified_and_matches_the_tensorflow_backend_export(tmp_path, target):
    """Verified against the JAX model; the same weights give the same file as on TensorFlow (it converts there)."""
    from tfsparse.deploy import export

    result, out = _run_on_jax("_export", tmp_path, target)
    on_jax_ = result[target]
    assert on_jax_["passed"] and on_jax_["size"] == on_jax_["on_disk"]
    assert os.listdir(out) == [f"{target}.tflite"]
    if target == "sparse":
        assert on_jax_["max_abs_error"] < 1e-5
        assert on_jax_["sparse_tensors"] == 3 and on_jax_["size"] < 0.6 * on_jax_["dense_fp32"]
    else:
        assert on_jax_["max_abs_error"] < 0.05 and on_jax_["sparse_tensors"] >= 1
    tf_result = _summary(export(build_model(), str(tmp_path / f"tf_{target}.tflite"), target=target,
                                representative_data=images()))
    for key in ("tensors", "sparse_tensors", "tensor_bytes", "ops"):
        assert on_jax_[key] == tf_result[key], (key, on_jax_, tf_result)
    for key in ("size", "dense_fp32"):  # the same up to tensor-name lengths
        assert abs(on_jax_[key] - tf_result[key]) <= 16, (key, on_jax_, tf_result)
    assert on_jax_["max_abs_error"] <= max(2 * tf_result["max_abs_error"], 1e-6)


@needs_jax
def test_a_model_pruned_by_gmp_on_jax_exports_for_xnnpack(tmp_path):
    result, out = _run_on_jax("_gmp", tmp_path)
    assert all(0.89 < zeros < 0.92 for zeros in result["gmp_zeros"])  # masks attached while it trained
    xnnpack = result["xnnpack"]
    assert xnnpack["passed"] and xnnpack["max_abs_error"] < 1e-4
    assert xnnpack["xnnpack_fires"] and xnnpack["sparse_tensors"] == 3
    assert os.listdir(out) == ["xnnpack.tflite"]


@needs_jax
def test_a_subclassed_model_from_a_module_exports_on_jax(tmp_path):
    result, out = _run_on_jax("_subclassed", tmp_path)
    subclassed = result["subclassed"]
    assert subclassed["passed"] and subclassed["max_abs_error"] < 1e-5 and subclassed["ops"] == {"FULLY_CONNECTED": 2}
    assert os.listdir(out) == ["subclassed.tflite"]


@needs_jax
def test_errors_come_back_as_one_clear_message_and_leave_nothing(tmp_path):
    result, _ = _run_on_jax("_error", tmp_path)
    errors = result["errors"]
    # Argument checks run here, before any subprocess.
    for case in ("nan_data", "bad_path", "no_data_int8"):
        assert errors[case]["type"] == "ValueError" and errors[case]["subprocesses"] == 0, errors[case]
    assert "NaN" in errors["nan_data"]["message"] or "nan" in errors["nan_data"]["message"]
    # A class defined in __main__ cannot be loaded by the subprocess: refused before starting it.
    main = errors["main_class"]
    assert main["type"] == "ExportError" and main["subprocesses"] == 0
    assert "Twice" in main["message"] and "__main__" in main["message"]
    # The converter's error in the subprocess: one line, the subprocess's own message, no traceback.
    converter = errors["converter"]
    assert converter["type"] == "ExportError" and converter["subprocesses"] == 1, converter
    assert "\n" not in converter["message"] and "Traceback" not in converter["message"]
    assert converter["message"].startswith("The TFLite converter rejected model 'odd'")
    assert "tf.Erfinv" in converter["message"]
    assert result["written"] == []


@needs_jax
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the subprocess through /proc")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_subprocess_and_removes_temporary_files(tmp_path, name):
    result, out = _run_on_jax("_signal", tmp_path, name)
    assert result["outcome"] == {"SIGTERM": "Terminated", "SIGINT": "KeyboardInterrupt"}[name]
    assert result["subprocesses_seen"], "the signal came before the subprocess started"
    assert result["subprocesses_after"] == [] and not result["written"]
    assert os.listdir(out) == []


def test_the_subprocess_gets_a_small_environment(monkeypatch, tmp_path):
    from tfsparse.deploy import cross_backend

    monkeypatch.setenv("TFSPARSE_TEST_HUGE", "x" * 100_000)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    env = cross_backend._child_env(str(tmp_path))
    assert "TFSPARSE_TEST_HUGE" not in env and sum(len(k) + len(v) for k, v in env.items()) < 20_000
    assert env["KERAS_BACKEND"] == "tensorflow" and env["TMPDIR"] == str(tmp_path)
    import tfsparse

    root = os.path.dirname(os.path.dirname(os.path.abspath(tfsparse.__file__)))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == root


@pytest.mark.parametrize("case", ["crash", "killed", "timeout", "no_arguments"])
def test_a_failing_subprocess_gives_one_export_error(monkeypatch, tmp_path, case):
    """Without its error file (a crash), the subprocess's last output line or its signal is the message."""
    from tfsparse.deploy import ExportError, cross_backend

    scripts = {"crash": "import sys; print('noise'); print('Fatal Python error: Aborted', file=sys.stderr); "
                        "sys.exit(3)",
               "killed": "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
               "timeout": "import time; time.sleep(60)"}
    if case in scripts:
        monkeypatch.setattr(cross_backend, "_command", lambda tmp: [sys.executable, "-c", scripts[case]])
    if case == "timeout":
        monkeypatch.setattr(cross_backend, "TIMEOUT_S", 2)
    started = time.monotonic()
    with pytest.raises(ExportError) as caught:
        cross_backend._run_child(str(tmp_path), name="m", backend="jax")
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message and time.monotonic() - started < 30
    expected = {"crash": "exited with status 3: Fatal Python error: Aborted. Nothing was written.",
                "killed": "was killed by SIGKILL (out of memory?)",
                "timeout": "did not finish within 2 s",
                "no_arguments": "failed: FileNotFoundError"}[case]  # the real subprocess, given an empty directory
    assert expected in message, message


if __name__ == "__main__":
    _script(*sys.argv[1:])

"""Export from JAX or PyTorch: the conversion runs in a TensorFlow-backend subprocess.

The TFLite converter reads a TensorFlow SavedModel, and only the TensorFlow
backend saves one the converter turns into the graph that `export` promises
(Keras' own `model.export(format="tf_saved_model")` on JAX goes through
`jax2tf`: its `.tflite` has e.g. `SUM` + `DIV` for `GlobalAveragePooling2D`
instead of `MEAN`, so XNNPACK's sparse path does not fire, and a dynamic
batch adds `SHAPE`/`BROADCAST_TO`/`CONCATENATION` ops around every layer).
Keras fixes its backend once per process, so on another backend `export`:

1. checks its arguments and finalizes the model here, as on TensorFlow;
2. saves the finalized copy as a `.keras` file (and the samples as an
   `.npz`) in a temporary directory;
3. runs `python -m tfsparse.deploy.cross_backend DIRECTORY` with
   `KERAS_BACKEND=tensorflow`, which loads the copy and converts it exactly
   as `export` does on TensorFlow (`convert.convert_finalized`: SavedModel,
   converter, sparse encoding where smaller, int8 check, XNNPACK verdict),
   and writes the `.tflite` and its figures to that directory;
4. back here, verifies the `.tflite` with LiteRT against the original model
   on this backend, and writes it atomically (`export`'s usual steps).

The subprocess gets a small environment (not this process's), this
process's `sys.path` (so it imports the same tfsparse and the modules of
custom layers), no GPU, and the temporary directory as its `TMPDIR`; it exits
if this process dies. An error in it comes back as one `ExportError` with
its message (`IneligibleError` stays `IneligibleError`), never a traceback.
The temporary directory is removed, and the subprocess killed, on success,
error, timeout (`TIMEOUT_S`), `KeyboardInterrupt` and the CLI's SIGTERM.

Custom layers (and other custom objects) must be registered with
`@keras.saving.register_keras_serializable()` in an importable module: one
defined in a script's or a notebook's `__main__` cannot be imported by the
subprocess, so `export` refuses such a model before starting it.

Example (on JAX; the same call as on TensorFlow):

    KERAS_BACKEND=jax python -c "import tfsparse; ...; tfsparse.deploy.export(model, 'm.tflite')"
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import keras
import numpy as np
from absl import logging

from tfsparse.deploy import samples as samples_lib
from tfsparse.deploy.errors import ExportError, IneligibleError

TIMEOUT_S = 3600  # a generous limit: int8 calibration of a large model takes minutes
_ENV_KEPT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "SYSTEMROOT",
             "PYTHONHOME", "LD_LIBRARY_PATH", "KERAS_HOME", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS",
             "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
_MODEL, _SAMPLES, _ARGS = "model.keras", "samples.npz", "args.json"
_TFLITE, _RESULT, _ERROR, _LOG = "model.tflite", "result.json", "error.json", "child.log"
_MAX_MESSAGE = 2000


def convert(model, spec, *, samples, allow_ineligible):
    """Finalizes `model` here and converts it in a TensorFlow-backend subprocess.

    Args:
        model: The (checked) Keras model, on this process's backend.
        spec: The `targets.Target`.
        samples: Samples keyed by `samples.keras_input_names(model)`, or `None`.
        allow_ineligible: As `export`'s.

    Returns:
        A `convert.Converted`, its samples keyed by the file's signature.

    Raises:
        ExportError: if the model cannot be saved, holds classes defined in
            `__main__`, or the subprocess fails (its message), times out or dies.
        IneligibleError: as `export`, for the gated targets (`xnnpack`, `sparse-fc`, `sparse-fc-int8`).
    """
    from tfsparse.deploy.convert import Converted
    from tfsparse.deploy.finalize import finalize
    from tfsparse.deploy.verify import signature_inputs

    deployable = finalize(model, shrink=spec.fc_kernel is None)  # as targets.shrinks(spec)
    modules = custom_modules(deployable, name=model.name)
    backend = keras.backend.backend()
    with tempfile.TemporaryDirectory(prefix="tfsparse_export_") as tmp:
        try:
            keras.saving.save_model(deployable, os.path.join(tmp, _MODEL))
        except Exception as error:
            raise ExportError(
                f"Keras could not save the finalized copy of model {model.name!r} as a .keras file "
                f"({type(error).__name__}: {_one_line(error)}); on the {backend!r} backend export converts "
                "it in a TensorFlow-backend subprocess, which loads that file. Make every layer serializable "
                "(`get_config()`), or run with KERAS_BACKEND=tensorflow."
            ) from error
        names = None
        if samples is not None:
            names = list(samples[0])
            np.savez(os.path.join(tmp, _SAMPLES),
                     **{f"input_{i}": array for i, array in enumerate(samples_lib.stack(samples, names).values())})
        with open(os.path.join(tmp, _ARGS), "w", encoding="utf-8") as handle:
            json.dump({"target": spec.name, "allow_ineligible": bool(allow_ineligible), "name": model.name,
                       "modules": modules, "input_names": names, "backend": backend}, handle)
        logging.info("tfsparse.deploy: Keras runs on %r; converting %r in a TensorFlow-backend subprocess",
                     backend, model.name)
        started = time.monotonic()
        _run_child(tmp, name=model.name, backend=backend)
        logging.info("tfsparse.deploy: the subprocess converted %r in %.1f s", model.name, time.monotonic() - started)
        with open(os.path.join(tmp, _TFLITE), "rb") as handle:
            content = handle.read()
        with open(os.path.join(tmp, _RESULT), encoding="utf-8") as handle:
            result = json.load(handle)
    return Converted(content=content, dense_fp32_bytes=int(result["dense_fp32_bytes"]),
                     densified=dict(result["densified"]), xnnpack_lint=result["xnnpack_lint"],
                     fc_lint=result.get("fc_lint"),
                     samples=samples_lib.match_signature(samples, tuple(signature_inputs(content))))


def custom_modules(model, *, name) -> list:
    """The modules (not Keras') of the classes and functions in `model`'s saved config, to import before loading it.

    Raises:
        ExportError: if one is defined in `__main__`, which another process cannot import.
    """
    found, in_main = [], []

    def walk(node):
        if isinstance(node, dict):
            module = node.get("module", "")
            if "class_name" in node and module in (None, "__main__"):  # Keras saves `__main__` as None
                in_main.append(str(node["class_name"]))
            elif "class_name" in node and isinstance(module, str) and module.split(".")[0] not in (
                    "keras", "builtins", "") and module not in found:
                found.append(module)
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(keras.saving.serialize_keras_object(model))
    if in_main:
        listed = ", ".join(sorted(set(in_main)))
        raise ExportError(
            f"Model {name!r} uses {listed}, defined in `__main__` (a script or a notebook). On the "
            f"{keras.backend.backend()!r} backend export converts the model in a TensorFlow-backend subprocess, "
            "which loads it from a .keras file and cannot import `__main__`. Move the class or function to a "
            "module (registered with `@keras.saving.register_keras_serializable()`) and import it from there, "
            "or run with KERAS_BACKEND=tensorflow."
        )
    return found


def _command(tmp) -> list:
    return [sys.executable, "-m", "tfsparse.deploy.cross_backend", tmp, str(os.getpid())]


def _run_child(tmp, *, name, backend):
    with open(os.path.join(tmp, _LOG), "wb") as log:
        process = subprocess.Popen(_command(tmp), cwd=tmp, env=_child_env(tmp), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            returncode = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ExportError(
                f"Converting model {name!r} in the TensorFlow-backend subprocess did not finish within "
                f"{TIMEOUT_S} s; it was stopped and nothing was written. Try a smaller representative_data, "
                "or run with KERAS_BACKEND=tensorflow."
            ) from None
        finally:
            if process.poll() is None:  # an interrupt, an error or the timeout: no subprocess outlives export
                process.kill()
                process.wait()
    if returncode == 0 and os.path.exists(os.path.join(tmp, _TFLITE)):
        return
    error_path = os.path.join(tmp, _ERROR)
    if os.path.exists(error_path):
        with open(error_path, encoding="utf-8") as handle:
            error = json.load(handle)
        if error["type"] == "IneligibleError":
            raise IneligibleError(error["message"], reasons=error["reasons"], target=error.get("target", "xnnpack"))
        if error["type"] in ("ExportError", "VerificationError", "ValueError"):
            raise ExportError(error["message"])
        raise ExportError(f"Converting model {name!r} in the TensorFlow-backend subprocess (Keras runs on "
                          f"{backend!r} here) failed: {error['type']}: {error['message']}")
    how = f"exited with status {returncode}"
    if returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
        if -returncode == getattr(signal, "SIGKILL", None):
            how += " (out of memory?)"
    raise ExportError(f"The TensorFlow-backend subprocess converting model {name!r} {how}: "
                      f"{_last_line(os.path.join(tmp, _LOG))}. Nothing was written.")


def _child_env(tmp) -> dict:
    """A small environment: the essentials, the TensorFlow backend, this process's sys.path, no GPU."""
    env = {key: os.environ[key] for key in _ENV_KEPT if key in os.environ}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(KERAS_BACKEND="tensorflow", PYTHONPATH=os.pathsep.join(_python_path()), TMPDIR=tmp, TEMP=tmp, TMP=tmp,
               CUDA_VISIBLE_DEVICES="-1", PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    return env


def _python_path() -> list:
    """This process's `sys.path`, absolute, this tfsparse's directory first."""
    import tfsparse

    entries = [os.path.dirname(os.path.dirname(os.path.abspath(tfsparse.__file__)))]
    entries += [os.path.abspath(entry or os.getcwd()) for entry in sys.path if isinstance(entry, str)]
    seen, result = set(), []
    for entry in entries:
        if entry not in seen and os.path.exists(entry):
            seen.add(entry)
            result.append(entry)
    return result


def _one_line(error) -> str:
    """`error`'s message on one line, without Keras' dump of the whole object config, cut to a sane length."""
    text = str(error).split(" Full object config:")[0]
    text = re.sub(r"\s+", " ", text).strip() or "(no message)"
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + " ..."


def _last_line(path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - 65536, 0))
            lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return "(no output)"
    lines = [line for line in lines if line]
    return _one_line(lines[-1]) if lines else "(no output)"


# --- the subprocess --------------------------------------------------------------------------------------------


def _exit_with_parent(parent):
    """Exits this subprocess when the exporting process is gone (killed before it could stop us)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="tfsparse-exit-with-parent", daemon=True).start()


def _child(tmp):
    from tfsparse.deploy.convert import convert_finalized
    from tfsparse.deploy.targets import get_target

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"the subprocess runs on Keras backend {keras.backend.backend()!r}, not 'tensorflow'")
    with open(os.path.join(tmp, _ARGS), encoding="utf-8") as handle:
        args = json.load(handle)
    name = args["name"]
    for module in args["modules"]:
        try:
            importlib.import_module(module)
        except Exception as error:
            raise ExportError(
                f"The TensorFlow-backend subprocess converting model {name!r} could not import module "
                f"{module!r}, which defines custom objects of the model ({type(error).__name__}: "
                f"{_one_line(error)}). Make it importable from sys.path, or run with KERAS_BACKEND=tensorflow."
            ) from error
    try:
        model = keras.saving.load_model(os.path.join(tmp, _MODEL), compile=False)
    except Exception as error:
        raise ExportError(
            f"The TensorFlow-backend subprocess could not load model {name!r} saved on the {args['backend']!r} "
            f"backend ({type(error).__name__}: {_one_line(error)}). Register custom layers with "
            "`@keras.saving.register_keras_serializable()` in an importable module, or run with "
            "KERAS_BACKEND=tensorflow."
        ) from error
    _call_once(model, name)
    samples = None
    if args["input_names"] is not None:
        with np.load(os.path.join(tmp, _SAMPLES), allow_pickle=False) as data:
            arrays = [data[f"input_{i}"] for i in range(len(args["input_names"]))]
        samples = [{key: array[i:i + 1] for key, array in zip(args["input_names"], arrays)}
                   for i in range(len(arrays[0]))]
    converted = convert_finalized(model, get_target(args["target"]), samples=samples,
                                  allow_ineligible=args["allow_ineligible"], name=name)
    with open(os.path.join(tmp, _RESULT), "w", encoding="utf-8") as handle:
        json.dump({"dense_fp32_bytes": converted.dense_fp32_bytes, "densified": converted.densified,
                   "xnnpack_lint": converted.xnnpack_lint, "fc_lint": converted.fc_lint}, handle)
    with open(os.path.join(tmp, _TFLITE), "wb") as handle:  # last: its presence means success
        handle.write(converted.content)


def _call_once(model, name):
    """Calls a loaded subclassed model once on zeros, as `finalize` does: Keras exports only called models."""
    from keras.src.models.functional import Functional

    shapes = getattr(model, "_build_shapes_dict", None)
    if isinstance(model, (keras.Sequential, Functional)) or getattr(model, "_called", True) or not shapes:
        return

    def zeros(shape):
        return np.zeros([1 if d is None else d for d in shape], dtype=model.input_dtype)

    try:
        model(*[keras.tree.map_shape_structure(zeros, value) for value in shapes.values()], training=False)
    except Exception as error:
        raise ExportError(
            f"The TensorFlow-backend subprocess could not call the loaded model {name!r} on inputs of shape "
            f"{list(shapes.values())} ({type(error).__name__}: {_one_line(error)}). Make sure "
            "`from_config(get_config())` rebuilds the same model, or run with KERAS_BACKEND=tensorflow."
        ) from error


def main(argv) -> int:
    """`python -m tfsparse.deploy.cross_backend DIRECTORY PARENT_PID` (run by `convert`, not by hand)."""
    if len(argv) != 2:
        print("usage: python -m tfsparse.deploy.cross_backend DIRECTORY PARENT_PID (run by tfsparse.deploy.export)",
              file=sys.stderr)
        return 2
    tmp = argv[0]
    _exit_with_parent(int(argv[1]))
    try:
        _child(tmp)
    except KeyboardInterrupt:
        return 130
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent as one message
        message = str(error) if isinstance(error, (ExportError, IneligibleError)) else _one_line(error)
        with open(os.path.join(tmp, _ERROR), "w", encoding="utf-8") as handle:
            json.dump({"type": type(error).__name__, "message": message or "(no message)",
                       "reasons": list(getattr(error, "reasons", [])),
                       "target": getattr(error, "target", None)}, handle)
        print(f"{type(error).__name__}: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

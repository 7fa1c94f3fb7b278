"""`export(model, path)`: a trained Keras model to a verified `.tflite` file.

Steps: check the arguments (before any work), `finalize` a copy of the
model, save it with Keras' `model.export(format="tf_saved_model")`, convert
it with `tf.lite.TFLiteConverter` for the target (see
`tfsparse.deploy.targets`), keep sparse encoding only for the tensors where
it is smaller (`tfsparse.deploy.encoding`), for target `xnnpack` check with
`tfsparse.xnnpack.lint` that XNNPACK's sparse path will fire (refused
otherwise, unless `allow_ineligible=True`), run the file with LiteRT against
the Keras model (`tfsparse.deploy.verify`), and only then write it,
atomically (a temporary file in the same directory, then `os.replace`).
On any error (a refused `xnnpack` export included) no file is left behind,
an existing file at `path` is left untouched, and the input model is never
modified.

On another Keras backend (JAX, PyTorch) `export` does the same, with the same
arguments and targets: the checks, `finalize` and the verification run here,
against the model on that backend, while saving and converting run in a
TensorFlow-backend subprocess (`tfsparse.deploy.cross_backend`; Keras fixes
its backend per process, and the SavedModel Keras exports from JAX through
`jax2tf` converts to a different graph, one XNNPACK's sparse path rejects).
That subprocess costs a TensorFlow start (seconds) per export, and custom
layers must then live in an importable module, not in `__main__`.

Size rule: a tensor stays sparse-encoded only if that makes it smaller,
decided per tensor on the converted file (`encoding.densify_where_not_smaller`;
int8 `FULLY_CONNECTED` weights also stay dense for LiteRT's sake, see there).
If no tensor stays sparse, the converter's own dense encoding of the same
target is written instead (for `int8` this costs a second calibration), so
the file is then exactly the dense file; if some stay sparse, each saves
more than its estimated bookkeeping, so the file is smaller than the dense
one up to that estimate's error (tens of bytes).

Example:

>>> import os, tempfile, keras, numpy as np
>>> from tfsparse.deploy import export
>>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(4)])
>>> kernel = model.layers[0].kernel
>>> _ = kernel.assign(np.where(np.random.default_rng(0).random(kernel.shape) < 0.9, 0.0, kernel.numpy()))
>>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
>>> result = export(model, path, target="sparse")
>>> result.size_bytes < result.dense_fp32_bytes, result.verification.passed
(True, True)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings

import keras
from absl import logging

from tfsparse.deploy import encoding, samples as samples_lib, targets
from tfsparse.deploy.errors import ExportError, IneligibleError
from tfsparse.deploy.finalize import check_model, finalize
from tfsparse.interrupts import interrupts_not_swallowed
from tfsparse.outputs import check_output_path, write_bytes
from tfsparse.deploy.result import ExportResult
from tfsparse.deploy.tflite_file import TfliteSummary
from tfsparse.deploy.verify import signature_inputs, verify_tflite


def export(model, path, *, target="sparse", representative_data=None, verify=True, overwrite=False,
           allow_ineligible=False):
    """Converts `model` to a `.tflite` file at `path` for `target`.

    Works on every Keras backend: on JAX or PyTorch the conversion runs in a
    TensorFlow-backend subprocess (see `tfsparse.deploy.cross_backend`), and
    the file is verified against `model` on the current backend.

    Args:
        model: A built `keras.Model`, e.g. trained with a tfsparse strategy.
        path: The `.tflite` file to write; its directory must exist.
        target: `"dense"` (float32), `"sparse"` (float32, sparse weights where
            smaller), `"xnnpack"` (as sparse, batch fixed to 1, and refused
            unless `tfsparse.xnnpack.lint` predicts that XNNPACK's sparse
            path fires; see `allow_ineligible`), `"int8"` (full-integer
            quantization with float32 inputs/outputs), `"sparse-fc"`
            (float32, block-sparse `FULLY_CONNECTED` weights kept sparse,
            refused unless `tfsparse.sparse_fc.lint` predicts that a
            `FULLY_CONNECTED` runs TFLite's 1x4 block-sparse kernel) or
            `"sparse-fc-int8"` (as `int8` with per-tensor
            `FULLY_CONNECTED` weights, refused unless one runs the 1x16
            kernel). See `tfsparse.deploy.targets`. Defaults to `"sparse"`.
        representative_data: Input samples: an array, a dict/list of arrays
            for several inputs, or an iterable of such batches (Keras-style
            `(x, y)` elements are fine), with finite values (NaN or
            infinity is refused). Calibrates `int8` (required there)
            and is the verification input for every target (up to 64
            samples). Defaults to `None`: verification uses 8 deterministic
            random normal inputs.
        verify: Run the file with LiteRT and compare with Keras before
            writing it. Defaults to `True`.
        overwrite: Replace an existing file at `path`. Defaults to `False`.
        allow_ineligible: Only for `target="xnnpack"`, `"sparse-fc"` and
            `"sparse-fc-int8"`: write the file even when the linter predicts
            that the target's sparse path will not run, with a `UserWarning`
            listing the reasons, instead of raising. `True` with any other
            target is refused (those targets make no such promise, so there
            is nothing to allow). Defaults to `False`.

    Returns:
        An `ExportResult` (path, sizes, sparse tensors, verification, and
        for `xnnpack` the linter's verdict in `xnnpack_lint`, for
        `sparse-fc`/`sparse-fc-int8` the `FULLY_CONNECTED` verdict in
        `fc_lint`).

    Raises:
        ValueError: for invalid arguments (checked before any work), e.g.
            `representative_data` holding NaN or infinity.
        IneligibleError: (a `ValueError`) for `target="xnnpack"` when
            XNNPACK's sparse path will not fire for the converted file, and
            for `"sparse-fc"`/`"sparse-fc-int8"` when no `FULLY_CONNECTED`
            runs the target's block-sparse kernel on tflite-runtime 2.14
            (aarch64) or one cannot run there (the message and
            `error.reasons` say why; nothing is written), unless
            `allow_ineligible=True`.
        ExportError: if saving or conversion fails (says what to try), or
            if an `int8` conversion comes out not quantized; on JAX or
            PyTorch also if the model uses a class defined in `__main__`, or
            the conversion subprocess dies or times out.
        VerificationError: if the file does not reproduce the model (the
            file is then not written; pass `verify=False` to keep it).

    Example:

    >>> import os, tempfile, keras, numpy as np
    >>> from tfsparse.deploy import export
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    >>> path = os.path.join(tempfile.mkdtemp(), "m.tflite")
    >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    >>> export(model, path, target="int8", representative_data=x).target
    'int8'
    """
    spec = targets.get_target(target)
    check_allow_ineligible(allow_ineligible, spec.name)
    path = _check_path(path, overwrite=overwrite)
    check_model(model)
    if spec.int8 and representative_data is None:
        raise ValueError(
            "Invalid value received for argument `representative_data`. Expected input "
            f"samples (e.g. a few hundred training inputs) to calibrate target={spec.name!r}; pass "
            "representative_data=x_train[:200]. Received: representative_data=None"
        )
    samples = None
    if representative_data is not None:
        samples = samples_lib.from_representative_data(
            representative_data, model=model, names=samples_lib.keras_input_names(model))
    with interrupts_not_swallowed():  # a Ctrl-C or SIGTERM during the work stops it before writing
        if keras.backend.backend() == "tensorflow":
            converted = convert_finalized(finalize(model, shrink=targets.shrinks(spec)), spec, samples=samples,
                                          allow_ineligible=allow_ineligible, name=model.name)
        else:  # the SavedModel and the TFLite converter need the TensorFlow backend: convert in a subprocess
            from tfsparse.deploy import cross_backend

            converted = cross_backend.convert(model, spec, samples=samples, allow_ineligible=allow_ineligible)
        verification = None
        if verify:
            verification = verify_tflite(converted.content, model=model, samples=converted.samples,
                                         quantized=spec.int8)
    content, xnnpack_lint, fc_lint = converted.content, converted.xnnpack_lint, converted.fc_lint
    write_bytes(path, content, overwrite=overwrite)
    summary = TfliteSummary.from_bytes(content, path=path)
    logging.info("tfsparse.deploy: wrote %s (%d bytes)", path, len(content))
    if xnnpack_lint is not None and not xnnpack_lint["fires"]:
        warnings.warn(
            f"Wrote {path} with allow_ineligible=True, but XNNPACK's sparse path will not fire for it "
            "(it will run dense):\n" + _bullets(xnnpack_lint["reasons"])
            + "\nSee `tfsparse inspect --xnnpack` for the verdict per operator.",
            UserWarning, stacklevel=2)
    if fc_lint is not None and not fc_lint["fires"]:
        warnings.warn(
            f"Wrote {path} with allow_ineligible=True, but no FULLY_CONNECTED of it will run TFLite's "
            f"{fc_lint['kernel']} kernel on {fc_lint['runtime']}:\n" + _bullets(fc_lint["reasons"])
            + "\nSee `tfsparse inspect --fc` for the verdict per operator.",
            UserWarning, stacklevel=2)
    if spec.name == "int8":
        _warn_unsupported_fc(content, path)
    return ExportResult(
        path=path,
        target=spec.name,
        size_bytes=len(content),
        dense_fp32_bytes=converted.dense_fp32_bytes,
        sparse_tensors=summary.sparse_tensors,
        densified_tensors=dict(converted.densified),
        operators=summary.operators,
        input_shapes={t.name: t.shape for t in summary.inputs},
        verification=verification,
        xnnpack_lint=xnnpack_lint,
        fc_lint=fc_lint,
    )


@dataclasses.dataclass(frozen=True)
class Converted:
    """What `convert_finalized` made, before verification and writing.

    Attributes:
        content: The `.tflite` file as bytes.
        dense_fp32_bytes: The size of the plain dense float32 conversion.
        densified: `{tensor name: reason}` (see `ExportResult.densified_tensors`).
        xnnpack_lint: The linter's verdict for target `xnnpack`, else `None`.
        samples: The input samples keyed by the file's signature input
            names, or `None`.
        fc_lint: The `FULLY_CONNECTED` verdict for targets `sparse-fc` and
            `sparse-fc-int8` (see `ExportResult.fc_lint`), else `None`.
    """

    content: bytes
    dense_fp32_bytes: int
    densified: dict
    xnnpack_lint: dict | None
    samples: list | None
    fc_lint: dict | None = None


def convert_finalized(deployable, spec, *, samples, allow_ineligible, name) -> Converted:
    """Saves the finalized `deployable` as a SavedModel and converts it for `spec` (TensorFlow backend only).

    `samples` are keyed by `samples.keras_input_names`; `name` is the model
    name for messages. Raises `ExportError` or `IneligibleError` as `export`.
    """
    with tempfile.TemporaryDirectory(prefix="tfsparse_export_") as tmp:
        saved = os.path.join(tmp, "saved_model")
        _save(deployable, saved, spec, name)
        dense_fp32 = _convert(saved, targets.TARGETS["dense"], name, what="dense float32 reference")
        samples = samples_lib.match_signature(samples, tuple(signature_inputs(dense_fp32)))
        content = dense_fp32 if spec.name == "dense" else _convert(saved, spec, name, samples=samples)
        densified = {}
        if spec.sparse:
            content, densified = encoding.densify_where_not_smaller(
                content, keep_block_sparse_fc=spec.fc_kernel is not None)
            if densified and not TfliteSummary.from_bytes(content).sparse_tensors:
                logging.info("tfsparse.deploy: no tensor is smaller sparse; using the dense encoding")
                content = dense_fp32 if not spec.int8 else _convert(
                    saved, spec, name, samples=samples, sparse=False)
    if spec.int8:
        _check_quantized(content, name)
    xnnpack_lint = _xnnpack_verdict(content, allow_ineligible=allow_ineligible) if spec.name == "xnnpack" else None
    fc_lint = _fc_verdict(content, spec, allow_ineligible=allow_ineligible) if spec.fc_kernel else None
    return Converted(content=bytes(content), dense_fp32_bytes=len(dense_fp32), densified=dict(densified),
                     xnnpack_lint=xnnpack_lint, samples=samples, fc_lint=fc_lint)


def check_allow_ineligible(allow_ineligible, target) -> None:
    """Raises a `ValueError` unless `allow_ineligible` is a bool, `True` only with a gated target
    (`xnnpack`, `sparse-fc`, `sparse-fc-int8`)."""
    if not isinstance(allow_ineligible, bool):
        raise ValueError(
            "Invalid value received for argument `allow_ineligible`. Expected a bool. "
            f"Received: allow_ineligible={allow_ineligible!r}"
        )
    if allow_ineligible and target not in targets.GATED:
        gated = ", ".join(repr(name) for name in targets.GATED[1:-1])
        raise ValueError(
            "Invalid value received for argument `allow_ineligible`. Expected False unless "
            f"target={targets.GATED[0]!r}, {gated} or {targets.GATED[-1]!r}: only those targets check that "
            f"their sparse path runs, so there is nothing to allow for target={target!r}. "
            "Received: allow_ineligible=True"
        )


def _bullets(reasons):
    return "\n".join(f"  - {reason}" for reason in reasons)


_SIZE_ONLY = {"xnnpack": "sparse", "sparse-fc": "sparse", "sparse-fc-int8": "int8"}


def ineligible_message(reasons, *, target="xnnpack", sparse=None, allow="allow_ineligible=True") -> str:
    """The message of the `IneligibleError` of `target` for `reasons`.

    `sparse` spells the size-only alternative (default `target='sparse'`,
    `target='int8'` for `sparse-fc-int8`) and `allow` the override; the CLI
    passes its flag spellings.
    """
    sparse = sparse or f"target={_SIZE_ONLY.get(target, 'sparse')!r}"
    if target == "xnnpack":
        what, inspect = "take XNNPACK's sparse path", "--xnnpack"
    else:
        kernel = targets.get_target(target).fc_kernel
        what, inspect = (f"run any FULLY_CONNECTED with TFLite's {kernel} kernel on tflite-runtime 2.14 "
                         "(aarch64)"), "--fc"
    return (f"Invalid value received for argument `target`. The converted model will not {what}:\n"
            + _bullets(reasons) + f"\nFix the model (see `tfsparse inspect {inspect}`), "
            f"export with {sparse} for size only, or pass {allow} to export anyway. "
            f"Received: target={target!r}")


def _xnnpack_verdict(content, *, allow_ineligible):
    """`{"fires", "reasons"}` of the linter on the converted `content`; raises if it does not fire."""
    from tfsparse.xnnpack import lint

    report = lint(bytes(content))
    verdict = {"fires": bool(report.fires), "reasons": list(report.reasons)}
    logging.info("tfsparse.deploy: XNNPACK sparse path %s", "predicted to fire" if report.fires else
                 "will not fire: " + "; ".join(report.reasons))
    if not report.fires and not allow_ineligible:
        raise IneligibleError(ineligible_message(report.reasons), reasons=report.reasons)
    return verdict


def _fc_verdict(content, spec, *, allow_ineligible):
    """The `fc_lint` dict of the `FULLY_CONNECTED` linter on `content`; raises unless `spec.fc_kernel` runs."""
    from tfsparse.sparse_fc import lint
    from tfsparse.sparse_fc.kernels import UNSUPPORTED

    report = lint(bytes(content))
    unsupported = [v for v in report.ops if v.kernel == UNSUPPORTED]
    fires = report.count(spec.fc_kernel) > 0 and not unsupported
    reasons = []
    if not fires:
        if not report.ops:
            reasons = ["no FULLY_CONNECTED operator: the model has no Dense layer to run block-sparse"]
        else:  # why each op is not run sparse (its first reason; the others say where it runs instead)
            refused = unsupported if unsupported and report.count(spec.fc_kernel) else report.ops
            reasons = [f"op {v.index} ({v.weight.split(';')[0]}): {v.reasons[0]}" for v in refused if v.reasons]
    verdict = {"fires": fires, "kernel": spec.fc_kernel, "runtime": report.runtime.name, "reasons": reasons,
               "ops": [{"index": v.index, "weight": v.weight, "kernel": v.kernel, "reasons": list(v.reasons)}
                       for v in report.ops]}
    logging.info("tfsparse.deploy: %s", f"{report.count(spec.fc_kernel)} FULLY_CONNECTED predicted to run "
                 f"{spec.fc_kernel}" if fires else f"{spec.fc_kernel} will not run: " + "; ".join(reasons))
    if not fires and not allow_ineligible:
        raise IneligibleError(ineligible_message(reasons, target=spec.name), reasons=reasons, target=spec.name)
    return verdict


def _warn_unsupported_fc(content, path):
    """Warns when an `int8` file has a `FULLY_CONNECTED` that tflite-runtime 2.14 cannot run right."""
    from tfsparse.sparse_fc import lint
    from tfsparse.sparse_fc.kernels import UNSUPPORTED

    report = lint(bytes(content))
    broken = [f"op {v.index} ({v.weight.split(';')[0]}): {r}" for v in report.ops if v.kernel == UNSUPPORTED
              for r in v.reasons]
    if broken:
        warnings.warn(f"Wrote {path}, but {report.runtime.label} on aarch64 cannot run it right:\n" + _bullets(broken)
                      + "\nIt runs in TensorFlow's LiteRT (verified); for ARM export with target='sparse-fc-int8'.",
                      UserWarning, stacklevel=3)


def _check_path(path, *, overwrite):
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).endswith(".tflite"):
        raise ValueError(
            "Invalid value received for argument `path`. Expected a file path ending in "
            f"`.tflite`. Received: path={path!r}"
        )
    return check_output_path(path, overwrite=overwrite, argument="path")


def _check_quantized(content, name):
    """Raises `ExportError` unless the int8 `content` really is quantized (no float weights, int8 tensors)."""
    summary = TfliteSummary.from_bytes(content)
    floats = [t.name for t in summary.tensors if t.bytes and t.dtype.startswith("float")]
    if floats or not any(t.dtype == "int8" for t in summary.tensors):
        listed = ", ".join(repr(tensor) for tensor in floats[:3]) + (", ..." if len(floats) > 3 else "")
        raise ExportError(
            f"The TFLite converter did not quantize model {name!r} to int8"
            + (f": {len(floats)} constant tensor(s) stayed float ({listed})" if floats else ": no int8 tensor")
            + ". This happens when calibration sees NaN or infinite activations; check that the model's "
            "outputs on representative_data are finite, or export with target='sparse' (float32). "
            "Nothing was written."
        )


def _save(model, directory, spec, name):
    logging.info("tfsparse.deploy: saving %r as a SavedModel", name)
    try:
        signature = targets.input_signature(model, batch_size=spec.batch_size)
        model.export(directory, format="tf_saved_model", input_signature=signature, verbose=False)
    except Exception as error:
        raise ExportError(
            f"Keras could not save model {name!r} as a TensorFlow SavedModel "
            f"({type(error).__name__}: {error}). Every layer must be traceable by "
            "TensorFlow; call the model once on real inputs and check custom layers' "
            "`call` for Python-side effects."
        ) from error


def _convert(saved, spec, name, *, samples=None, sparse=None, what=None):
    what = what or f"target={spec.name!r}"
    logging.info("tfsparse.deploy: converting %r to TFLite (%s%s)", name, what,
                 f", calibrating on {len(samples)} samples" if spec.int8 and samples else "")
    try:
        return targets.run_converter(targets.converter(saved, spec, sparse=sparse, samples=samples))
    except Exception as error:
        hint = ("Probably an op has no int8 kernel; try target='sparse' (float32) or replace "
                "that layer." if spec.int8 else
                "Check that every layer maps to TFLite builtin ops; try target='dense' to see "
                "whether the sparsity optimization is the cause.")
        message = str(error).strip().splitlines()
        raise ExportError(
            f"The TFLite converter rejected model {name!r} ({what}): "
            f"{type(error).__name__}: {' '.join(message[:3]) or '(no message)'}. {hint}"
        ) from error

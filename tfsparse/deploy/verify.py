"""`verify_tflite`: run a `.tflite` with LiteRT and compare it with Keras.

The `.tflite` runs in LiteRT's default configuration (XNNPACK delegate on)
one sample at a time, so static-batch files (the `xnnpack` target) work too;
the Keras model runs on the same samples in inference mode
(`training=False`).

Pass/fail rules:
- any NaN or infinity in the Keras or the .tflite outputs (or in the
  errors) fails: such outputs cannot be compared.
- float32 files: the maximum absolute error divided by the output scale
  (the largest `|keras output|`) must be at most `1e-4`.
- int8 files report mean/max absolute error and, for outputs whose last
  dimension is larger than 1 (classifier logits or probabilities), the
  fraction of samples whose arg-max over the last axis agrees ("top-1
  agreement"). They fail only when the output is grossly wrong: top-1
  agreement below 0.5, or, for outputs without a top-1, a mean absolute
  error above 25% of the output scale. Quantization error itself is expected.

Inputs and outputs are matched by name: signature inputs by the Keras input
names (a single input needs no name), outputs by the keys of a dict output
or by position (`output_0`, `output_1`, ...), as Keras' SavedModel export
names them. Anything else is refused with an error rather than guessed.

Example:

>>> import os, pathlib, tempfile, keras
>>> from tfsparse.deploy import export
>>> from tfsparse.deploy.verify import verify_tflite
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
>>> _ = export(model, path, target="dense", verify=False)
>>> verify_tflite(pathlib.Path(path).read_bytes(), model=model).passed
True
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from absl import logging
from ai_edge_litert.interpreter import Interpreter

from tfsparse.calibration import check_finite
from tfsparse.deploy import samples as samples_lib
from tfsparse.deploy.errors import VerificationError

FLOAT_RTOL = 1e-4
MIN_TOP1_AGREEMENT = 0.5
MAX_INT8_MEAN_ERROR = 0.25
DEFAULT_RANDOM_SAMPLES = 8
MAX_SAMPLES = 64


@dataclasses.dataclass(frozen=True)
class Verification:
    """Figures from comparing a `.tflite` with its Keras model.

    Attributes:
        samples: Number of samples compared.
        quantized: Whether the int8 rules applied.
        max_abs_error: Largest `|tflite - keras|` over all outputs.
        mean_abs_error: Mean `|tflite - keras|` over all outputs.
        output_scale: Largest `|keras output|` (the scale of the outputs).
        max_rel_error: `max_abs_error / output_scale`.
        top1_agreement: Lowest top-1 agreement over the classifier-like
            outputs, or `None` if there are none.
        passed: Whether the file passed the rules above.
        reason: Why it failed (empty when it passed).
    """

    samples: int
    quantized: bool
    max_abs_error: float
    mean_abs_error: float
    output_scale: float
    max_rel_error: float
    top1_agreement: float | None
    passed: bool
    reason: str = ""

    def to_dict(self) -> dict:
        """A JSON-serializable dict of the figures."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        text = (f"{'PASS' if self.passed else 'FAIL'} on {self.samples} samples: "
                f"max abs error {self.max_abs_error:.3g}, relative {self.max_rel_error:.3g}, "
                f"mean abs error {self.mean_abs_error:.3g}")
        if self.top1_agreement is not None:
            text += f", top-1 agreement {self.top1_agreement:.1%}"
        return text + (f" ({self.reason})" if self.reason else "")


def verify_tflite(content, *, model, samples=None, quantized=False, raise_on_failure=True):
    """Runs `content` with LiteRT and compares it with `model`.

    Args:
        content: The `.tflite` model as bytes.
        model: The Keras model it was converted from.
        samples: Input samples, a list of `{signature_input_name: array of
            batch 1}` dicts (see `tfsparse.deploy.samples`); at most
            `MAX_SAMPLES` are used. Defaults to `None`: `DEFAULT_RANDOM_SAMPLES`
            deterministic random inputs.
        quantized: Apply the int8 rules instead of the float32 tolerance.
            Defaults to `False`.
        raise_on_failure: Raise instead of returning a failed result.
            Defaults to `True`.

    Returns:
        A `Verification`.

    Raises:
        ValueError: if `samples` hold NaN or infinity.
        VerificationError: if LiteRT cannot run the file, the inputs or
            outputs cannot be matched, or (with `raise_on_failure`) the
            outputs differ beyond the rules (or are not finite).
    """
    runner = _runner(content)
    details = runner.get_input_details()
    if samples is None:
        samples = samples_lib.random_samples(details, count=DEFAULT_RANDOM_SAMPLES)
    samples = list(samples)[:MAX_SAMPLES]
    names = tuple(details)
    if not samples or set(samples[0]) != set(names):
        raise VerificationError(
            f"The samples have inputs {sorted(samples[0]) if samples else []} but the .tflite "
            f"signature expects {sorted(names)}."
        )
    check_finite(list(samples_lib.stack(samples, names).values()), "samples", received=samples)
    logging.info("tfsparse.deploy: verifying the .tflite against Keras on %d samples", len(samples))
    expected = _keras_outputs(model, samples_lib.stack(samples, samples_lib.model_order(model, names)))
    got = [_run(runner, sample) for sample in samples]
    pairs = _match_outputs(expected, got)
    result = _compare(pairs, len(samples), quantized)
    if not result.passed and raise_on_failure:
        raise VerificationError(
            f"The .tflite output does not match the Keras model: {result}. Export with "
            "verify=False to keep the file anyway, or check for layers whose TFLite "
            "conversion changes their function (custom ops, training-only behaviour).",
            verification=result,
        )
    return result


def signature_inputs(content):
    """`{name: LiteRT input details}` of the default signature of `content`."""
    return _runner(content).get_input_details()


def _runner(content):
    try:
        interpreter = Interpreter(model_content=bytes(content))
        runner = interpreter.get_signature_runner()
    except Exception as error:
        raise VerificationError(
            f"LiteRT could not load the converted model: {error}. The converter produced "
            "a file the runtime rejects; try another target (e.g. 'dense') and report it."
        ) from error
    return runner  # it holds a reference to its interpreter


def _run(runner, sample):
    try:
        outputs = runner(**sample)
    except Exception as error:
        raise VerificationError(
            f"LiteRT could not run the converted model: {error}. The file would fail on "
            "devices with the same runtime; try another target (e.g. 'sparse' instead of "
            "'int8') or verify=False to write it anyway."
        ) from error
    return {k: np.array(v) for k, v in outputs.items()}


def _keras_outputs(model, batch):
    names = tuple(batch)
    struct = None if isinstance(model, keras.Sequential) else getattr(model, "_inputs_struct", None)
    if struct is not None:  # Functional: rebuild its own input structure (list of one, dict, ...)
        flat_names = [getattr(t, "name", None) for t in keras.tree.flatten(struct)]
        if len(flat_names) == 1 and len(names) == 1:
            arrays = [batch[names[0]]]
        elif sorted(flat_names) == sorted(names):
            arrays = [batch[n] for n in flat_names]
        else:
            arrays = None
        inputs = None if arrays is None else keras.tree.pack_sequence_as(struct, arrays)
    else:
        inputs = batch[names[0]] if len(names) == 1 else None
    if inputs is None:
        raise VerificationError(
            f"Cannot match the .tflite inputs {list(names)} with the Keras model's inputs; "
            "give a multi-input model named `keras.Input` layers (a Functional model), or "
            "export with verify=False."
        )
    return model(inputs, training=False)


def _match_outputs(expected, got):
    """Pairs of (keras array, tflite array of all samples) per output."""
    got_names = set(got[0])
    if isinstance(expected, dict) and set(expected) == got_names:
        keys = sorted(expected)
        flat = {k: expected[k] for k in keys}
    else:
        flat_expected = keras.tree.flatten(expected)
        keys = [f"output_{i}" for i in range(len(flat_expected))]
        if len(flat_expected) == 1 and len(got_names) == 1:
            keys = list(got_names)
        if set(keys) != got_names:
            raise VerificationError(
                f"Cannot match the .tflite outputs {sorted(got_names)} with the Keras "
                f"model's {len(flat_expected)} outputs; export with verify=False."
            )
        flat = dict(zip(keys, flat_expected))
    return [(np.asarray(keras.ops.convert_to_numpy(flat[k]), dtype=np.float64),
             np.concatenate([g[k] for g in got], axis=0).astype(np.float64)) for k in keys]


def _compare(pairs, count, quantized) -> Verification:
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf outputs fail below, without warnings
        errors = [np.abs(t - k) for k, t in pairs]
        max_abs = max(float(e.max()) if e.size else 0.0 for e in errors)
        total = sum(e.size for e in errors)
        mean_abs = float(sum(e.sum() for e in errors) / total) if total else 0.0
        scale = max(float(np.abs(k).max()) if k.size else 0.0 for k, _ in pairs)
        rel = max_abs / max(scale, np.finfo(np.float32).tiny)
    agreements = [float(np.mean(np.argmax(k, -1) == np.argmax(t, -1)))
                  for k, t in pairs if k.ndim >= 2 and k.shape[-1] > 1]
    top1 = min(agreements) if agreements else None
    reason = ""
    keras_bad = sum(_non_finite(k) for k, _ in pairs)
    tflite_bad = sum(_non_finite(t) for _, t in pairs)
    if keras_bad or tflite_bad or not np.isfinite([max_abs, mean_abs, rel]).all():
        reason = (f"outputs are not finite: {keras_bad} NaN/inf values from Keras, {tflite_bad} from the "
                  ".tflite, so they cannot be compared")
    elif not quantized and rel > FLOAT_RTOL:
        reason = f"relative error {rel:.3g} > {FLOAT_RTOL:g}"
    elif quantized and top1 is not None and top1 < MIN_TOP1_AGREEMENT:
        reason = f"top-1 agreement {top1:.1%} < {MIN_TOP1_AGREEMENT:.0%}"
    elif quantized and top1 is None and mean_abs > MAX_INT8_MEAN_ERROR * scale:
        reason = f"mean abs error {mean_abs:.3g} > {MAX_INT8_MEAN_ERROR:.0%} of the output scale {scale:.3g}"
    return Verification(samples=count, quantized=quantized, max_abs_error=max_abs, mean_abs_error=mean_abs,
                        output_scale=scale, max_rel_error=rel, top1_agreement=top1,
                        passed=not reason, reason=reason)


def _non_finite(array) -> int:
    return int(array.size - np.count_nonzero(np.isfinite(array)))

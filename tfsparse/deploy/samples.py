"""Sample inputs for int8 calibration and verification.

Everything is normalized to a list of samples, each a dict
`{signature_input_name: array with batch dimension 1}`, the form both the
TFLite converter's calibrator and LiteRT's signature runner take.

`representative_data` may be:
- an array: a batch of samples for a single-input model;
- a dict `{input_name: array}` or a list/tuple of arrays (in `model.inputs`
  order) for a multi-input model;
- an iterable of such batches (a generator, a `tf.data.Dataset`, a list),
  whose elements may also be Keras-style `(x, y)` or `(x, y, sample_weight)`
  tuples, of which only `x` is used.
It is read once and held in memory, so pass a few hundred samples at most.

Example:

>>> import keras, numpy as np
>>> from tfsparse.deploy import samples
>>> inputs = keras.Input((3,), name="features")
>>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
>>> samples.keras_input_names(model)
('features',)
>>> batch = samples.from_representative_data(np.zeros((4, 3)), model=model, names=("features",))
>>> len(batch), batch[0]["features"].shape
(4, (1, 3))
"""

from __future__ import annotations

import keras
import numpy as np

from tfsparse.calibration import check_finite, describe


def from_representative_data(data, *, model, names):
    """Splits `representative_data` into single-sample dicts keyed by `names`.

    Args:
        data: See the module docstring.
        model: The Keras model (for input names and count).
        names: The TFLite signature input names, in the model's input order.

    Returns:
        A list of `{name: array of batch 1}` dicts, one per sample.

    Numeric arrays are cast to the dtype of the model's input (e.g.
    float64 to float32), as Keras does when it calls the model.

    Raises:
        ValueError: if the data does not match the model's inputs (names,
            count, sample shape, dtype), or holds NaN or infinity
            (`tfsparse.calibration.check_finite`).
    """
    names = tuple(names)
    if _is_batch(data, len(names)):
        batches = [data]
    else:
        try:
            batches = iter(data)
        except TypeError:
            raise ValueError(_bad(data, names, "it is neither an array nor an iterable of batches")) from None
    specs = _input_specs(model, len(names))
    labels = [f"input {name!r}" if len(names) > 1 else "the input" for name in names]
    result = []
    for element in batches:
        arrays = _as_input_arrays(_strip_targets(element, len(names)), model, names)
        if specs is not None:
            arrays = [_fit(a, spec, label, data) for a, spec, label in zip(arrays, specs, labels)]
        counts = {len(a) for a in arrays}
        if len(counts) != 1:
            raise ValueError(_bad(data, names, f"a batch has inputs with different sample counts {sorted(counts)}"))
        for i in range(counts.pop()):
            result.append({name: a[i:i + 1] for name, a in zip(names, arrays)})
    if not result:
        raise ValueError(_bad(data, names, "it holds no samples"))
    check_finite(list(stack(result, names).values()), "representative_data", received=data)
    return result


def random_samples(details, *, count, seed=0):
    """Deterministic random inputs: float normal(0, 1); integers in {0, 1}.

    Args:
        details: `{name: {"shape_signature": ..., "dtype": ...}}` as LiteRT's
            `SignatureRunner.get_input_details()` returns them.
        count: How many samples to make.
        seed: The numpy seed. Defaults to `0`.

    Raises:
        ValueError: if an input has an unknown dimension besides the batch.
    """
    rng = np.random.default_rng(seed)
    shapes = {}
    for name, detail in details.items():
        shape = [int(d) for d in detail["shape_signature"]]
        if any(d < 0 for d in shape[1:]):
            raise ValueError(
                f"Invalid value received for argument `representative_data`. Input {name!r} "
                f"has an unknown dimension (shape {shape}), so tfsparse cannot make random "
                "verification inputs for it; pass representative_data with real inputs, "
                "or verify=False. Received: representative_data=None"
            )
        shapes[name] = [1, *shape[1:]] if shape else []
    result = []
    for _ in range(count):
        sample = {}
        for name, detail in details.items():
            dtype = np.dtype(detail["dtype"])
            if dtype.kind == "f":
                sample[name] = rng.standard_normal(shapes[name]).astype(dtype)
            elif dtype.kind == "b":
                sample[name] = rng.integers(0, 2, shapes[name]).astype(bool)
            else:
                sample[name] = rng.integers(0, 2, shapes[name]).astype(dtype)
        result.append(sample)
    return result


def keras_input_names(model):
    """The model's input names as its SavedModel signature will call them.

    Keras names signature inputs after the `keras.Input` names; unnamed
    inputs of subclassed models become `args_0`, `args_1`, ...
    """
    from tfsparse.deploy.targets import input_signature

    specs = keras.tree.flatten(input_signature(model))
    return tuple(getattr(spec, "name", None) or f"args_{i}" for i, spec in enumerate(specs))


def match_signature(samples, names):
    """Re-keys `samples` (keyed by `keras_input_names`) by the .tflite `names`.

    Raises:
        ValueError: if the names cannot be matched.
    """
    if samples is None:
        return None
    keys = tuple(samples[0])
    if len(keys) == 1 and len(names) == 1:
        return [{names[0]: s[keys[0]]} for s in samples]
    if set(keys) == set(names):
        return samples
    raise ValueError(
        f"Cannot match the model's inputs {list(keys)} with the .tflite signature inputs "
        f"{sorted(names)}; give each `keras.Input` a name (a Functional model) so they match."
    )


def model_order(model, names):
    """Signature input `names` reordered as `model.inputs` when they match.

    Keras' SavedModel export names signature inputs after the `keras.Input`
    names; LiteRT lists them sorted. Single inputs need no matching.
    """
    names = tuple(names)
    model_names = [getattr(t, "name", None) for t in getattr(model, "inputs", None) or []]
    return tuple(model_names) if len(names) > 1 and sorted(model_names) == sorted(names) else names


def stack(samples, names):
    """Joins single-sample dicts into one batch per input name."""
    return {name: np.concatenate([s[name] for s in samples], axis=0) for name in names}


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__array__"))


def _is_batch(x, n_inputs) -> bool:
    """Whether `x` is one batch (as opposed to an iterable of batches)."""
    if _is_array(x):
        return True
    if isinstance(x, dict):
        return all(_is_array(v) for v in x.values())
    if n_inputs > 1 and isinstance(x, (list, tuple)) and len(x) == n_inputs:
        return all(_is_array(v) for v in x)
    return False


def _strip_targets(element, n_inputs):
    """Keeps `x` from a Keras-style `(x, y)` / `(x, y, sample_weight)` tuple."""
    if isinstance(element, (list, tuple)) and len(element) in (2, 3):
        if n_inputs == 1 and _is_array(element[0]):
            return element[0]
        if n_inputs > 1 and isinstance(element[0], (dict, list, tuple)) and len(element[0]) == n_inputs:
            return element[0]
    if isinstance(element, (list, tuple)) and len(element) == 1 and n_inputs == 1:
        return element[0]
    return element


def _as_input_arrays(x, model, names):
    n = len(names)
    if isinstance(x, dict):
        keys = set(x)
        if keys == set(names):
            return [np.asarray(x[k]) for k in names]
        model_names = [t.name for t in getattr(model, "inputs", None) or []]
        if len(model_names) == n and keys == set(model_names):
            return [np.asarray(x[k]) for k in model_names]
        raise ValueError(_bad(x, names, f"its keys {sorted(keys)} are not the model's input names"))
    if n == 1 and _is_array(x):
        return [np.asarray(x)]
    if isinstance(x, (list, tuple)) and len(x) == n and all(_is_array(v) for v in x):
        return [np.asarray(v) for v in x]
    raise ValueError(_bad(x, names, f"the model has {n} input(s)"))


def _input_specs(model, count):
    """The model's flattened input specs (`shape`, `dtype`), in `keras_input_names` order, or `None`."""
    from tfsparse.deploy.targets import input_signature

    specs = keras.tree.flatten(input_signature(model))
    return specs if len(specs) == count else None


def _fit(array, spec, which, data):
    """`array` checked against `spec`'s sample shape and cast to its dtype; `ValueError` if it cannot fit."""
    shape = tuple(spec.shape)
    if array.ndim != len(shape) or any(d is not None and d != int(a) for d, a in zip(shape[1:], array.shape[1:])):
        dims = ", ".join("None" if d is None else str(d) for d in shape[1:])
        raise ValueError(
            "Invalid value received for argument `representative_data`. Expected arrays of shape "
            f"(N, {dims}) for {which} of the model (N samples, batch first); a batch has shape "
            f"{tuple(array.shape)}. Received: representative_data={describe(data)}"
        )
    try:
        want = np.dtype(spec.dtype)
    except TypeError:
        return array
    have = array.dtype
    if have == want:
        return array
    if have.kind in "biuf" and (want.kind == "f" or (want.kind in "iu" and have.kind in "biu")):
        with np.errstate(over="ignore"):  # values beyond float32 become inf: refused by check_finite
            return array.astype(want)
    raise ValueError(
        "Invalid value received for argument `representative_data`. Expected numbers that convert to "
        f"{want.name} for {which} of the model; a batch has dtype {have}. "
        f"Received: representative_data={describe(data)}"
    )


def _bad(data, names, why):
    return (
        "Invalid value received for argument `representative_data`. Expected an "
        f"array (or, for several inputs, a dict keyed by {list(names)} or a list in "
        "`model.inputs` order), or an iterable of such batches; "
        f"{why}. Received: representative_data of type {type(data).__name__}"
    )

"""Calibration data: the input batches of arrays, lists of arrays or iterables of batches.

Tools that run a model over a little data without training it (BatchNorm
recalibration, one-shot pruning) take `data` in one form: a NumPy array, a
list of arrays (one per model input), or an iterable of batches (a
`tf.data.Dataset` or generator of inputs, or of `(inputs, targets, ...)`
tuples whose targets are dropped).

Example:

>>> import numpy as np
>>> from tfsparse.calibration import input_batches
>>> [len(batch) for batch in input_batches(np.zeros((10, 3)), batch_size=4)]
[4, 4, 2]
>>> [len(batch) for batch in input_batches(np.zeros((10, 3)), batch_size=4, steps=2)]
[4, 4]

`check_finite` refuses NaN and infinity in such data (here, and in
`tfsparse.deploy` for representative and verification samples):

>>> from tfsparse.calibration import check_finite
>>> check_finite(np.array([[0.0, 1.0], [np.nan, np.inf]]), "data")
Traceback (most recent call last):
...
ValueError: Invalid value received for argument `data`. Expected finite values; 2 of 4 values are NaN/inf (first at sample 1). Remove or fix those samples. Received: data=<float64 array of shape (2, 2)>
"""

from __future__ import annotations

import itertools

import numpy as np

from tfsparse.errors import check_positive_int


def check_batching(batch_size, steps) -> None:
    """Raises `ValueError` unless `batch_size` and `steps` (or `None`) are positive integers."""
    check_positive_int(batch_size, "batch_size", optional=True)
    check_positive_int(steps, "steps", optional=True)


def check_finite(x, argument, *, offset=0, received=None) -> None:
    """Raises `ValueError` if the floating-point arrays in `x` hold NaN or infinity.

    Args:
        x: An array (NumPy, or anything with `shape`, `dtype` and
            `__array__`, e.g. an eager tensor), or a dict, list or tuple of
            them (nested); other leaves and non-float arrays are ignored.
            Axis 0 is the sample axis.
        argument: The argument name for the message.
        offset: Added to the reported sample index (for the batches of an
            iterable, the samples before this one). Defaults to `0`.
        received: What to describe after "Received:". Defaults to `x`.

    Raises:
        ValueError: in Keras' template, with the count of NaN/inf values and
            the index of the first sample holding one (no array dump).
    """
    bad = total = 0
    first = None
    for array in _float_arrays(x):
        total += array.size
        finite = np.isfinite(array)
        if finite.all():
            continue
        bad += int(array.size - np.count_nonzero(finite))
        row = 0 if array.ndim == 0 else int(np.argmin(finite.reshape(len(array), -1).all(axis=1)))
        first = row if first is None else min(first, row)
    if bad:
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Expected finite values; {bad} of {total} values "
            f"are NaN/inf (first at sample {first + offset}). Remove or fix those samples. "
            f"Received: {argument}={describe(x if received is None else received)}"
        )


def describe(x) -> str:
    """A short description of data for error messages: kind, dtype and shape, never the values."""
    if _is_array(x):
        return f"<{getattr(x.dtype, 'name', x.dtype)} array of shape {tuple(x.shape)}>"
    if isinstance(x, (list, tuple, dict)):
        return f"<{type(x).__name__} of {len(x)} element{'' if len(x) == 1 else 's'}>"
    return f"<{type(x).__name__}>"


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__array__"))


def _float_arrays(x):
    if isinstance(x, dict):
        for value in x.values():
            yield from _float_arrays(value)
    elif isinstance(x, (list, tuple)):
        for value in x:
            yield from _float_arrays(value)
    elif _is_array(x):
        array = np.asarray(x)
        if array.dtype.kind in "fc":
            yield array


def input_batches(data, batch_size, steps=None):
    """Yields the input batches of `data`, at most `steps` of them.

    Args:
        data: A NumPy array, a list of arrays (several inputs), or an
            iterable of batches of inputs or of `(inputs, targets, ...)`
            tuples (only the inputs are yielded).
        batch_size: Batch size when `data` is an array or a list of arrays.
        steps: Yield at most this many batches. Defaults to `None` (all).

    Raises:
        ValueError: if an array holds NaN or infinity (`check_finite`):
            for arrays when the first batch is requested, for an iterable
            when the batch holding them is.
    """
    batches = _all_batches(data, batch_size)
    return batches if steps is None else itertools.islice(batches, steps)


def _all_batches(data, batch_size):
    if isinstance(data, (np.ndarray, list)):
        arrays = [np.asarray(a) for a in (data if isinstance(data, list) else [data])]
        check_finite(arrays, "data", received=data)
        for start in range(0, len(arrays[0]) if arrays else 0, batch_size):
            parts = [a[start:start + batch_size] for a in arrays]
            yield parts[0] if len(parts) == 1 else parts
        return
    seen = 0
    for batch in data:
        inputs = batch[0] if isinstance(batch, tuple) else batch
        check_finite(inputs, "data", offset=seen, received=data)
        seen += _sample_count(inputs)
        yield inputs


def _sample_count(inputs) -> int:
    arrays = [inputs] if _is_array(inputs) else list(inputs.values()) if isinstance(inputs, dict) else (
        list(inputs) if isinstance(inputs, (list, tuple)) else [])
    shapes = [tuple(a.shape) for a in arrays if _is_array(a)]
    return int(shapes[0][0]) if shapes and shapes[0] else 0

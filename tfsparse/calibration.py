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
"""

from __future__ import annotations

import itertools

import numpy as np


def check_batching(batch_size, steps) -> None:
    """Raises `ValueError` unless `batch_size` and `steps` (or `None`) are positive integers."""
    for name, value in (("batch_size", batch_size), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"Invalid value received for argument `{name}`. Expected a positive integer. "
                             f"Received: {name}={value!r}")


def input_batches(data, batch_size, steps=None):
    """Yields the input batches of `data`, at most `steps` of them.

    Args:
        data: A NumPy array, a list of arrays (several inputs), or an
            iterable of batches of inputs or of `(inputs, targets, ...)`
            tuples (only the inputs are yielded).
        batch_size: Batch size when `data` is an array or a list of arrays.
        steps: Yield at most this many batches. Defaults to `None` (all).

    Raises:
        ValueError: (when the first batch is requested) if an array holds
            NaN or infinity.
    """
    batches = _all_batches(data, batch_size)
    return batches if steps is None else itertools.islice(batches, steps)


def _all_batches(data, batch_size):
    if isinstance(data, (np.ndarray, list)):
        arrays = [np.asarray(a) for a in (data if isinstance(data, list) else [data])]
        for array in arrays:
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError("Invalid value received for argument `data`. Expected finite values; it holds NaN "
                                 "or infinity. Clean or drop those samples.")
        for start in range(0, len(arrays[0]) if arrays else 0, batch_size):
            parts = [a[start:start + batch_size] for a in arrays]
            yield parts[0] if len(parts) == 1 else parts
        return
    for batch in data:
        yield batch[0] if isinstance(batch, tuple) else batch

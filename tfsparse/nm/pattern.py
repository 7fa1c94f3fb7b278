"""N:M block arithmetic: parse `"2:4"`, build N:M masks, count violating blocks.

A weight satisfies N:M along an axis when every block of M consecutive entries
along that axis (all other indices fixed) holds at most N non-zeros. When the
axis length is not a multiple of M, blocks are taken after zero-padding it to
the next multiple (what kernels with 2:4 support do with a ragged reduction
dimension): the last, partial block may then hold at most N non-zeros too.

Example:

>>> import numpy as np
>>> from tfsparse.nm.pattern import nm_mask, parse_nm, violations
>>> n, m = parse_nm("2:4")
>>> w = np.array([[1.0, -4.0, 3.0, 2.0], [0.5, 0.1, -0.2, 9.0]])
>>> nm_mask(w, n, m, axis=1)
array([[0., 1., 1., 0.],
       [1., 0., 0., 1.]], dtype=float32)
>>> violations(w, n, m, axis=1), violations(w * nm_mask(w, n, m, axis=1), n, m, axis=1)
((2, 2), (0, 2))
"""

from __future__ import annotations

import numpy as np


def check_nm(n, m) -> tuple:
    """Validates `1 <= n < m` (integers) and returns `(n, m)`.

    Raises:
        ValueError: for anything else, in Keras' error template.
    """
    for argument, value in (("n", n), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(
                f"Invalid value received for argument `{argument}`. Expected an integer, "
                f"with 1 <= n < m (e.g. n=2, m=4). Received: {argument}={value!r}"
            )
    if not 1 <= n < m:
        raise ValueError(
            "Invalid value received for argument `n`. Expected 1 <= n < m: keep n of "
            f"every m weights (n=m would prune nothing). Received: n={n}, m={m}"
        )
    return int(n), int(m)


def parse_nm(text) -> tuple:
    """Parses `"N:M"` (e.g. `"2:4"`) into a validated `(n, m)`.

    Example:

    >>> parse_nm("1:4")
    (1, 4)
    """
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        n, m = (int(part.strip()) for part in parts)
    except ValueError:
        raise ValueError(
            "Invalid value received for argument `nm`. Expected `N:M` with integers "
            f"1 <= N < M, e.g. `2:4`. Received: nm={text!r}"
        ) from None
    return check_nm(n, m)


def _blocks(values, m, axis):
    """`(blocks, restore)`: `values` as `(rows, blocks, m)` zero-padded, and
    a function taking such an array back to `values`' shape."""
    values = np.asarray(values)
    moved = np.moveaxis(values, axis, -1)
    length = moved.shape[-1]
    padded_length = -(-length // m) * m
    rows = moved.reshape(-1, length)
    rows = np.pad(rows, ((0, 0), (0, padded_length - length)))
    blocks = rows.reshape(rows.shape[0], padded_length // m, m)

    def restore(array):
        flat = array.reshape(array.shape[0], padded_length)[:, :length]
        return np.moveaxis(flat.reshape(moved.shape), -1, axis)

    return blocks, restore


def nm_mask(values, n: int, m: int, axis: int) -> np.ndarray:
    """A 0/1 float32 mask keeping the `n` largest `|values|` of every block.

    Blocks are `m` consecutive entries along `axis` (zero-padded at the end,
    see the module docstring). Zeros are the smallest, so a weight that is
    already N:M keeps its pattern; among equal magnitudes the first wins.

    Args:
        values: The weight, an array of any rank >= 1.
        n: Entries kept per block.
        m: Block size.
        axis: The axis blocks run along.

    Returns:
        A float32 array of `values`' shape.
    """
    n, m = check_nm(n, m)
    blocks, restore = _blocks(np.abs(np.asarray(values, dtype=np.float64)), m, axis)
    order = np.argsort(-blocks, axis=-1, kind="stable")
    mask = np.zeros(blocks.shape, dtype=np.float32)
    np.put_along_axis(mask, order[..., :n], 1.0, axis=-1)
    return restore(mask)


def violations(values, n: int, m: int, axis: int) -> tuple:
    """`(violating_blocks, blocks)`: blocks with more than `n` non-zeros.

    Blocks as in `nm_mask`.
    """
    n, m = check_nm(n, m)
    blocks, _ = _blocks(np.asarray(values) != 0, m, axis)
    counts = blocks.sum(axis=-1)
    return int(np.count_nonzero(counts > n)), int(counts.size)

"""How a target sparsity is split over weights (the `scope` of `GMP`).

Each function returns one sparsity per weight:

- `uniform`: every weight gets the target.
- `erk`: Erdős–Rényi-Kernel (Evci et al. 2020, "Rigging the Lottery"): a
  weight's density is proportional to `sum(shape) / prod(shape)`, so small
  layers stay denser than big ones.
- `global_magnitude`: one magnitude threshold across all weights.
- `latency_aware`: one threshold on `|w|` relative to its layer's mean over
  the layer's MACs per weight relative to the mean cost: layers that cost
  more (and whose weights are small) are pruned harder.

All but `uniform` allocate whole weights: weight `i` gets `zeros_i / size_i`
with `sum(zeros_i) == round(target * sum(size_i))`, so the pooled sparsity is
exact, and no weight is sparser than `max_sparsity`: a weight that would be
is fixed at the cap and the rest re-solved. Raising the target never lowers a
weight's zero count (for `erk`; for the magnitude ones when the weights
pruned before are the zeros), so pruning masks only grow.

Example:

>>> from tfsparse import allocation
>>> shapes = [(3, 3, 3, 16), (1, 1, 64, 256), (256, 10)]  # a stem, a pointwise conv, a classifier
>>> [round(s, 3) for s in allocation.erk(shapes, 0.9)]
[0.817, 0.938, 0.671]
>>> [round(s, 3) for s in allocation.uniform([432, 16384, 2560], 0.9)]
[0.9, 0.9, 0.9]
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from tfsparse.errors import invalid_argument as _invalid

DEFAULT_MAX_SPARSITY = 0.98
"""The cap of `erk` and `latency_aware` (and of `GMP(scope="erk" | "latency")`)."""


def uniform(sizes, target) -> list[float]:
    """Every weight gets `target`.

    Args:
        sizes: Number of scalars of each weight.
        target: Sparsity in [0, 1).

    Returns:
        `[target] * len(sizes)`.

    Example:

    >>> uniform([100, 10], 0.9)
    [0.9, 0.9]
    """
    _check_sizes("sizes", sizes)
    return [_check_target(target)] * len(sizes)


def erk(shapes, target, *, max_sparsity=DEFAULT_MAX_SPARSITY, block_size=1) -> list[float]:
    """Erdős–Rényi-Kernel sparsities, pooled exactly `target`.

    Density of weight `i` is `eps * sum(shape_i) / prod(shape_i)` (a conv
    kernel `(kh, kw, cin, cout)`: `(kh + kw + cin + cout) / (kh * kw * cin * cout)`),
    with `eps` solved so that `(1 - target)` of all scalars are kept. Weights
    that would be denser than 1 are kept dense, weights that would be sparser
    than `max_sparsity` are fixed at it, and `eps` is re-solved over the
    rest; this is solved in whole weights (each weight within one scalar of
    the real-valued solution), so the pooled count is exact.

    Args:
        shapes: Shape of each weight (tuples of positive integers).
        target: Pooled sparsity in [0, 1).
        max_sparsity: Highest sparsity of any one weight, in (0, 1), at least
            `target`; `None` for no cap. Defaults to `0.98`.
        block_size: Scalars per block: the zeros are counted in whole blocks
            (`GMP(block_shape=...)`), pooled `round(target * blocks)`, each
            weight within one block of the real-valued solution; every size
            must be a multiple of it. Defaults to `1`.

    Returns:
        One sparsity per weight, `zeros / size`.

    Raises:
        ValueError: for a bad argument, or when the caps leave too few
            scalars to reach `target`.

    Example:

    >>> shapes = [(3, 3, 3, 16), (1, 1, 64, 256), (256, 10)]
    >>> [round(s, 3) for s in erk(shapes, 0.9)]
    [0.817, 0.938, 0.671]
    >>> [round(s, 3) for s in erk(shapes, 0.9, max_sparsity=0.92)]  # the cap moves zeros to the others
    [0.875, 0.92, 0.776]
    """
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, (list, tuple)) or not shapes or not all(
        isinstance(shape, (list, tuple)) and shape and all(_is_int(d) and d > 0 for d in shape) for shape in shapes
    ):  # tuple(tensor.shape) for a TensorShape
        raise _invalid("shapes", "a non-empty list of weight shapes of positive integers, e.g. [(3, 3, 3, 16)]",
                       shapes)
    sizes = [math.prod(int(d) for d in shape) for shape in shapes]
    if not _is_int(block_size) or block_size < 1 or any(size % block_size for size in sizes):
        raise _invalid("block_size", f"a positive integer dividing every weight size {sizes}", block_size)
    sizes = [size // block_size for size in sizes]  # in blocks (scalars when block_size is 1)
    caps, pooled = _budget(sizes, _check_target(target), max_sparsity)
    # Zero number k of weight i is due once eps falls below the eps at which its real-valued count reaches k - 1/2;
    # the `pooled` such events with the largest eps are the zeros (ties: the earlier weight first). A higher target
    # takes more events, so no count ever drops. (With blocks, every eps is divided by block_size: same order.)
    events = np.concatenate([(1.0 - (np.arange(1, cap + 1) - 0.5) / size) * size / sum(shape)
                             for shape, size, cap in zip(shapes, sizes, caps)])
    owner = np.repeat(np.arange(len(sizes)), caps)
    zeros = np.bincount(owner[np.argsort(-events, kind="stable")[:pooled]], minlength=len(sizes))
    return [float(z / n) for z, n in zip(zeros, sizes)]


def global_magnitude(values, target, *, max_sparsity=None) -> list[float]:
    """Sparsities from one magnitude threshold across all weights, pooled exactly `target`.

    The smallest `|values|` over all weights are pruned (ties: the later
    scalar first, as `tfsparse.strategies.gmp.keep_largest`); a weight that
    would be sparser than `max_sparsity` is fixed at it and the threshold is
    raised over the others.

    Args:
        values: The weights (arrays).
        target: Pooled sparsity in [0, 1).
        max_sparsity: Highest sparsity of any one weight, in (0, 1), at least
            `target`; `None` (the default) for no cap.

    Returns:
        One sparsity per weight, `zeros / size`.

    Raises:
        ValueError: for a bad argument, or when the caps leave too few
            scalars to reach `target`.

    Example:

    >>> import numpy as np
    >>> small, large = np.full(10, 0.1), np.arange(1.0, 11.0)
    >>> global_magnitude([small, large], 0.5)
    [1.0, 0.0]
    >>> global_magnitude([small, large], 0.5, max_sparsity=0.8)
    [0.8, 0.2]
    """
    magnitudes = _magnitudes(values)
    target = _check_target(target)
    return _threshold(magnitudes, target, max_sparsity)


def latency_aware(values, costs, target, *, max_sparsity=DEFAULT_MAX_SPARSITY) -> list[float]:
    """Sparsities that prune harder where the MACs are, pooled exactly `target`.

    The score of a scalar is `(|w| / mean |w| of its weight) / (costs[i] /
    mean(costs))`; one threshold on it prunes `round(target * total)`
    scalars (XNNPACK's sparse path needs the pooled count), a weight that
    would be sparser than `max_sparsity` is fixed at it and the threshold
    raised over the others. Zeros score 0, so they are pruned first.

    Args:
        values: The weights (arrays).
        costs: MACs per scalar of each weight (a 1x1 convolution: its output
            height * width; a `Dense` on vectors: 1), positive.
        target: Pooled sparsity in [0, 1).
        max_sparsity: Highest sparsity of any one weight, in (0, 1), at least
            `target`; `None` for no cap. Defaults to `0.98`.

    Returns:
        One sparsity per weight, `zeros / size`.

    Raises:
        ValueError: for a bad argument, or when the caps leave too few
            scalars to reach `target`.

    Example:

    >>> import numpy as np
    >>> same = np.linspace(0.1, 1.0, 10)
    >>> latency_aware([same, same], [64, 1], 0.5, max_sparsity=0.9)
    [0.9, 0.1]
    """
    magnitudes = _magnitudes(values)
    if isinstance(costs, (str, bytes)) or np.ndim(costs) != 1 or len(costs) != len(magnitudes) or not all(
        isinstance(c, numbers.Real) and not isinstance(c, bool) and math.isfinite(c) and c > 0 for c in costs
    ):
        raise _invalid("costs", f"{len(magnitudes)} positive finite numbers (MACs per scalar of each weight)", costs)
    target = _check_target(target)
    relative_cost = np.asarray(costs, dtype=np.float64) / np.mean(costs)
    scores = [m / (m.mean() or 1.0) / c for m, c in zip(magnitudes, relative_cost)]
    return _threshold(scores, target, max_sparsity)


# ---------------------------------------------------------------- helpers
def _threshold(scores, target, max_sparsity):
    """Sparsities from pruning the lowest `scores` across weights (ties: the later scalar first), each capped."""
    sizes = np.array([s.size for s in scores])
    caps, pooled = _budget(sizes.tolist(), target, max_sparsity)
    zeros, capped = np.zeros(len(scores), dtype=np.int64), np.zeros(len(scores), dtype=bool)
    while True:  # a weight over its cap is fixed there and the others share the rest: at most len(scores) rounds
        free = np.flatnonzero(~capped)
        zeros[capped] = caps[capped]
        flat = np.concatenate([scores[i] for i in free])
        owner = np.repeat(free, sizes[free])
        order = np.argsort(-flat, kind="stable")  # as keep_largest: the first `size - zeros` are kept
        pruned = order[flat.size - (pooled - zeros[capped].sum()):]
        zeros[free] = np.bincount(owner[pruned], minlength=len(scores))[free]
        over = free[zeros[free] > caps[free]]
        if not over.size:
            return [float(z / n) for z, n in zip(zeros, sizes)]
        capped[over] = True


def _budget(sizes, target, max_sparsity):
    """(the most zeros of each weight, the pooled zeros), or a ValueError when the caps do not allow them."""
    pooled = round(target * sum(sizes))
    if max_sparsity is None:
        return np.array(sizes), pooled
    if isinstance(max_sparsity, bool) or not isinstance(max_sparsity, numbers.Real) or not 0 < max_sparsity < 1:
        raise _invalid("max_sparsity", "a float in (0, 1), or None for no cap", max_sparsity)
    if max_sparsity < target:
        raise _invalid("max_sparsity", f"a cap >= the target sparsity {target}", max_sparsity)
    caps = np.array([math.floor(round(max_sparsity * size, 6)) for size in sizes])
    if pooled > caps.sum():
        raise _invalid("max_sparsity", f"a cap that lets {pooled} of the {sum(sizes)} scalars be zero (target "
                       f"{target}); in whole scalars it allows only {caps.sum()}", max_sparsity)
    return caps, pooled


def _magnitudes(values):
    if isinstance(values, (str, bytes, np.ndarray)) or not isinstance(values, (list, tuple)) or not values:
        raise _invalid("values", "a non-empty list of weight arrays", values)
    magnitudes = [np.abs(np.asarray(v, dtype=np.float64)).ravel() for v in values]
    if not all(m.size and np.isfinite(m).all() for m in magnitudes):
        raise _invalid("values", "non-empty weight arrays of finite numbers", values)
    return magnitudes


def _check_sizes(argument, sizes):
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (list, tuple)) or not sizes or not all(
        _is_int(n) and n > 0 for n in sizes
    ):
        raise _invalid(argument, "a non-empty list of positive integers", sizes)


def _check_target(target) -> float:
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0 <= target < 1:
        raise _invalid("target", "a float in [0, 1)", target)
    return float(target)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)

"""A seeded, class-balanced subset of labelled samples (for quick runs).

Example:

>>> import numpy as np
>>> from tfsparse.data.subset import balanced_indices
>>> labels = np.array([0] * 90 + [1] * 10)
>>> np.bincount(labels[balanced_indices(labels, 20, seed=0)]).tolist()
[10, 10]
"""

from __future__ import annotations

import numpy as np


def balanced_indices(labels, limit, *, seed=0) -> np.ndarray:
    """Picks `limit` indices spread as evenly over the classes as possible.

    Every class gets `limit // num_classes` samples (one more for some, in a
    seeded order); a class with too few samples gives all it has and the
    others fill the gap. The indices come back sorted, so the subset keeps
    the original order.

    Args:
        labels: 1-D integer labels.
        limit: How many indices to pick; at least 1. All indices are returned
            when `limit >= len(labels)`.
        seed: Seed of the random choice. Defaults to `0`.

    Returns:
        Sorted int64 indices into `labels`.

    Raises:
        ValueError: if `limit` is not a positive integer.

    Example:

    >>> import numpy as np
    >>> from tfsparse.data.subset import balanced_indices
    >>> balanced_indices(np.array([0, 0, 1, 1]), 2, seed=3).size
    2
    """
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(
            "Invalid value received for argument `limit`. Expected a positive "
            f"integer (the number of training samples to keep). Received: limit={limit!r}"
        )
    labels = np.asarray(labels)
    if limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    shuffled = labels[order]
    # Rank of each shuffled sample within its class: 0 for the first of each class, 1 for the next...
    by_class = np.argsort(shuffled, kind="stable")
    starts = np.searchsorted(shuffled[by_class], shuffled[by_class], side="left")
    rank = np.empty(len(labels), np.int64)
    rank[by_class] = np.arange(len(labels)) - starts
    # Take rank 0 of every class first, then rank 1, ...; ties broken by the random order.
    chosen = order[np.lexsort((np.arange(len(labels)), rank))[:limit]]
    return np.sort(chosen)

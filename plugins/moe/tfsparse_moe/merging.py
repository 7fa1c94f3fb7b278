"""Merging a pruned expert into its most similar kept expert.

Similarity is the cosine similarity of the experts' flattened weights (all
kernels and biases). The kept expert becomes the routing-frequency-weighted
average `(f_keep * W_keep + f_pruned * W_pruned) / (f_keep + f_pruned)` (a
plain average when both frequencies are zero), as in frequency-weighted
expert merging (M-SMoE, Li et al. 2024). The router is left as it is: the
pruned expert's tokens go to their next choices.

Example:

>>> import numpy as np
>>> from tfsparse_moe.merging import merge_expert, most_similar
>>> kernels = [np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])]  # 3 experts, 2 weights each
>>> most_similar(kernels, 0, candidates=[1, 2])
1
>>> merge_expert(kernels, source=0, target=1, source_weight=1.0, target_weight=3.0)[0][1].round(6).tolist()
[0.925, 0.075]
"""

from __future__ import annotations

import numpy as np


def flatten_experts(arrays) -> np.ndarray:
    """`[E, P]`: each expert's weights (first axis of every array) flattened and concatenated."""
    return np.concatenate([np.reshape(np.asarray(a, np.float64), (np.shape(a)[0], -1)) for a in arrays], axis=1)


def cosine_similarity(flat, index) -> np.ndarray:
    """`[E]` cosine similarity of expert `index` with every expert (0 against an all-zero expert)."""
    norms = np.linalg.norm(flat, axis=1)
    dots = flat @ flat[index]
    denominator = norms * norms[index]
    return np.where(denominator > 0, dots / np.where(denominator > 0, denominator, 1.0), 0.0)


def most_similar(arrays, index, *, candidates) -> int:
    """The expert among `candidates` whose weights are most similar to expert `index` (first on ties)."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("Invalid value received for argument `candidates`. Expected at least one expert to "
                         f"merge into. Received: candidates={candidates!r}")
    similarity = cosine_similarity(flatten_experts(arrays), index)
    return candidates[int(np.argmax(similarity[candidates]))]


def merge_expert(arrays, *, source, target, source_weight, target_weight) -> list:
    """Returns copies of `arrays` where expert `target` is the weighted average of `target` and `source`.

    Args:
        arrays: Per-expert arrays (experts on the first axis).
        source: The expert merged away (left unchanged here; it is pruned).
        target: The kept expert that absorbs it.
        source_weight: The source's routing frequency (>= 0).
        target_weight: The target's routing frequency (>= 0).
    """
    total = float(source_weight) + float(target_weight)
    a, b = (0.5, 0.5) if total <= 0 else (float(target_weight) / total, float(source_weight) / total)
    merged = []
    for array in arrays:
        array = np.array(array, copy=True)
        array[target] = (a * np.asarray(array[target], np.float64)
                         + b * np.asarray(array[source], np.float64)).astype(array.dtype)
        merged.append(array)
    return merged

"""Pruning one weight matrix from its inputs' Hessian: SparseGPT, magnitude, and the error they leave.

A linear layer computes `X @ W.T`, with `W` of shape `(outputs, inputs)` (a
Keras Dense kernel transposed) and `X` the layer's inputs, one row per sample
(per pixel for a 1x1 convolution). The quality of a pruned `W_hat` is its
relative reconstruction error `||X W.T - X W_hat.T||_F / ||X W.T||_F`, which
needs only `H = X.T X / n` (see `reconstruction_error`).

`sparsegpt` (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models
Can Be Accurately Pruned in One-Shot") prunes the columns left to right in
blocks. In each block, each row prunes its share of the block's entries with
the lowest OBS saliency `w**2 / [H^-1]_cc**2` (read from the Cholesky factor
of the damped inverse Hessian), and every pruned weight's error is
compensated by updating the row's later, not yet pruned weights (the optimal
brain surgeon update), so the layer's outputs move as little as the inputs
allow. `magnitude` drops the smallest `|w|` of the whole matrix and updates
nothing: the baseline.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(512, 8)) @ rng.normal(size=(8, 8))  # correlated inputs
>>> w, h = rng.normal(size=(4, 8)), x.T @ x / len(x)
>>> obs, plain = sparsegpt(w, h, 0.5), magnitude(w, 0.5)
>>> [int((m == 0).sum()) for m in (obs, plain)]
[16, 16]
>>> bool(reconstruction_error(w, obs, h) < reconstruction_error(w, plain, h))
True
"""

from __future__ import annotations

import numpy as np

from tfsparse.strategies.gmp import keep_largest


def sparsegpt(weights, hessian, sparsity, *, damping=0.01, block_size=128, pruned=None):
    """Prunes `weights` with SparseGPT's OBS updates; returns the new matrix.

    Every row ends with `round(sparsity * inputs)` exact zeros (more only
    where `pruned` forces more): the block `[i1, i2)` prunes
    `round(sparsity * i2) - round(sparsity * i1)` entries of each row.
    Inputs that are always zero (`H[c, c] == 0`) are pruned first: they cost
    nothing. Kept weights change (that is the reconstruction).

    Args:
        weights: `(outputs, inputs)` array.
        hessian: `(inputs, inputs)` array, `X.T X / n` of the layer's inputs.
        sparsity: Fraction of each row to prune, in [0, 1).
        damping: Added to the diagonal of `H`, times the mean of its
            non-zero diagonal, so that `H` is invertible. Defaults to `0.01`.
        block_size: Columns per block (the mask of a block is chosen from
            weights already updated by the earlier blocks). Defaults to `128`.
        pruned: Optional boolean array of `weights`' shape: entries that must
            end pruned (an existing mask's zeros). Defaults to `None`.

    Returns:
        A float64 array of `weights`' shape with exact zeros where pruned.

    Raises:
        numpy.linalg.LinAlgError: if the damped `H` is not positive definite
            (use a larger `damping`).
    """
    w = np.array(weights, dtype=np.float64)
    rows, columns = w.shape
    h = np.array(hessian, dtype=np.float64)
    diagonal = np.diag(h).copy()
    dead = diagonal <= 0
    damp = damping * float(diagonal[~dead].mean()) if (~dead).any() else 0.0
    h[dead, :] = 0.0
    h[:, dead] = 0.0
    h[np.diag_indices(columns)] = np.where(dead, 1.0, diagonal + damp)
    upper = _upper_cholesky_of_inverse(h)
    forced = np.zeros(w.shape, bool) if pruned is None else np.asarray(pruned, bool)
    for start in range(0, columns, block_size):
        stop = min(start + block_size, columns)
        block, factor = w[:, start:stop].copy(), upper[start:stop, start:stop]
        scores = block ** 2 / np.diag(factor) ** 2
        scores[forced[:, start:stop] | dead[start:stop]] = -np.inf
        quota = round(sparsity * stop) - round(sparsity * start)
        mask = forced[:, start:stop].copy()
        if quota:
            chosen = np.argsort(scores, axis=1, kind="stable")[:, :quota]
            np.put_along_axis(mask, chosen, True, axis=1)
        errors = np.zeros_like(block)
        for i in range(stop - start):
            column = block[:, i]
            error = np.where(mask[:, i], column, 0.0) / factor[i, i]
            block[:, i:] -= np.outer(error, factor[i, i:])
            block[:, i] = np.where(mask[:, i], 0.0, column)
            errors[:, i] = error
        w[:, start:stop] = block
        w[:, stop:] -= errors @ upper[start:stop, stop:]
    return w


def _upper_cholesky_of_inverse(h):
    """`U` upper triangular with `U.T @ U == inv(h)`, `h` symmetric positive definite."""
    lower = np.linalg.cholesky(h)
    inverse_lower = np.linalg.solve(lower, np.eye(len(h)))  # L^-1, so inv(h) = L^-T L^-1
    inverse = inverse_lower.T @ inverse_lower
    return np.linalg.cholesky((inverse + inverse.T) / 2).T


def magnitude(weights, sparsity, *, pruned=None):
    """Zeroes the `round(sparsity * size)` smallest `|w|` of the matrix (zeros and `pruned` first); no update.

    Returns:
        A float64 copy of `weights` with exact zeros where pruned.
    """
    w = np.array(weights, dtype=np.float64)
    if pruned is not None:
        w[np.asarray(pruned, bool)] = 0.0
    return w * keep_largest(w, w.size - round(sparsity * w.size))


def reconstruction_error(weights, pruned_weights, hessian) -> float:
    """`||X W.T - X W_hat.T||_F / ||X W.T||_F` from `H = X.T X / n` alone.

    It is `sqrt(trace(D H D.T) / trace(W H W.T))` with `D = W - W_hat`; `0.0`
    when the layer's outputs are all zero.
    """
    w = np.asarray(weights, dtype=np.float64)
    difference = w - np.asarray(pruned_weights, dtype=np.float64)
    h = np.asarray(hessian, dtype=np.float64)
    total = float(np.sum((w @ h) * w))
    lost = max(float(np.sum((difference @ h) * difference)), 0.0)
    return float(np.sqrt(lost / total)) if total > 0 else 0.0

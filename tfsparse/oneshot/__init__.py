"""One-shot pruning with layer-wise reconstruction: `prune(model, data, sparsity)`, no training.

`prune` runs a little calibration data through a trained model and prunes
its Dense kernels and 1x1 convolution kernels one layer at a time, in the
order the model calls them. With `method="sparsegpt"` (Frantar & Alistarh
2023) each layer's kept weights are updated so that its outputs on the
calibration inputs change as little as possible (see
`tfsparse.oneshot.algorithms`). Each layer's inputs are computed with the
layers before it already pruned (SparseGPT's protocol), so each layer is
fitted to the inputs the pruned model really gives it. `method="magnitude"`
prunes the smallest weights of each kernel and updates nothing: the
baseline, with the same report.

Afterwards the kernels hold exact zeros and carry tfsparse masks
(`tfsparse.masks`), so a following `model.fit` keeps them zero, with or
without a strategy. A compiled model whose train step was already traced
gets a new one (`make_train_function(force=True)`, as strategies do), so
that the step applies the masks. To fine-tune with `gmp` at the same
target, give it `initial_sparsity` equal to the target (or a `Constant`
schedule): its magnitude rule ranks exact zeros first, so it keeps exactly
these zeros rather than regrowing them from a lower sparsity.

Example:

>>> import keras, numpy as np
>>> from tfsparse import oneshot
>>> model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, name="fc")])
>>> rng = np.random.default_rng(0)
>>> x = (rng.normal(size=(256, 16)) @ rng.normal(size=(16, 16))).astype("float32")
>>> report = oneshot.prune(model, x, 0.5)
>>> report["fc"].sparsity, int(np.count_nonzero(model.get_layer("fc").kernel.numpy()))
(0.5, 64)
>>> print(report)  # doctest: +ELLIPSIS
One-shot sparsegpt pruning to 50.0% (256 calibration samples)
layer  weight  ...
"""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np
from absl import logging

from tfsparse import masks
from tfsparse.calibration import check_batching, input_batches
from tfsparse.graph_insert import is_graph_model
from tfsparse.errors import invalid_argument as _invalid
from tfsparse.oneshot.algorithms import magnitude, reconstruction_error, sparsegpt
from tfsparse.oneshot.capture import call_order, kernel_from_matrix, layer_inputs, unsupported_reason, weight_matrix
from tfsparse.oneshot.report import LayerResult, OneShotReport
from tfsparse.prunable import check_model
from tfsparse.schedules import check_sparsity
from tfsparse.selection import select_weights
from tfsparse.strategy import _distribution_scope
from tfsparse.xnnpack.policy import check_policy, warn_if_not_sparse_enough, xnnpack_weights

#: Values of `prune`'s `method` argument.
METHODS = ("sparsegpt", "magnitude")

__all__ = ["METHODS", "LayerResult", "OneShotReport", "prune"]


def prune(model, data, sparsity, *, method="sparsegpt", layers=None, exclude=None, policy=None, batch_size=32,
          steps=None, damping=0.01, block_size=128) -> OneShotReport:
    """Prunes `model`'s Dense and 1x1 convolution kernels in one shot from calibration `data`.

    The layers are processed one at a time in the order the model calls them:
    run the calibration data to the layer (through the layers pruned before
    it), accumulate `H = X.T X / n` of its inputs in float64, prune its kernel
    (`sparsegpt`: every output unit loses `round(sparsity * inputs)` of its
    weights and its kept ones are updated; `magnitude`: the kernel's
    `round(sparsity * size)` smallest weights are zeroed), assign it and
    attach its mask. A weight that already has a tfsparse mask keeps its masked
    zeros. A layer called several times is pruned at its first call from
    the inputs of all its calls. If anything fails, every kernel is restored.

    Args:
        model: A built Sequential or Functional `keras.Model` (nested ones
            included); subclassed models are refused (they have no layer
            graph to read a layer's inputs from).
        data: Calibration inputs, without targets: a NumPy array, a list of
            arrays (several inputs), or an iterable of batches (a
            `tf.data.Dataset` of inputs or of `(inputs, targets)` tuples, the
            targets ignored). It is read once and kept in memory: a few
            hundred samples are typical (SparseGPT uses 128).
        sparsity: Fraction of each kernel to prune, in (0, 1).
        method: `"sparsegpt"` or `"magnitude"`. Defaults to `"sparsegpt"`.
        layers: Which weights to prune (see `tfsparse.selection`); `None`
            means every supported one: other prunable weights (3x3 or
            depthwise convolutions, embeddings, ...) are then skipped with a
            warning, whereas with explicit `layers` (or a `policy`) they are
            refused. Defaults to `None`.
        exclude: Weights to leave dense, same forms. Defaults to `None`.
        policy: `None`, or `"xnnpack"` for only the 1x1 convolutions XNNPACK
            runs sparse (see `tfsparse.xnnpack.policy`). Defaults to `None`.
        batch_size: Batch size when `data` is an array. Defaults to `32`.
        steps: Use at most this many batches. Defaults to `None` (all).
        damping: SparseGPT's dampening: this fraction of the mean diagonal
            of `H` is added to its diagonal. Defaults to `0.01`.
        block_size: SparseGPT's columns per block (a block's mask is chosen
            after the earlier blocks' updates; each row prunes its share of
            each block, so tiny blocks leave the rows little choice).
            Defaults to `128`.

    Returns:
        A `OneShotReport`: per layer the sparsity reached and the relative
        reconstruction error `||X W - X W_hat||_F / ||X W||_F` on its
        calibration inputs; `str(report)` is a table.

    Raises:
        ValueError: for a bad argument (named in the message), a subclassed
            model, empty or non-finite data (or non-finite layer inputs), a
            selection without a supported weight, an explicit selection with
            unsupported weights, or a Hessian that `damping` cannot make
            invertible.
    """
    sparsity = check_sparsity("sparsity", sparsity, allow_zero=False)
    if method not in METHODS:
        raise _invalid("method", f"one of {METHODS}", method)
    if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not 0 <= damping < math.inf:
        raise _invalid("damping", "a finite number >= 0, e.g. 0.01", damping)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise _invalid("block_size", "a positive integer, e.g. 128", block_size)
    check_batching(batch_size, steps)
    policy = check_policy(policy)
    check_model(model)
    if not is_graph_model(model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a Sequential or Functional model: one-shot "
            "pruning reads each layer's inputs from the layer graph, and a subclassed model "
            f"({type(model).__name__}) has none. Received: model={model.name!r}")
    weights = _targets(model, layers, exclude, policy, sparsity)
    batches = _calibration_batches(data, batch_size, steps)
    samples = sum(len(keras.tree.flatten(batch)[0]) for batch in batches)
    originals = [(w.variable, keras.ops.convert_to_numpy(w.variable.value)) for w in weights]
    try:
        results = [_prune_weight(model, weight, batches, sparsity, method, damping, block_size) for weight in weights]
    except BaseException:
        for variable, value in originals:
            variable.assign(value)
        raise
    before = {id(w.variable): w.variable.constraint for w in weights}
    with _distribution_scope(model):
        for weight in weights:
            masks.attach(weight.variable)
            masks.set_mask(weight.variable, keras.ops.convert_to_numpy(weight.variable.value) != 0)
    changed = any(w.variable.constraint is not before[id(w.variable)] for w in weights)
    if changed and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)  # a step traced before would miss the mask constraints
    return OneShotReport(method, sparsity, samples, tuple(results))



def _targets(model, layers, exclude, policy, sparsity):
    """The selected supported weights in call order; unsupported ones refused, or skipped with a warning."""
    weights = select_weights(model, layers=layers, exclude=exclude)
    if policy == "xnnpack":
        weights = xnnpack_weights(model, weights)
        warn_if_not_sparse_enough(sparsity)
    reasons = {id(w): unsupported_reason(w.layer, w.variable) for w in weights}
    order = call_order(model, [w.layer for w in weights if reasons[id(w)] is None])
    position = {id(layer): i for i, layer in enumerate(order)}
    for w in weights:
        if reasons[id(w)] is None and id(w.layer) not in position:
            reasons[id(w)] = "a layer the model's graph does not call"
    skipped = [f"{w.path} ({reasons[id(w)]})" for w in weights if reasons[id(w)] is not None]
    supported = sorted((w for w in weights if reasons[id(w)] is None), key=lambda w: position[id(w.layer)])
    argument = "model" if layers is None and policy is None else "layers"
    if not supported:
        raise ValueError(
            f"Invalid value received for argument `{argument}`. One-shot pruning reconstructs Dense kernels and "
            f"1x1 convolution kernels, and none is selected: {'; '.join(skipped)}. "
            f"Received: {argument}={model.name if argument == 'model' else layers!r}")
    if skipped and argument == "layers":
        raise ValueError(
            "Invalid value received for argument `layers`. One-shot pruning reconstructs Dense kernels and 1x1 "
            f"convolution kernels only; the selection also holds {'; '.join(skipped)}. Narrow `layers` or add "
            f"them to `exclude`. Received: layers={layers!r}")
    if skipped:
        warnings.warn(f"tfsparse.oneshot.prune leaves {len(skipped)} prunable weight(s) dense, as it only "
                      f"reconstructs Dense and 1x1 convolution kernels: {'; '.join(skipped)}. Select the "
                      "supported layers with `layers=` (or `exclude=` the others) to silence this.",
                      UserWarning, stacklevel=3)
    return supported


def _calibration_batches(data, batch_size, steps):
    """`data`'s input batches as NumPy structures, checked finite and non-empty."""
    batches = []
    for batch in input_batches(data, batch_size, steps):
        batch = keras.tree.map_structure(keras.ops.convert_to_numpy, batch)
        for array in keras.tree.flatten(batch):
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError("Invalid value received for argument `data`. Expected finite values; it holds NaN "
                                 "or infinity. Clean or drop those samples.")
        if len(keras.tree.flatten(batch)[0]):
            batches.append(batch)
    if not batches:
        raise ValueError("Invalid value received for argument `data`. Expected at least one calibration sample. "
                         "Received: empty data")
    return batches


def _prune_weight(model, weight, batches, sparsity, method, damping, block_size):
    layer, variable = weight.layer, weight.variable
    hessian = _hessian(model, layer, batches)
    kernel = keras.ops.convert_to_numpy(variable.value)
    matrix = weight_matrix(kernel)
    mask = masks.get_mask(variable)
    pruned = None if mask is None else weight_matrix(keras.ops.convert_to_numpy(mask.value)) == 0
    if method == "sparsegpt":
        try:
            result = sparsegpt(matrix, hessian, sparsity, damping=damping, block_size=block_size, pruned=pruned)
        except np.linalg.LinAlgError:
            raise _invalid("damping", f"a larger value: the damped Hessian of {layer.name!r}'s inputs is not "
                           "positive definite", damping) from None
    else:
        result = magnitude(matrix, sparsity, pruned=pruned)
    new_kernel = kernel_from_matrix(result, kernel.shape, kernel.dtype)
    variable.assign(new_kernel)
    reached = float(masks.sparsity(new_kernel))
    error = reconstruction_error(matrix, weight_matrix(new_kernel), hessian)
    logging.info("tfsparse.oneshot: %s %s: %.1f%% zeros, relative reconstruction error %.4f", method, layer.name,
                 100 * reached, error)
    return LayerResult(layer.name, variable.path, tuple(kernel.shape), reached, error)


def _hessian(model, layer, batches):
    """`X.T X / n` (float64) of `layer`'s inputs over the calibration batches, the model as it is now."""
    capture = layer_inputs(model, layer)
    hessian, count = None, 0
    for batch in batches:
        for rows in capture(batch):
            if not np.isfinite(rows).all():
                raise ValueError(
                    "Invalid value received for argument `data`. Expected data whose activations are finite: the "
                    f"inputs of layer {layer.name!r} hold NaN or infinity. Check the model and the data's scale.")
            hessian = rows.T @ rows if hessian is None else hessian + rows.T @ rows
            count += len(rows)
    if not count:
        raise ValueError("Invalid value received for argument `data`. Expected at least one calibration sample "
                         f"reaching layer {layer.name!r}. Received: empty data")
    return hessian / count

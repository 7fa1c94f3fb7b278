"""Gradual magnitude pruning (Zhu & Gupta 2017), registered as `gmp`.

At each update step of the schedule the smallest-magnitude weights are masked
so that the schedule's sparsity is reached. `scope` splits it over the
selected weights (see `tfsparse.allocation`): `"layer"`, each weight within
one element of the target; `"global"`, one magnitude threshold across all of
them; `"erk"`, Erdős–Rényi-Kernel densities (small layers stay denser);
`"latency"`, one threshold on magnitude relative to the layer over the
layer's MACs per weight (costly layers pruned harder). The last three reach
the pooled target exactly, each weight at most `max_layer_sparsity`. Each
weight then keeps its largest values. Pruned weights are exact zeros, so they
stay the smallest and the masks only grow. After `end_step` the masks are
frozen and training fine-tunes the remaining weights.

`block_shape=(out_block, in_block)` prunes whole blocks instead of scalars
(`tfsparse.blocks`), so that TFLite stores `Dense` / `EinsumDense` weights
block-sparse and runs them with its sparse `FULLY_CONNECTED` kernels. It is
given in TFLite's `[out, in]` orientation: `(1, 4)` (`"fp32"`, float32
export) is 4 consecutive input rows of one output column of a Keras `Dense`
kernel (`[in, out]`), `(1, 16)` (`"int8"`) the block of full-integer int8
export. Blocks are ranked by their mean `|w|` and every scope counts them
whole: `"layer"` zeroes `round(s * blocks)` blocks of each weight, the
others `round(s * blocks)` pooled. Only weights TFLite runs as
`FULLY_CONNECTED` filters can take blocks, with input sizes the block
divides; others are refused with their names (by `prepare`, or when
training starts): select the fully-connected layers with
`layers=keras.layers.Dense` (a CNN's head) and prune convolutions with a
second `GMP` without `block_shape`.

Example:

>>> import keras, numpy as np, tfsparse
>>> model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
>>> model.compile("adam", "mse")
>>> gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.75, begin_step=0, end_step=6, frequency=2)
>>> _ = model.fit(np.ones((16, 16)), np.ones((16, 8)), batch_size=2, verbose=0, callbacks=[gmp])
>>> int(np.count_nonzero(model.layers[0].kernel.numpy()))
32
>>> blocked = tfsparse.get_strategy("gmp")(target_sparsity=0.75, end_step=6, frequency=2, block_shape=(1, 4))
>>> _ = model.fit(np.ones((16, 16)), np.ones((16, 8)), batch_size=2, verbose=0, callbacks=[blocked])
>>> kernel = model.layers[0].kernel.numpy()  # [16 inputs, 8 outputs]: 4 x 8 blocks of 4 input rows
>>> zero_blocks = (kernel.reshape(4, 4, 8) == 0).all(axis=1)
>>> int(zero_blocks.sum()), bool(((kernel.reshape(4, 4, 8) != 0).all(axis=1) | zero_blocks).all())
(24, True)
"""

from __future__ import annotations

import numbers
import warnings

import keras
import numpy as np

from tfsparse import allocation, blocks, masks, schedules
from tfsparse.errors import invalid_argument
from tfsparse.graph_insert import functional_view, is_graph_model
from tfsparse.strategy import Strategy
from tfsparse.xnnpack.policy import warn_if_not_sparse_enough

SCOPES = ("layer", "global", "erk", "latency")


def keep_largest(values, keep: int) -> np.ndarray:
    """A 0/1 mask keeping the `keep` largest `|values|` (ties: first wins).

    Zeros come first among equals, so a weight pruned before stays pruned.
    """
    flat = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    mask = np.zeros(flat.size, dtype=np.float32)
    if keep > 0:
        order = np.argsort(-flat, kind="stable")
        mask[order[:keep]] = 1.0
    return mask.reshape(np.shape(values))


class GMP(Strategy):
    """Gradual magnitude pruning.

    Args:
        target_sparsity: Final sparsity in [0, 1) (used to build a
            `PolynomialDecay` schedule; omit when passing `schedule`).
        begin_step: First pruning step. Defaults to `0`.
        end_step: Step at which `target_sparsity` is reached; masks are frozen
            after it. Required unless `schedule` is given.
        frequency: Steps between mask updates. Defaults to `100`.
        initial_sparsity: Sparsity at `begin_step`. Defaults to `0.0`.
        power: Exponent of the polynomial schedule. Defaults to `3`.
        schedule: A `tfsparse.schedules.Schedule` instead of the arguments
            above. Defaults to `None`.
        scope: How the schedule's sparsity is split over the selected
            weights: `"layer"` (every weight reaches it), `"global"` (one
            magnitude threshold across them), `"erk"` (Erdős–Rényi-Kernel:
            density proportional to `sum(shape) / prod(shape)`) or
            `"latency"` (one threshold on `|w|` / its layer's mean `|w|`
            over the layer's MACs per weight / the mean; layers
            `tfsparse.flops` does not count cost 1). See
            `tfsparse.allocation`. Defaults to `"layer"`.
        max_layer_sparsity: Highest sparsity of any one weight, in (0, 1)
            and at least the final sparsity; a weight that would exceed it is
            fixed there and the others pruned harder. `None` (the default)
            means no cap for `"layer"` and `"global"` and `0.98` for `"erk"`
            and `"latency"`.
        block_shape: `(out_block, in_block)` in TFLite's `[out, in]`
            orientation: prune whole blocks of `out_block` outputs by
            `in_block` consecutive inputs. `(1, 4)` (or `"fp32"`): 4 input
            rows of one output column of a Keras `Dense` kernel
            (`kernel[4*i:4*i+4, j]`), the block TFLite sparse-encodes in
            float32; `(1, 16)` (or `"int8"`) for full-integer int8 export.
            Every selected weight must be a `Dense` or `EinsumDense` kernel
            (or an `MoE` expert input kernel, see `tfsparse.blocks`) whose
            input size `in_block` divides; others are refused, with their
            names, by `prepare` or when training starts (select the
            fully-connected layers with `layers=keras.layers.Dense`). Not with `policy="xnnpack"` (1x1
            convolutions, unstructured). Defaults to `(1, 1)`: unstructured.
        **kwargs: `layers`, `exclude`, `policy`, `log_dir` of
            `tfsparse.Strategy`. With `policy="xnnpack"` a final sparsity of
            2/3 or less warns: XNNPACK would still run dense.
    """

    name = "gmp"

    def __init__(
        self,
        target_sparsity=None,
        *,
        begin_step=0,
        end_step=None,
        frequency=100,
        initial_sparsity=0.0,
        power=3,
        schedule=None,
        scope="layer",
        max_layer_sparsity=None,
        block_shape=blocks.UNSTRUCTURED,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.block_shape = blocks.check_block_shape(block_shape)
        if self.block_shape != blocks.UNSTRUCTURED and self.policy == "xnnpack":
            raise invalid_argument("block_shape", "(1, 1) with policy='xnnpack': XNNPACK's sparse path runs "
                                   "unstructured 1x1 convolutions, and block shapes apply to fully-connected weights "
                                   "only", self.block_shape)
        self._block_sizes = {}  # {id(variable): block size per kernel axis}, set by select()
        if schedule is not None:
            if target_sparsity is not None:
                raise ValueError(
                    "Invalid value received for argument `target_sparsity`. Pass "
                    "either `target_sparsity` (with begin/end steps) or `schedule`, "
                    f"not both. Received: target_sparsity={target_sparsity!r}"
                )
            self.schedule = schedules.get(schedule)
        else:
            if target_sparsity is None:
                raise ValueError(
                    "Invalid value received for argument `target_sparsity`. Expected "
                    "a float in [0, 1), e.g. 0.9. Received: target_sparsity=None"
                )
            if end_step is None:
                raise ValueError(
                    "Invalid value received for argument `end_step`. Expected the "
                    "step at which the target is reached, greater than begin_step "
                    "(e.g. two thirds of the training steps). Received: end_step=None"
                )
            self.schedule = schedules.PolynomialDecay(
                final_sparsity=schedules.check_sparsity("target_sparsity", target_sparsity),
                initial_sparsity=initial_sparsity,
                begin_step=begin_step,
                end_step=end_step,
                power=power,
                frequency=frequency,
            )
        if scope not in SCOPES:
            raise ValueError(
                f"Invalid value received for argument `scope`. Expected one of "
                f"{SCOPES}. Received: scope={scope!r}"
            )
        self.scope = scope
        final = self.schedule.sparsity(np.iinfo(np.int64).max)
        self.max_layer_sparsity = _check_cap(max_layer_sparsity, scope, final)
        self._costs = {}  # "latency": {id(variable): MACs per scalar}, set by attach()
        if self.policy == "xnnpack":
            warn_if_not_sparse_enough(final)

    @property
    def _cap(self):
        """The cap in effect: `max_layer_sparsity`, or its default for the scope."""
        if self.max_layer_sparsity is None and self.scope in ("erk", "latency"):
            return allocation.DEFAULT_MAX_SPARSITY
        return self.max_layer_sparsity

    def prepare(self, model):
        """Returns `model`; with a `block_shape`, refuses now (not when training starts) weights that cannot take it."""
        model = super().prepare(model)
        if self.block_shape != blocks.UNSTRUCTURED and model.built:
            self.select(model)
        return model

    def select(self, model):
        """The selected weights; with a `block_shape`, refuses those that cannot take it (before any mask)."""
        weights = super().select(model)
        if self.block_shape != blocks.UNSTRUCTURED:
            self._block_sizes = blocks.plan(weights, self.block_shape)
        return weights

    def attach(self, model):
        weights = super().attach(model)
        if self.scope == "latency":
            self._costs = macs_per_weight(model, weights)
        return weights

    def compute_masks(self, step, weights):
        target = self.schedule.sparsity(step)
        values = [keras.ops.convert_to_numpy(w.variable.value) for w in weights]
        if self.block_shape != blocks.UNSTRUCTURED:
            return self._block_masks(target, weights, values)
        if self.scope == "layer":
            sparsities = allocation.uniform([v.size for v in values], target)
        elif self.scope == "global":
            sparsities = allocation.global_magnitude(values, target, max_sparsity=self._cap)
        elif self.scope == "erk":
            sparsities = allocation.erk([v.shape for v in values], target, max_sparsity=self._cap)
        else:
            costs = [self._costs.get(id(w.variable), 1.0) for w in weights]
            sparsities = allocation.latency_aware(values, costs, target, max_sparsity=self._cap)
        return [keep_largest(v, v.size - round(s * v.size)) for v, s in zip(values, sparsities)]

    def _block_masks(self, target, weights, values):
        """`compute_masks` in whole blocks: the scope allocates blocks, each weight keeps its highest-scoring ones."""
        sizes = [self._block_sizes[id(w.variable)] for w in weights]
        scores = [_block_scores(v, s, w.variable) for v, s, w in zip(values, sizes, weights)]
        if self.scope == "layer":
            sparsities = allocation.uniform([s.size for s in scores], target)
        elif self.scope == "global":
            sparsities = allocation.global_magnitude(scores, target, max_sparsity=self._cap)
        elif self.scope == "erk":
            block = self.block_shape[0] * self.block_shape[1]  # every weight's blocks have this many scalars
            sparsities = allocation.erk([v.shape for v in values], target, max_sparsity=self._cap, block_size=block)
        else:
            costs = [self._costs.get(id(w.variable), 1.0) for w in weights]
            sparsities = allocation.latency_aware(scores, costs, target, max_sparsity=self._cap)
        return [blocks.expand(keep_largest(c, c.size - round(s * c.size)), size)
                for c, s, size in zip(scores, sparsities, sizes)]

    def get_config(self):
        return {
            "schedule": schedules.serialize(self.schedule),
            "scope": self.scope,
            "max_layer_sparsity": self.max_layer_sparsity,
            "block_shape": list(self.block_shape),  # JSON-native; the constructor takes lists
            **super().get_config(),
        }


def _block_scores(value, sizes, variable):
    """Mean `|w|` of each block; blocks pruned before (mask all zero) score 0, every other one more than 0.

    Pruned blocks are zeros, so they stay the lowest and the masks only grow,
    even against a kept block whose weights all became exactly zero (it
    scores the smallest positive float instead).
    """
    scores = blocks.block_scores(value, sizes)
    mask = masks.get_mask(variable)
    if mask is not None:
        kept = blocks.block_scores(keras.ops.convert_to_numpy(mask.value), sizes, reduce="sum") > 0
        scores = np.where(kept, np.maximum(scores, np.finfo(np.float64).tiny), 0.0)
    return scores


def macs_per_weight(model, weights) -> dict:
    """`{id(variable): MACs per scalar}` of each weight whose layer `tfsparse.flops` counts.

    A layer's MACs (all its calls) divided by the size of its kernels (both
    kernels of a separable convolution): a 1x1 convolution gives its output
    height * width, a `Dense` on vectors 1. Weights of other layers, or of a
    model that is not Sequential or Functional (with a warning), are left out.
    """
    from tfsparse.graph.cost import flops  # imports all of tfsparse.graph: only scope="latency" needs it

    if not is_graph_model(model):
        warnings.warn(
            f"GMP(scope='latency'): {model.name!r} is a subclassed model, whose MACs tfsparse.flops cannot count; "
            "every layer costs 1, so only the magnitudes relative to each layer decide.",
            UserWarning,
            stacklevel=2,
        )
        return {}
    per_layer = flops(model).per_layer
    names = _qualified_names(model)
    costs = {}
    for weight in weights:
        macs = sum(per_layer.get(name, 0) for name in names.get(id(weight.layer), ()))
        size = sum(int(np.prod(k.shape)) for k in _kernels(weight.layer))
        if macs > 0 and size > 0:
            costs[id(weight.variable)] = macs / size
    return costs


def _qualified_names(model, prefix="") -> dict:
    """`{id(layer): [names]}` as `tfsparse.flops` names them (`"nested_model/layer"`)."""
    names = {}
    for layer in functional_view(model).layers:
        if is_graph_model(layer):
            for key, value in _qualified_names(layer, f"{prefix}{layer.name}/").items():
                names.setdefault(key, []).extend(value)
        else:
            names.setdefault(id(layer), []).append(prefix + layer.name)
    return names


def _kernels(layer):
    """The variables a layer multiplies with (what its MACs are counted over)."""
    found = [getattr(layer, name, None) for name in ("kernel", "depthwise_kernel", "pointwise_kernel")]
    return [k for k in found if isinstance(k, keras.Variable)]


def _check_cap(value, scope, final):
    """Validates `max_layer_sparsity` against the schedule's final sparsity."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1):
        raise ValueError(
            "Invalid value received for argument `max_layer_sparsity`. Expected a float in (0, 1), or None. "
            f"Received: max_layer_sparsity={value!r}"
        )
    cap = allocation.DEFAULT_MAX_SPARSITY if value is None and scope in ("erk", "latency") else value
    if cap is not None and cap < final:
        raise ValueError(
            "Invalid value received for argument `max_layer_sparsity`. Expected a cap >= the final sparsity "
            f"{final}{f' (scope={scope!r} caps at {cap} when it is None)' if value is None else ''}. "
            f"Received: max_layer_sparsity={value!r}"
        )
    return None if value is None else float(value)

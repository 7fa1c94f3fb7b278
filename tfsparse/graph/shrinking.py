"""`shrink(model)`: a smaller copy of a model without its pruned channels.

A channel is pruned when every weight that makes its value (its `"out"`
members: filters, biases, BatchNormalization gamma and beta, depthwise
kernels) is exactly zero across its whole group. That is read from the model
itself, so `shrink` works on a model reloaded from a `.keras` file. The copy
slices every member weight (consumers' input rows included), resizes layer
configs (`filters`, `units`, `Reshape` targets...), and folds a pruned
channel's constant (an activation with `f(0) != 0` before a Dense or a
`valid` convolution) into the consumer's bias, so its outputs equal the
input model's in inference mode. The input model is not modified.

Example:

>>> import keras, numpy as np, tfsparse
>>> inputs = keras.Input((6, 6, 3))
>>> x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
>>> outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(x))
>>> model = keras.Model(inputs, outputs)
>>> kernel, bias = model.get_layer("conv").get_weights()
>>> kernel[..., :5] = 0.0; bias[:5] = 0.0
>>> model.get_layer("conv").set_weights([kernel, bias])
>>> small = tfsparse.graph.shrink(model)
>>> small.get_layer("conv").filters, tuple(small.get_layer("head").kernel.shape)
(3, (3, 2))
>>> x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
>>> bool(np.allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5))
True
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from tfsparse.graph.graph import trace
from tfsparse.graph.handlers import get_handler
from tfsparse.graph.node import IN, OUT
from tfsparse.graph_insert import is_graph_model, rebuild


@dataclasses.dataclass(frozen=True)
class ShrinkPlan:
    """What `shrink` removes.

    Attributes:
        removed: `{group index: sorted list of removed channels}` (only groups that lose channels).
        channels_before: Channels of the prunable groups before.
        channels_after: ... and after.
        kept_all_zero: Groups whose channels were all zero; one channel is kept so the model stays connected.
    """

    removed: dict
    channels_before: int
    channels_after: int
    kept_all_zero: tuple = ()


def plan_shrink(model, graph=None) -> tuple:
    """`(graph, plan, keep)`: the traced graph, the `ShrinkPlan`, and a keep flag per channel atom."""
    graph = graph or trace(model)
    keep_atom = np.ones(len(graph.builder.parent), bool)
    removed, kept_all_zero = {}, []
    located = graph.class_of(np.arange(keep_atom.size))
    for group in graph.prunable():
        zero = group.zero_channels()
        if zero.all():
            zero[0] = False  # a layer with no channel would break the graph
            kept_all_zero.append(group.index)
        if zero.any():
            removed[group.index] = np.flatnonzero(zero).tolist()
            in_group = located[:, 0] == group.index
            keep_atom[in_group] = ~zero[located[in_group, 1]]
    before = sum(group.size for group in graph.prunable())
    after = before - sum(len(channels) for channels in removed.values())
    if kept_all_zero:
        logging.warning("tfsparse shrink: every channel of groups %s is zero; one channel of each is kept.",
                        kept_all_zero)
    return graph, ShrinkPlan(removed, before, after, tuple(kept_all_zero)), keep_atom


def shrink(model):
    """Returns a copy of `model` without its pruned channels (see the module docstring).

    Raises:
        ValueError: for a model that is not a built Sequential or Functional
            model (`tfsparse.graph.trace` says why).
    """
    return _shrink(model, *plan_shrink(model))


def _shrink(model, graph, plan, keep_atom):
    slices, folds, new_bias = _weight_edits(graph, keep_atom)
    configs = _resized_configs(graph, keep_atom, new_bias)

    def clone_layer(layer):
        config = configs.get(id(layer), layer.get_config())
        return layer.__class__.from_config(config)

    def layer_weights(original, clone):
        values = {}
        for variable in original.weights:
            array = np.asarray(variable.numpy())
            if id(variable) in folds:
                array = array + folds[id(variable)]
            for axis, keep in slices.get(id(variable), []):
                array = np.compress(keep, array, axis=axis)
            values[_name(variable)] = array
        if id(original) in new_bias:
            values["bias"] = new_bias[id(original)]
        return [values[_name(variable)] for variable in clone.weights]

    def input_shape(tensor):
        cmap = graph.tensor_maps.get(id(tensor))
        if cmap is None or not len(cmap):
            return tensor.shape
        return (*tensor.shape[:-1], int(keep_atom[cmap.atoms].sum()))

    small = rebuild(model, clone_layer=clone_layer, layer_weights=layer_weights, input_shape=input_shape)
    logging.info("tfsparse shrink: %d of %d channels kept in %d groups (%d groups shrunk).", plan.channels_after,
                 plan.channels_before, len(graph.prunable()), len(plan.removed))
    return small


def shrink_pruned(model):
    """`shrink(model)` when a Sequential or Functional model has pruned channels; otherwise `model` itself.

    What `tfsparse.finalize` applies after its finalizers.
    """
    if not is_graph_model(model):
        return model
    graph, plan, keep_atom = plan_shrink(model)
    return _shrink(model, graph, plan, keep_atom) if plan.removed else model


def _name(variable) -> str:
    return variable.path.rsplit("/", 1)[-1]


def _weight_edits(graph, keep_atom):
    """Per variable: the `(axis, keep)` slices, the bias folds, and new biases for layers that had none."""
    slices, folds, new_bias = {}, {}, {}
    out_keep = {}  # id(layer) -> keep flags of its kernel's output axis
    for member in graph.builder.members:
        keep = keep_atom[member.atoms]
        if member.role == OUT and _name(member.variable) in ("kernel", "pointwise_kernel"):
            out_keep[id(member.layer)] = keep
        if not keep.all():
            slices.setdefault(id(member.variable), []).append((member.axis, keep))
    for member in graph.builder.members:
        dropped = ~keep_atom[member.atoms]
        if member.role != IN or not (dropped & (member.const != 0)).any():
            continue
        kernel = np.asarray(member.variable.numpy(), np.float64)
        taken = np.tensordot(member.const * dropped, np.moveaxis(kernel, member.axis, 0), axes=(0, 0))
        fold = taken.reshape(-1, taken.shape[-1]).sum(axis=0).astype(np.float32)
        bias = getattr(member.layer, member.bias, None)
        if bias is not None:
            folds[id(bias)] = folds.get(id(bias), 0.0) + fold
        else:
            keep = out_keep.get(id(member.layer), np.ones(fold.size, bool))
            new_bias[id(member.layer)] = new_bias.get(id(member.layer), 0.0) + fold[keep]
    return slices, folds, new_bias


def _resized_configs(graph, keep_atom, new_bias):
    configs = {}
    for call in graph.calls:
        layer = call.layer
        if id(layer) in configs:
            continue
        sizes = [int(keep_atom[cmap.atoms].sum()) for cmap in call.outputs]
        changed = any(size != len(cmap) for size, cmap in zip(sizes, call.outputs))
        if changed or id(layer) in new_bias:
            config = layer.get_config()
            if changed:
                config = get_handler(layer).resize(config, sizes)
            if id(layer) in new_bias:
                config["use_bias"] = True
            configs[id(layer)] = config
    return configs

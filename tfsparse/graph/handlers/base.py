"""The handler interface: how one layer call moves, makes, couples or consumes channels.

A handler's `trace(layer, inputs, node, builder)` receives the `ChannelMap`
of each input tensor of one call (`node`), registers the layer's weights with
`builder.weight(...)` and couplings with `builder.couple(...)`, and returns
the `ChannelMap` of each output tensor. `resize(config, out_sizes)` returns
the layer config for a shrunk layer whose outputs keep `out_sizes` channels
(most layers infer their shapes and return `config` unchanged).

Example (a custom elementwise layer that keeps channels as they are):

>>> from tfsparse.graph.handlers.base import Handler
>>> class Passthrough(Handler):
...     def trace(self, layer, inputs, node, builder):
...         return [inputs[0]]
>>> Passthrough().resize({"name": "x"}, [3])
{'name': 'x'}
"""

from __future__ import annotations

import keras
import numpy as np


class Handler:
    """Base class of channel handlers (see the module docstring)."""

    def trace(self, layer, inputs, node, builder):
        raise NotImplementedError

    def resize(self, config, out_sizes):
        return config


def channels_of(tensor) -> int:
    """The size of a tensor's last (channel) axis; 0 when it is not known."""
    if len(tensor.shape) == 0 or tensor.shape[-1] is None:
        return 0
    return int(tensor.shape[-1])


def is_channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def unsupported(layer, node, builder, inputs, why: str):
    """Blocks every input channel with `why` and returns blocked new channels for each output."""
    reason = f"{layer.name!r} ({type(layer).__name__}): {why}"
    for cmap in inputs:
        if cmap is not None:
            builder.block(cmap, reason)
    return [builder.source(layer, channels_of(tensor), reason) for tensor in node.outputs]


class Unsupported(Handler):
    """The handler of a layer type that has none: its channels are never pruned."""

    def trace(self, layer, inputs, node, builder):
        return unsupported(layer, node, builder, inputs,
                           "no channel handler, so the channels around it are left unpruned; register one with "
                           "tfsparse.graph.register_handler")


def const_through(layer, const):
    """The per-position constant after an elementwise `layer` (run on the constants themselves)."""
    if const.size == 0 or not (const != 0).any() and _maps_zero_to_zero(layer):
        return const
    values = keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(const[None, :], "float32"), training=False))
    return values.reshape(-1)


def activated(layer, cmap, builder):
    """`cmap` after `layer`'s own `activation` (Conv, Dense...): a pruned channel holds `activation(0)`.

    An activation that mixes channels (softmax) blocks them.
    """
    activation = getattr(layer, "activation", None)
    if activation is None or not cmap.atoms.size:
        return cmap
    if mixes_channels(activation):
        builder.block(cmap, f"{layer.name!r} ({type(layer).__name__}): its activation mixes the channels (softmax)")
        return cmap
    values = keras.ops.convert_to_numpy(activation(keras.ops.convert_to_tensor(cmap.const[None, :], "float32")))
    return cmap.with_const(values.reshape(-1))


def mixes_channels(function) -> bool:
    """Whether `function` (an activation or an elementwise layer) is not applied value by value (softmax)."""
    probe = np.array([[-1.0, 0.5, 2.0], [-1.0, 0.5, 3.0]], "float32")  # only the last value differs
    values = keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(probe)))
    return values.shape != probe.shape or not np.allclose(values[0, :2], values[1, :2], atol=1e-7)


def _maps_zero_to_zero(layer) -> bool:
    probe = keras.ops.convert_to_numpy(layer(keras.ops.zeros((1, 2), "float32"), training=False))
    return not probe.any()

"""Handlers of layers that merge tensors: elementwise merges couple channels, Concatenate stacks them."""

from __future__ import annotations

import functools

import numpy as np

from tfsparse.graph.handlers.base import Handler, unsupported
from tfsparse.graph.node import ChannelMap

_COMBINE = {
    "Add": lambda c: functools.reduce(np.add, c),
    "Subtract": lambda c: c[0] - c[1],
    "Multiply": lambda c: functools.reduce(np.multiply, c),
    "Maximum": lambda c: functools.reduce(np.maximum, c),
    "Minimum": lambda c: functools.reduce(np.minimum, c),
    "Average": lambda c: sum(c) / len(c),
}


class ElementwiseMerge(Handler):
    """Add, Subtract, Multiply, Maximum, Minimum, Average: channel `i` of every input is removed together.

    An input with one channel is broadcast (a gate or a scale): it is not
    coupled. A pruned channel stays a constant only for `Multiply` by a
    broadcast input when it is 0; otherwise a broadcast input blocks it.
    """

    def __init__(self, operation):
        self.operation = operation

    def trace(self, layer, inputs, node, builder):
        size = max(len(cmap) for cmap in inputs)
        full = [cmap for cmap in inputs if len(cmap) == size]
        if len(full) != len(inputs) and any(len(cmap) != 1 for cmap in inputs if len(cmap) != size):
            return unsupported(layer, node, builder, inputs, "inputs with different channel counts")
        for other in full[1:]:
            builder.couple(full[0], other)
        const = _COMBINE[self.operation]([cmap.const for cmap in full])
        out = ChannelMap(full[0].atoms, const)
        if len(full) != len(inputs):
            zero_through = self.operation == "Multiply"
            builder.block(out, f"{layer.name!r} ({self.operation}) combines the channels with a broadcast input, so a "
                          "pruned channel would not stay constant", positions=None if not zero_through else const != 0)
        return [out]


class Concatenate(Handler):
    """Along the channel axis the output channels are the inputs' one after the other; otherwise it couples them."""

    def trace(self, layer, inputs, node, builder):
        rank = len(node.outputs[0].shape)
        if layer.axis % rank == rank - 1:
            return [ChannelMap.concat(inputs)]
        for other in inputs[1:]:
            if len(other) != len(inputs[0]):
                return unsupported(layer, node, builder, inputs, "inputs with different channel counts")
            builder.couple(inputs[0], other)
        builder.block(inputs[0], f"{layer.name!r} (Concatenate) joins, along a non-channel axis, channels whose "
                      "constants differ", positions=np.any([c.const != inputs[0].const for c in inputs], axis=0))
        return [inputs[0]]

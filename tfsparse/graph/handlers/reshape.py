"""Handlers of layers that move values between axes: Flatten, Reshape, Permute."""

from __future__ import annotations

import math

from tfsparse.graph.handlers.base import Handler, channels_of, is_channels_last, unsupported


class Flatten(Handler):
    """Channels-last Flatten: channel `c` becomes positions `c, c + C, c + 2C, ...` of the output."""

    def trace(self, layer, inputs, node, builder):
        if not is_channels_last(layer):
            return unsupported(layer, node, builder, inputs, "only channels_last data is pruned by channel")
        spatial = node.input_tensors[0].shape[1:-1]
        if any(d is None for d in spatial):
            return unsupported(layer, node, builder, inputs, "a Flatten of an input with unknown spatial size")
        return [inputs[0].tile(math.prod(spatial))]


class Reshape(Handler):
    """A Reshape that keeps the last axis (the channels stay the fastest-moving index) keeps the channels."""

    def trace(self, layer, inputs, node, builder):
        if channels_of(node.outputs[0]) != len(inputs[0]) or not len(inputs[0]):
            return unsupported(layer, node, builder, inputs, "it does not keep the channel axis last")
        return [inputs[0]]

    def resize(self, config, out_sizes):
        return {**config, "target_shape": (*tuple(config["target_shape"])[:-1], out_sizes[0])}


class Permute(Handler):
    def trace(self, layer, inputs, node, builder):
        if tuple(layer.dims)[-1] != len(layer.dims):
            return unsupported(layer, node, builder, inputs, "it moves the channel axis")
        return [inputs[0]]

"""Handlers of layers that keep each channel where it is: activations, dropout, pooling, padding, resizing."""

from __future__ import annotations

from tfsparse.graph.handlers.base import Handler, const_through, is_channels_last, mixes_channels, unsupported


class Elementwise(Handler):
    """A layer applied value by value (activations, dropout, noise, rescaling): constants go through it."""

    def trace(self, layer, inputs, node, builder):
        cmap = inputs[0]
        if mixes_channels(lambda x: layer(x, training=False)):
            return unsupported(layer, node, builder, inputs, "it mixes the channels (softmax)")
        return [cmap.with_const(const_through(layer, cmap.const))]


class Spatial(Handler):
    """Pooling, cropping, upsampling, global pooling: channels and their constants are kept."""

    def trace(self, layer, inputs, node, builder):
        if not is_channels_last(layer):
            return unsupported(layer, node, builder, inputs, "only channels_last data is pruned by channel")
        return [inputs[0]]


class ZeroPadding(Spatial):
    """Zero padding: a channel holding a non-zero constant would not stay constant (its border becomes 0)."""

    def trace(self, layer, inputs, node, builder):
        (out,) = super().trace(layer, inputs, node, builder)
        builder.block(out, f"{layer.name!r} ({type(layer).__name__}) pads with zeros channels that hold a non-zero "
                      "constant when pruned", positions=out.const != 0)
        return [out]


class ChannelSoftmax(Handler):
    """Softmax: over the channel axis it mixes channels; over another axis it keeps them."""

    def trace(self, layer, inputs, node, builder):
        rank = len(node.input_tensors[0].shape)
        axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
        if any(a % rank == rank - 1 for a in axes):
            return unsupported(layer, node, builder, inputs, "a softmax over the channel axis mixes the channels")
        builder.block(inputs[0], f"{layer.name!r} (Softmax) takes channels that hold a constant when pruned",
                      positions=inputs[0].const != 0)
        return [inputs[0]]

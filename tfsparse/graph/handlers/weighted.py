"""Handlers of layers with per-channel weights: convolutions, Dense, Embedding, normalizations, PReLU."""

from __future__ import annotations

import numpy as np

from tfsparse.graph.handlers.base import Handler, activated, channels_of, is_channels_last, unsupported
from tfsparse.graph.node import IN, OUT, STAT, ChannelMap


class Conv(Handler):
    """Conv1D/2D/3D (kernel `[..., in, out]`) and their transposes (`[..., out, in]`)."""

    def __init__(self, transpose=False):
        self.transpose = transpose

    def trace(self, layer, inputs, node, builder):
        if not is_channels_last(layer) or getattr(layer, "groups", 1) != 1:
            return unsupported(layer, node, builder, inputs, "only channels_last convolutions with groups=1 are "
                               "pruned by channel")
        in_axis, out_axis = (-1, -2) if self.transpose else (-2, -1)
        kernel_size = tuple(layer.kernel.shape[:-2])
        foldable = not self.transpose and (layer.padding == "valid" or all(k == 1 for k in kernel_size))
        builder.weight(layer, layer.kernel, in_axis, inputs[0], IN, bias="bias" if foldable else None)
        out = builder.source(layer, int(layer.kernel.shape[out_axis]))
        builder.weight(layer, layer.kernel, out_axis, out, OUT)
        if layer.use_bias:
            builder.weight(layer, layer.bias, 0, out, OUT)
        return [activated(layer, out, builder)]

    def resize(self, config, out_sizes):
        return {**config, "filters": out_sizes[0]}


class Dense(Handler):
    def trace(self, layer, inputs, node, builder):
        builder.weight(layer, layer.kernel, 0, inputs[0], IN, bias="bias")
        out = builder.source(layer, int(layer.kernel.shape[1]))
        builder.weight(layer, layer.kernel, 1, out, OUT)
        if layer.use_bias:
            builder.weight(layer, layer.bias, 0, out, OUT)
        return [activated(layer, out, builder)]

    def resize(self, config, out_sizes):
        return {**config, "units": out_sizes[0]}


class Embedding(Handler):
    def trace(self, layer, inputs, node, builder):
        out = builder.source(layer, int(layer.embeddings.shape[1]))
        builder.weight(layer, layer.embeddings, 1, out, OUT)
        return [out]

    def resize(self, config, out_sizes):
        return {**config, "output_dim": out_sizes[0]}


class Depthwise(Handler):
    """DepthwiseConv1D/2D: channel `c` makes outputs `c * m .. c * m + m - 1` (`m`: depth multiplier)."""

    def trace(self, layer, inputs, node, builder):
        if not is_channels_last(layer):
            return unsupported(layer, node, builder, inputs, "only channels_last convolutions are pruned by channel")
        multiplier = int(layer.kernel.shape[-1])
        builder.weight(layer, layer.kernel, -2, inputs[0], OUT)
        out = inputs[0].repeat(multiplier).with_const(0.0)
        if layer.use_bias:
            builder.weight(layer, layer.bias, 0, out, OUT)
        return [activated(layer, out, builder)]


class Separable(Handler):
    """SeparableConv1D/2D: a depthwise step on the input channels, then a pointwise step making new ones."""

    def trace(self, layer, inputs, node, builder):
        if not is_channels_last(layer):
            return unsupported(layer, node, builder, inputs, "only channels_last convolutions are pruned by channel")
        multiplier = int(layer.depthwise_kernel.shape[-1])
        builder.weight(layer, layer.depthwise_kernel, -2, inputs[0], IN)
        builder.weight(layer, layer.pointwise_kernel, -2, inputs[0].repeat(multiplier), IN)
        out = builder.source(layer, int(layer.pointwise_kernel.shape[-1]))
        builder.weight(layer, layer.pointwise_kernel, -1, out, OUT)
        if layer.use_bias:
            builder.weight(layer, layer.bias, 0, out, OUT)
        return [activated(layer, out, builder)]

    def resize(self, config, out_sizes):
        return {**config, "filters": out_sizes[0]}


class BatchNorm(Handler):
    """Per-channel `gamma` and `beta` (masked with the channel) and moving statistics (sliced)."""

    def trace(self, layer, inputs, node, builder):
        rank = len(node.input_tensors[0].shape)
        if layer.axis % rank != rank - 1:
            return unsupported(layer, node, builder, inputs, "normalizes an axis other than the last (channel) one")
        cmap = inputs[0]
        for name, role in (("gamma", OUT), ("beta", OUT), ("moving_mean", STAT), ("moving_variance", STAT)):
            if getattr(layer, name, None) is not None:
                builder.weight(layer, getattr(layer, name), 0, cmap, role)
        if layer.scale:  # gamma and beta are zero for a pruned channel: the output is 0
            return [cmap.with_const(0.0)]
        mean, variance = (np.asarray(getattr(layer, n).numpy(), np.float64) for n in ("moving_mean", "moving_variance"))
        return [cmap.with_const((cmap.const - mean) / np.sqrt(variance + layer.epsilon))]


class ChannelStatistics(Handler):
    """LayerNormalization, GroupNormalization, UnitNormalization: statistics over channels change with them."""

    def trace(self, layer, inputs, node, builder):
        rank = len(node.input_tensors[0].shape)
        axes = getattr(layer, "axis", -1)
        axes = [axes] if isinstance(axes, int) else list(axes)
        reason = (f"{layer.name!r} ({type(layer).__name__}) computes statistics over the channel axis: removing "
                  "channels would change them")
        if any(a % rank == rank - 1 for a in axes) or not hasattr(layer, "axis"):
            builder.block(inputs[0], reason)
        for name in ("gamma", "beta"):
            variable = getattr(layer, name, None)
            if variable is not None and len(variable.shape) == 1 and int(variable.shape[0]) == len(inputs[0]):
                builder.weight(layer, variable, 0, inputs[0], STAT)
        return [ChannelMap(inputs[0].atoms, inputs[0].const)]


class PReLU(Handler):
    def trace(self, layer, inputs, node, builder):
        cmap = inputs[0]
        if channels_of(layer.alpha) == len(cmap):
            builder.weight(layer, layer.alpha, -1, cmap, STAT)
        elif channels_of(layer.alpha) != 1:
            return unsupported(layer, node, builder, inputs, "alpha is not per channel")
        builder.block(cmap, f"{layer.name!r} (PReLU) takes channels that hold a non-zero constant when pruned",
                      positions=cmap.const < 0)
        return [cmap]

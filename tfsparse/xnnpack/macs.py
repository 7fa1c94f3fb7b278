"""Multiply-accumulates per layer and the Amdahl bound of a sparse speedup.

Only the layers that do the arithmetic count: `layer_macs` (the XNNPACK
planner's count) counts `Conv2D`, `DepthwiseConv2D`, `SeparableConv2D`,
`Conv1D` and `Dense`; `call_macs` also the 1D/3D variants and transposed
convolutions (`tfsparse.flops`). Elementwise ops, pooling and normalization
are a few percent of a CNN and are left out, as papers do.

If a share `f` of the MACs runs sparse with sparsity `s`, and everything else
costs the same, the speedup is at most `1 / ((1 - f) + f * (1 - s))`.

Example:

>>> import keras
>>> from tfsparse.xnnpack.macs import amdahl_bound, layer_macs
>>> inputs = keras.Input((8, 8, 3))
>>> outputs = keras.layers.Conv2D(4, 1, name="pw")(inputs)
>>> layer_macs(keras.Model(inputs, outputs).get_layer("pw"))
768
>>> round(amdahl_bound(0.949, 0.9), 2)
6.85
"""

from __future__ import annotations

import math

import keras


_L = keras.layers
_PLANNER_LAYERS = (_L.SeparableConv2D, _L.DepthwiseConv2D, _L.Conv2D, _L.Conv1D, _L.Dense)
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
_CONV = (_L.Conv1D, _L.Conv2D, _L.Conv3D)
_TRANSPOSE = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
MAC_LAYERS = (*_SEPARABLE, *_DEPTHWISE, *_CONV, *_TRANSPOSE, _L.Dense)
"""The layer types `call_macs` counts (subclasses included)."""


def _spatial(shape) -> int:
    return math.prod(int(d) for d in shape[1:-1] if d is not None)


def _node_shapes(layer):
    """(input shape, output shape) of every call of `layer` in its model."""
    shapes = []
    for node in getattr(layer, "_inbound_nodes", []):
        inputs = [t.shape for t in node.input_tensors]
        outputs = [t.shape for t in node.outputs]
        if inputs and outputs:
            shapes.append((inputs[0], outputs[0]))
    return shapes


def layer_macs(layer) -> int:
    """Multiply-accumulates of one layer, summed over its calls (0 if none).

    Counts `Conv2D`, `DepthwiseConv2D`, `SeparableConv2D`, `Conv1D` and
    `Dense` only (`call_macs` knows more types; this count stays as the
    planner has always made it).

    Args:
        layer: A layer of a built functional or Sequential model.

    Returns:
        The MACs for batch 1, channels last.
    """
    if not isinstance(layer, _PLANNER_LAYERS):
        return 0
    return int(sum(call_macs(layer, in_shape, out_shape) for in_shape, out_shape in _node_shapes(layer)))


def call_macs(layer, in_shape, out_shape) -> int:
    """Multiply-accumulates of one call of `layer` (0 for a type not in `MAC_LAYERS`).

    Convolutions (1D/2D/3D, grouped), their transposes, depthwise and
    separable convolutions, and `Dense` on inputs of any rank; batch 1,
    channels last, unknown (`None`) dimensions counted as 1.

    Args:
        layer: The layer.
        in_shape: The shape of the call's (first) input, batch axis first.
        out_shape: The shape of its (first) output.

    Example:

    >>> import keras
    >>> from tfsparse.xnnpack.macs import call_macs
    >>> call_macs(keras.layers.Dense(4), (None, 10, 3), (None, 10, 4))  # 10 positions x 3 x 4
    120
    >>> call_macs(keras.layers.Conv2DTranspose(2, 3, strides=2), (None, 4, 4, 5), (None, 9, 9, 2))
    1440
    """
    channels_in, channels_out = int(in_shape[-1]), int(out_shape[-1])
    if isinstance(layer, _SEPARABLE):
        kernel, multiplier = math.prod(layer.kernel_size), layer.depth_multiplier
        depthwise = _spatial(out_shape) * kernel * channels_in * multiplier
        return int(depthwise + _spatial(out_shape) * channels_in * multiplier * channels_out)
    if isinstance(layer, _DEPTHWISE):
        return int(_spatial(out_shape) * math.prod(layer.kernel_size) * channels_in * layer.depth_multiplier)
    if isinstance(layer, _CONV):
        groups = getattr(layer, "groups", 1)
        return int(_spatial(out_shape) * math.prod(layer.kernel_size) * channels_in // groups * channels_out)
    if isinstance(layer, _TRANSPOSE):  # every input position scatters a kernel into every output channel
        groups = getattr(layer, "groups", 1) or 1
        return int(_spatial(in_shape) * math.prod(layer.kernel_size) * channels_in // groups * channels_out)
    if isinstance(layer, _L.Dense):
        return int(_spatial(out_shape) * channels_in * channels_out)
    return 0


def amdahl_bound(share, sparsity) -> float:
    """The largest speedup when a `share` of the MACs is `sparsity` sparse.

    Args:
        share: Fraction of the model's MACs in the sparse layers, in [0, 1].
        sparsity: Fraction of zeros in those layers, in [0, 1].

    Returns:
        `1 / ((1 - share) + share * (1 - sparsity))` (infinite if both are 1).
    """
    for name, value in (("share", share), ("sparsity", sparsity)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"Invalid value received for argument `{name}`. Expected a fraction in [0, 1]. "
                f"Received: {name}={value!r}"
            )
    remaining = (1.0 - share) + share * (1.0 - sparsity)
    return math.inf if remaining == 0 else 1.0 / remaining

"""Multiply-accumulates per layer and the Amdahl bound of a sparse speedup.

Only the layers that do the arithmetic count: `Conv2D`, `DepthwiseConv2D`,
`SeparableConv2D`, `Conv1D` and `Dense` (elementwise ops, pooling and
normalization are a few percent of a CNN and are left out, as papers do).

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

    Args:
        layer: A layer of a built functional or Sequential model.

    Returns:
        The MACs for batch 1, channels last.
    """
    total = 0
    for in_shape, out_shape in _node_shapes(layer):
        if isinstance(layer, keras.layers.SeparableConv2D):
            kernel = math.prod(layer.kernel_size)
            depthwise = _spatial(out_shape) * kernel * in_shape[-1] * layer.depth_multiplier
            total += depthwise + _spatial(out_shape) * in_shape[-1] * layer.depth_multiplier * out_shape[-1]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            total += _spatial(out_shape) * math.prod(layer.kernel_size) * in_shape[-1] * layer.depth_multiplier
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv1D)):
            groups = getattr(layer, "groups", 1)
            total += _spatial(out_shape) * math.prod(layer.kernel_size) * in_shape[-1] // groups * out_shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += _spatial(out_shape) * in_shape[-1] * out_shape[-1]
    return int(total)


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

"""Squeeze-and-excitation gates whose constant scale XNNPACK's sparse path cannot run.

MobileNetV3's hard sigmoid is `ReLU(6)(x + 3) * (1 / 6)`; on the gate of a
squeeze-and-excitation block the TFLite converter keeps the `* (1 / 6)` as a
`MUL` by a 0-D constant, and XNNPACK's NCHW rewrite then rejects the whole
region (observed on emulated aarch64: outputs bit-identical to the dense
twin). The scale can move, exactly, into the layers that consume the gated
features: `W (x * g / 6) = (W / 6)(x * g)`. `find(calls)` returns one
`GateFold` per such gate; `make_compatible` drops the scale (or replaces an
`Activation("hard_sigmoid")` by `ReLU(6)(x + 3)`) and divides the consumers'
kernels.

Example:

>>> from tfsparse.xnnpack.compatible.gate_scale import scalar_factor
>>> import keras
>>> x = keras.Input((1, 1, 4))
>>> y = x * 0.5
>>> scalar_factor(y._keras_history.operation._inbound_nodes[0])
0.5
"""

from __future__ import annotations

import dataclasses
import numbers

import keras
from keras.src.ops.numpy import Multiply as MultiplyOp

L = keras.layers

#: Layers whose output is linear in their input before bias and activation.
LINEAR_CONSUMERS = (L.Conv2D, L.DepthwiseConv2D, L.Dense)


@dataclasses.dataclass(frozen=True)
class GateFold:
    """One gate scale to fold.

    Attributes:
        gate: The operation that scales (a `keras.ops` multiply by a number,
            or an `Activation("hard_sigmoid")`).
        factor: The constant (1/6 for a hard sigmoid).
        multiply: The `Multiply` layer that applies the gate.
        consumers: The layers whose kernels absorb `factor`.
    """

    gate: object
    factor: float
    multiply: object
    consumers: tuple


def scalar_factor(node):
    """The number a `keras.ops` multiply node scales by, or `None`."""
    if not isinstance(node.operation, MultiplyOp):
        return None
    numbers_ = [a for a in node.arguments.args if isinstance(a, numbers.Real) and not isinstance(a, bool)]
    tensors = [a for a in node.arguments.args if isinstance(a, keras.KerasTensor)]
    return float(numbers_[0]) if len(numbers_) == 1 and len(tensors) == 1 else None


def constant_scale(operation):
    """The constant `operation` (its first call) multiplies by: 1/6 for `Activation("hard_sigmoid")`, the number of
    a `keras.ops` multiply by one; else `None`."""
    if isinstance(operation, L.Activation) and getattr(operation.activation, "__name__", "") == "hard_sigmoid":
        return 1.0 / 6.0
    return scalar_factor(operation._inbound_nodes[0]) if operation._inbound_nodes else None


def find(calls):
    """`GateFold`s for every scaled gate whose `Multiply` feeds only linear layers (each called once).

    Args:
        calls: `tfsparse.graph_insert.graph_nodes(model)`.
    """
    folds = []
    for layer_calls in calls.values():
        if len(layer_calls) != 1:
            continue
        call = layer_calls[0]
        factor = constant_scale(call.layer)
        if factor is None or call.is_output or len(call.consumers) != 1:
            continue
        multiply = call.consumers[0]
        if not isinstance(multiply.layer, L.Multiply) or multiply.is_output or not multiply.consumers:
            continue
        consumers = [c.layer for c in multiply.consumers]
        if all(isinstance(layer, LINEAR_CONSUMERS) and len(calls[id(layer)]) == 1 for layer in consumers):
            folds.append(GateFold(call.layer, factor, multiply.layer, tuple(consumers)))
    return folds

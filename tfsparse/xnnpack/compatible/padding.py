"""Which strided convolutions pad asymmetrically, and the symmetric padding that replaces it.

XNNPACK's sparse (NCHW) path runs a strided convolution only when it is padded
by `kernel // 2` on every side. Keras models reach a strided layer with
asymmetric padding in two ways: `padding="same"` on an even input size (0
before, 1 after), and Keras Applications' explicit
`ZeroPadding2D(((0, 1), (0, 1)))` or `((1, 2), (1, 2))` before a
`padding="valid"` layer. `decide(call, consumers)` looks at one call of a
convolution (with the `ZeroPadding2D` feeding it, if any) and returns a
`PaddingRewrite`, the reason it needs one but cannot get it (`Skip`), or
`None` when it already pads symmetrically.

Example:

>>> from tfsparse.xnnpack.compatible.padding import same_padding
>>> same_padding(16, kernel=3, stride=2), same_padding(15, kernel=3, stride=2)
((0, 1), (1, 1))
"""

from __future__ import annotations

import dataclasses

import keras

L = keras.layers

#: The layers whose padding is rewritten.
CONVOLUTIONS = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D)


@dataclasses.dataclass(frozen=True)
class PaddingRewrite:
    """Symmetric explicit padding for one call of a convolution.

    Attributes:
        padding: `((top, bottom), (left, right))` of the `ZeroPadding2D` in front.
        before: The asymmetric `(top, bottom, left, right)` padding it replaces.
        pad_layer: The `ZeroPadding2D` that padded the call before (its padding is
            replaced), or `None` when the layer padded itself with `"same"` (a
            `ZeroPadding2D` is inserted).
    """

    padding: tuple
    before: tuple
    pad_layer: object = None

    @property
    def after(self) -> tuple:
        (top, bottom), (left, right) = self.padding
        return top, bottom, left, right


@dataclasses.dataclass(frozen=True)
class Skip:
    """A call that pads asymmetrically but is left as it is, and why."""

    before: tuple | None
    reason: str


def same_padding(size, kernel, stride):
    """(before, after) padding of Keras' `padding="same"` on one axis of `size` pixels."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_producer(call):
    """The `ZeroPadding2D` whose output `call` takes, or `None`."""
    producer = call.node.input_tensors[0]._keras_history.operation
    return producer if isinstance(producer, L.ZeroPadding2D) else None


def _explicit(pad_layer):
    (top, bottom), (left, right) = pad_layer.padding
    return top, bottom, left, right


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def decide(call, pad_uses):
    """A `PaddingRewrite`, a `Skip`, or `None` for one call of a convolution.

    Args:
        call: The `tfsparse.graph_insert.Call` of a `Conv2D`,
            `DepthwiseConv2D` or `SeparableConv2D`.
        pad_uses: `{id(layer): number of uses of its outputs}` (a
            `ZeroPadding2D` used more than once cannot change).
    """
    layer = call.layer
    kernel, strides = _pair(layer.kernel_size), _pair(layer.strides)
    pad_layer = pad_producer(call)
    explicit = _explicit(pad_layer) if pad_layer is not None else (0, 0, 0, 0)
    source = call.node.input_tensors[0] if pad_layer is None else pad_layer._inbound_nodes[0].input_tensors[0]
    channels_first = layer.data_format == "channels_first" or (
        pad_layer is not None and pad_layer.data_format == "channels_first")
    height, width = tuple(source.shape)[2:4] if channels_first else tuple(source.shape)[1:3]
    if max(strides) > 1 and channels_first:
        return Skip(None, "data_format='channels_first' is not supported (XNNPACK's sparse path starts from "
                          "channels_last)")
    if max(strides) > 1 and (kernel[0] % 2 == 0 or kernel[1] % 2 == 0):
        return Skip(None, f"its kernel {kernel} is even: no symmetric padding keeps the output size, and XNNPACK's "
                          "sparse path runs 3x3 and 5x5 only")
    if layer.padding == "same":
        if height is None or width is None:
            if max(strides) == 1:
                return None
            return Skip(None, "its input height or width is unknown, so SAME padding is only decided at run time")
        implicit = (*same_padding(height, kernel[0], strides[0]), *same_padding(width, kernel[1], strides[1]))
    else:
        implicit = (0, 0, 0, 0)
    before = tuple(a + b for a, b in zip(explicit, implicit))
    if before[0] == before[1] and before[2] == before[3]:
        return None
    if channels_first or kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
        return Skip(before, "only an odd kernel with data_format='channels_last' can pad symmetrically")
    if _pair(layer.dilation_rate) != (1, 1):
        return Skip(before, f"its dilation rate is {_pair(layer.dilation_rate)}, not 1")
    if height is None or width is None:
        return Skip(before, "its input height or width is unknown, so the output size cannot be kept")
    if pad_layer is not None and pad_uses[id(pad_layer)] > 1:
        return Skip(before, f"its ZeroPadding2D {pad_layer.name!r} also feeds other layers, so it cannot change")
    padding = ((kernel[0] // 2,) * 2, (kernel[1] // 2,) * 2)
    valid = layer.__class__.from_config({**layer.get_config(), "padding": "valid"})
    batch, _, _, channels = tuple(source.shape)
    padded = (batch, height + 2 * (kernel[0] // 2), width + 2 * (kernel[1] // 2), channels)
    new_shape, old_shape = tuple(valid.compute_output_shape(padded)), tuple(call.node.outputs[0].shape)
    if new_shape != old_shape:
        return Skip(before, f"its output shape would change from {old_shape} to {new_shape}")
    return PaddingRewrite(padding, before, pad_layer)

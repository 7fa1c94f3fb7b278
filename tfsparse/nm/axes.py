"""The reduction axis of a Keras weight: where N:M blocks run.

N:M sparsity groups the inputs that one output sums over. Blocks run along the
input-channel axis, the innermost axis of the TFLite weight layout, so a
pattern made in Keras is the same pattern in the exported `.tflite`:

| Keras layer                    | Keras kernel            | axis | TFLite weight (op)                  |
|--------------------------------|-------------------------|------|-------------------------------------|
| Dense, RNN cells               | (in, out)               | 0    | (out, in) FULLY_CONNECTED           |
| Conv1D/2D, SeparableConv (pw)  | (..., in, out)          | -2   | (out, kh, kw, in) CONV_2D           |
| Conv3D                         | (kd, kh, kw, in, out)   | -2   | same layout, CONV_3D                |
| Conv1D/2D/3DTranspose          | (..., out, in)          | -1   | (out, kh, kw, in) TRANSPOSE_CONV    |
| EinsumDense                    | per equation            | the one summed-over kernel axis, if exactly one |

Depthwise kernels (DepthwiseConv, the depthwise half of SeparableConv) and
Embedding tables have no reduction axis and are left alone: a depthwise
filter never sums across channels, so blocks of channels would mix unrelated
filters, and accelerators with 2:4 support (sparse tensor cores) run N:M
only in matrix multiplications and regular convolutions.

Custom layers say where their axis is with `register_reduction_axis` (or a
`get_nm_axis(variable)` method returning an int or `None`).

Example:

>>> import keras
>>> from tfsparse.nm.axes import reduction_axis
>>> dense = keras.layers.Dense(4)
>>> dense.build((None, 8))
>>> reduction_axis(dense, dense.kernel)
0
"""

from __future__ import annotations

import re

import keras

_REGISTRY: list = []  # (layer class, {attribute: axis or None})


def register_reduction_axis(layer_cls, *, weights):
    """Declares the reduction axis of weights of `layer_cls` (and subclasses).

    Args:
        layer_cls: A `keras.layers.Layer` subclass.
        weights: `{attribute: axis}`; `axis=None` means "no reduction axis,
            never N:M" (like depthwise kernels).

    Example:

    >>> import keras
    >>> class Mix(keras.layers.Layer):
    ...     pass
    >>> register_reduction_axis(Mix, weights={"w": 0})
    """
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, keras.layers.Layer)):
        raise ValueError(
            "Invalid value received for argument `layer_cls`. Expected a subclass of "
            f"keras.layers.Layer. Received: layer_cls={layer_cls!r}"
        )
    if not isinstance(weights, dict) or not weights:
        raise ValueError(
            "Invalid value received for argument `weights`. Expected a non-empty dict "
            f"{{attribute: axis or None}}, e.g. {{'kernel': 0}}. Received: weights={weights!r}"
        )
    _REGISTRY[:] = [(cls, w) for cls, w in _REGISTRY if cls is not layer_cls]
    _REGISTRY.append((layer_cls, dict(weights)))


def _einsum_axis(layer):
    """The kernel axis summed over in `layer.equation`, if exactly one."""
    match = re.fullmatch(r"\s*([\w.]+)\s*,\s*(\w+)\s*->\s*([\w.]+)\s*", getattr(layer, "equation", "") or "")
    if not match:
        return None
    inputs, kernel, output = match.groups()
    reduced = [i for i, letter in enumerate(kernel) if letter in inputs and letter not in output]
    return reduced[0] if len(reduced) == 1 else None


def _register_defaults():
    layers = keras.layers
    register_reduction_axis(layers.Dense, weights={"kernel": 0})
    for name in ("Conv1D", "Conv2D", "Conv3D"):
        register_reduction_axis(getattr(layers, name), weights={"kernel": -2})
    for name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        register_reduction_axis(getattr(layers, name), weights={"kernel": -1})
    for name in ("DepthwiseConv1D", "DepthwiseConv2D"):
        register_reduction_axis(getattr(layers, name), weights={"kernel": None})
    for name in ("SeparableConv1D", "SeparableConv2D"):
        register_reduction_axis(getattr(layers, name), weights={"depthwise_kernel": None, "pointwise_kernel": -2})
    register_reduction_axis(layers.Embedding, weights={"embeddings": None})
    for cell in (layers.SimpleRNNCell, layers.GRUCell, layers.LSTMCell):
        register_reduction_axis(cell, weights={"kernel": 0, "recurrent_kernel": 0})


def reduction_axis(layer, variable):
    """The axis of `variable` (a weight of `layer`) that N:M blocks run along.

    Returns:
        A non-negative axis, or `None` when the weight has none (depthwise
        kernels, embeddings, unknown layers).
    """
    method = getattr(layer, "get_nm_axis", None)
    if callable(method):
        axis = method(variable)
    elif isinstance(layer, keras.layers.EinsumDense) and variable is getattr(layer, "kernel", None):
        axis = _einsum_axis(layer)
    else:
        best = None
        for cls, weights in _REGISTRY:
            if isinstance(layer, cls) and (best is None or issubclass(cls, best[0])):
                best = (cls, weights)
        axis = None
        for attribute, value in (best[1] if best else {}).items():
            if getattr(layer, attribute, None) is variable:
                axis = value
    rank = len(variable.shape)
    return None if axis is None or rank < 2 else axis % rank


_register_defaults()

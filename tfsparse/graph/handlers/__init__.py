"""The channel handler registry: which `Handler` traces each layer type.

The most specific registered class in a layer's MRO wins, so a subclass of
`Conv2D` is traced as a convolution unless it registers its own handler.
A layer with no handler is traced by `Unsupported`: its channels and those
coupled to them stay unpruned, and the plan says why.
"""

from __future__ import annotations

import keras

from tfsparse.graph.handlers import elementwise, merge, reshape, weighted
from tfsparse.graph.handlers.base import Handler, Unsupported

L = keras.layers
_HANDLERS = {}


def register_handler(layer_cls, handler) -> None:
    """Registers how the channel graph traces `layer_cls` (and its subclasses).

    Args:
        layer_cls: A subclass of `keras.layers.Layer`.
        handler: A `tfsparse.graph.Handler` instance, or a callable
            `handler(layer, inputs, node, builder) -> list of ChannelMap`
            (its layer config is then never resized).

    Raises:
        ValueError: for a `layer_cls` that is not a Layer subclass, or a
            handler that is neither a `Handler` nor callable.

    Example:

    >>> import keras, tfsparse
    >>> class Scale(keras.layers.Layer):
    ...     def call(self, x):
    ...         return 2.0 * x
    >>> tfsparse.graph.register_handler(Scale, lambda layer, inputs, node, builder: [inputs[0]])
    """
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, L.Layer)):
        raise ValueError("Invalid value received for argument `layer_cls`. Expected a subclass of "
                         f"keras.layers.Layer. Received: layer_cls={layer_cls!r}")
    if not isinstance(handler, Handler):
        if not callable(handler):
            raise ValueError("Invalid value received for argument `handler`. Expected a tfsparse.graph.Handler or a "
                             f"callable(layer, inputs, node, builder). Received: handler={handler!r}")
        handler = _FunctionHandler(handler)
    _HANDLERS[layer_cls] = handler


def get_handler(layer) -> Handler:
    """The handler of `layer`'s most specific registered class (`Unsupported` if none)."""
    for cls in type(layer).__mro__:
        if cls in _HANDLERS:
            return _HANDLERS[cls]
    return _UNSUPPORTED


class _FunctionHandler(Handler):
    def __init__(self, function):
        self.function = function

    def trace(self, layer, inputs, node, builder):
        return self.function(layer, inputs, node, builder)


_UNSUPPORTED = Unsupported()


def _register_defaults():
    conv, transpose = weighted.Conv(), weighted.Conv(transpose=True)
    defaults = {
        (L.Conv1D, L.Conv2D, L.Conv3D): conv,
        (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose): transpose,
        (L.DepthwiseConv1D, L.DepthwiseConv2D): weighted.Depthwise(),
        (L.SeparableConv1D, L.SeparableConv2D): weighted.Separable(),
        (L.Dense,): weighted.Dense(),
        (L.Embedding,): weighted.Embedding(),
        (L.BatchNormalization,): weighted.BatchNorm(),
        (L.LayerNormalization, L.GroupNormalization, L.UnitNormalization): weighted.ChannelStatistics(),
        (L.PReLU,): weighted.PReLU(),
        (L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D,
         L.SpatialDropout3D, L.GaussianDropout, L.GaussianNoise, L.AlphaDropout, L.ActivityRegularization,
         L.Identity, L.Rescaling): elementwise.Elementwise(),
        (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
         L.AveragePooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
         L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D, L.Cropping1D, L.Cropping2D,
         L.Cropping3D, L.UpSampling1D, L.UpSampling2D, L.UpSampling3D): elementwise.Spatial(),
        (L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D): elementwise.ZeroPadding(),
        (L.Softmax,): elementwise.ChannelSoftmax(),
        (L.Concatenate,): merge.Concatenate(),
        (L.Flatten,): reshape.Flatten(),
        (L.Reshape,): reshape.Reshape(),
        (L.Permute,): reshape.Permute(),
    }
    for classes, handler in defaults.items():
        for cls in classes:
            register_handler(cls, handler)
    for name in ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average"):
        register_handler(getattr(L, name), merge.ElementwiseMerge(name))


_register_defaults()

__all__ = ["Handler", "get_handler", "register_handler"]

"""Which weights of a model can be pruned.

By default: kernels of Dense, EinsumDense (and so the projections inside
MultiHeadAttention), every convolution and its transpose, the depthwise kernels
of DepthwiseConv1D/2D, both kernels of SeparableConv1D/2D, Embedding tables, and
kernel/recurrent_kernel of the SimpleRNN, GRU and LSTM cells. Biases and
normalization layers are never pruned by default.

Layers are found by walking nested layers, so Sequential, Functional, nested
and subclassed models all work. Matching is `isinstance`-based: a subclass of
`Dense` is prunable like `Dense`. Extend it in two ways:

- a layer method `get_prunable_weights()` returning variables, or
- `register_prunable(layer_cls, weights=["attr", ...])`.

Example:

>>> import keras, tfsparse
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc")])
>>> [(w.layer.name, w.name) for w in tfsparse.prunable_weights(model)]
[('fc', 'kernel')]
"""

from __future__ import annotations

import dataclasses

import keras

_REGISTRY: list[tuple[type, tuple[str, ...]]] = []


@dataclasses.dataclass(frozen=True, eq=False)
class PrunableWeight:
    """A weight that a strategy may prune.

    Attributes:
        layer: The layer that owns the weight.
        variable: The `keras.Variable`.
    """

    layer: keras.layers.Layer
    variable: keras.Variable

    @property
    def path(self) -> str:
        """The variable's unique path, e.g. `model/dense/kernel`."""
        return self.variable.path

    @property
    def name(self) -> str:
        """The weight's short name, e.g. `kernel`."""
        return self.variable.name


def register_prunable(layer_cls, *, weights):
    """Declares which attributes of `layer_cls` hold prunable weights.

    Applies to subclasses too. A later registration for the same class
    replaces the earlier one.

    Args:
        layer_cls: A `keras.layers.Layer` subclass.
        weights: Attribute names, e.g. `["kernel"]`.

    Example:

    >>> import keras, tfsparse
    >>> class Gate(keras.layers.Layer):
    ...     def build(self, shape):
    ...         self.w = self.add_weight(shape=(shape[-1],))
    ...     def call(self, x):
    ...         return x * self.w
    >>> tfsparse.register_prunable(Gate, weights=["w"])
    """
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, keras.layers.Layer)):
        raise ValueError(
            "Invalid value received for argument `layer_cls`. Expected a "
            f"subclass of keras.layers.Layer. Received: layer_cls={layer_cls!r}"
        )
    if isinstance(weights, str) or not weights:
        raise ValueError(
            "Invalid value received for argument `weights`. Expected a "
            f"non-empty list of attribute names. Received: weights={weights!r}"
        )
    _REGISTRY[:] = [(cls, w) for cls, w in _REGISTRY if cls is not layer_cls]
    _REGISTRY.append((layer_cls, tuple(weights)))


def _register_defaults():
    layers = keras.layers
    register_prunable(layers.Dense, weights=["kernel"])
    register_prunable(layers.EinsumDense, weights=["kernel"])
    # BaseConv covers Conv1D/2D/3D; transposes and depthwise are separate.
    for name in ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        register_prunable(getattr(layers, name), weights=["kernel"])
    register_prunable(layers.DepthwiseConv1D, weights=["kernel"])
    register_prunable(layers.DepthwiseConv2D, weights=["kernel"])
    register_prunable(layers.SeparableConv1D, weights=["depthwise_kernel", "pointwise_kernel"])
    register_prunable(layers.SeparableConv2D, weights=["depthwise_kernel", "pointwise_kernel"])
    register_prunable(layers.Embedding, weights=["embeddings"])
    for cell in (layers.SimpleRNNCell, layers.GRUCell, layers.LSTMCell):
        register_prunable(cell, weights=["kernel", "recurrent_kernel"])


def _registered_attributes(layer) -> tuple[str, ...]:
    # The most specific registered class wins (a subclass registration
    # overrides its parent's).
    best = None
    for cls, weights in _REGISTRY:
        if isinstance(layer, cls) and (best is None or issubclass(cls, best[0])):
            best = (cls, weights)
    return best[1] if best else ()


def _layer_weights(layer) -> list:
    method = getattr(layer, "get_prunable_weights", None)
    if callable(method):
        return list(method())
    found = []
    for attribute in _registered_attributes(layer):
        variable = getattr(layer, attribute, None)
        if isinstance(variable, keras.Variable):
            found.append(variable)
    return found


def iter_layers(model):
    """Yields `model`'s layers, nested ones included, each once, in order."""
    seen = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if id(layer) not in seen:
            seen.add(id(layer))
            yield layer


def prunable_weights(model) -> list[PrunableWeight]:
    """Returns every prunable weight of a built model, each once.

    Args:
        model: A built `keras.Model` (or layer).

    Returns:
        A list of `PrunableWeight`, in layer order.

    Raises:
        ValueError: if `model` is not a Keras model or is not built.
    """
    check_model(model)
    result, seen = [], set()
    for layer in iter_layers(model):
        for variable in _layer_weights(layer):
            if id(variable) not in seen and variable.trainable:
                seen.add(id(variable))
                result.append(PrunableWeight(layer, variable))
    return result


def check_model(model) -> None:
    """Raises a clear `ValueError` unless `model` is a built Keras layer."""
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a Keras 3 "
            "model (keras.Model; legacy tf_keras models are not supported). "
            f"Received: model of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "Invalid value received for argument `model`. The model is not "
            "built yet, so its weights do not exist. Build it first, e.g. by "
            "adding `keras.Input(shape)` or calling `model.build(input_shape)`. "
            f"Received: model={model.name}"
        )


_register_defaults()

"""Rebuilding Sequential and Functional models with layers changed, added or removed.

`rebuild(model, ...)` copies a model layer by layer with
`keras.models.clone_model`, letting hooks change each layer's clone, wrap or
replace each call (to insert layers after it, or drop it), and give each clone
its weights. Nested Sequential and Functional models are rebuilt the same way,
recursively; a Sequential model (nested or not) stays Sequential. The input
model is never modified. `graph_nodes(model)` lists the calls of a model's
graph, nested models included, for the analysis that decides the rewrite.

Example:

>>> import keras
>>> from tfsparse.graph_insert import rebuild
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc")])
>>> def add_dropout(original, clone, *args, **kwargs):
...     return keras.layers.Dropout(0.5, name=f"{original.name}_drop")(clone(*args, **kwargs))
>>> copy = rebuild(model, call_layer=add_dropout)
>>> type(copy).__name__, [layer.name for layer in copy.layers]
('Sequential', ['fc', 'fc_drop'])
"""

from __future__ import annotations

import dataclasses

import keras
from keras.src.models.functional import Functional


def is_graph_model(model) -> bool:
    """Whether `model` is a Sequential or Functional model (a layer graph)."""
    return isinstance(model, (keras.Sequential, Functional))


def functional_view(model):
    """`model` as a Functional model over the same layers (a view for a Sequential; nothing is modified)."""
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise ValueError(
                "Invalid value received for argument `model`. Expected a built Sequential model; start it with "
                f"keras.Input(...) or call `model.build(input_shape)` first. Received: model={model.name!r}"
            )
        return model._functional
    if isinstance(model, Functional):
        return model
    raise ValueError(
        "Invalid value received for argument `model`. Expected a Sequential or Functional keras.Model, whose "
        f"layer graph can be rebuilt; a subclassed model has none. Received: model={model.name!r} of type "
        f"{type(model).__name__}"
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Call:
    """One call of a layer in a model graph.

    Attributes:
        graph: The Functional model (or a Sequential's functional view) holding the call.
        node: The Keras `Node` of the call.
        consumers: The `Call`s that take an output of this one as input, in `graph`.
        is_output: Whether an output of this call is an output of `graph`.
    """

    graph: object
    node: object
    consumers: list
    is_output: bool

    @property
    def layer(self):
        return self.node.operation

    @property
    def producers(self):
        """The operations whose outputs this call takes (`InputLayer`s included)."""
        return [tensor._keras_history.operation for tensor in self.node.input_tensors]


def graph_nodes(model) -> dict:
    """`{id(layer): [Call, ...]}` for every layer call in `model`'s graph, nested graphs included."""
    calls = {}
    _collect(functional_view(model), calls)
    return calls


def _collect(graph, calls):
    nodes = [node for depth in sorted(graph._nodes_by_depth, reverse=True) for node in graph._nodes_by_depth[depth]]
    outputs = {id(tensor) for tensor in graph.outputs}
    by_tensor = {}
    made = []
    for node in nodes:
        if node.operation is None or node.is_input:
            continue
        call = Call(graph, node, [], any(id(t) in outputs for t in node.outputs))
        made.append(call)
        for tensor in node.input_tensors:
            by_tensor.setdefault(id(tensor), []).append(call)
        calls.setdefault(id(node.operation), []).append(call)
        if is_graph_model(node.operation):
            _collect(functional_view(node.operation), calls)
    for call in made:
        for tensor in call.node.outputs:
            call.consumers.extend(by_tensor.get(id(tensor), []))


def rebuild(model, *, clone_layer=None, call_layer=None, layer_weights=None, input_shape=None):
    """Returns a rebuilt copy of `model` (see the module docstring).

    Args:
        model: A built Sequential or Functional `keras.Model`.
        clone_layer: `clone_layer(layer) -> new layer` for every layer that
            is not a nested model. Defaults to `None`:
            `layer.__class__.from_config(layer.get_config())`.
        call_layer: `call_layer(original, clone, *args, **kwargs) -> outputs`
            for every call of such a layer: call `clone`, add layers after
            it, or return something else (e.g. `args[0]` to drop the layer).
            Defaults to `None`: `clone(*args, **kwargs)`.
        layer_weights: `layer_weights(original, clone) -> list of arrays`,
            the weights of each clone that was called (built). Defaults to
            `None`: `original.get_weights()`.
        input_shape: `input_shape(tensor) -> batch shape` of the new input
            replacing each input `tensor` of the model and of nested models
            (when a rewrite changes them). Defaults to `None`: unchanged.

    Returns:
        A new model: Sequential if `model` is (its layers must still form a
        chain), Functional otherwise, compiled from `model`'s compile config
        if `model` was compiled.

    Raises:
        ValueError: for a subclassed or unbuilt model.
    """
    pairs = []
    new_model = _rebuild(model, clone_layer, call_layer, pairs, input_shape)
    for original, clone in pairs:
        if isinstance(clone, keras.layers.Layer) and clone.built:
            clone.set_weights(layer_weights(original, clone) if layer_weights else original.get_weights())
    return new_model


def _rebuild(model, clone_layer, call_layer, pairs, input_shape=None):
    graph = functional_view(model)
    originals = {}

    def clone_fn(layer):
        if is_graph_model(layer):
            return _rebuild(layer, clone_layer, call_layer, pairs, input_shape)
        clone = clone_layer(layer) if clone_layer else layer.__class__.from_config(layer.get_config())
        pairs.append((layer, clone))
        originals[id(clone)] = layer
        return clone

    def call_fn(clone, *args, **kwargs):
        original = originals.get(id(clone))
        if original is None or call_layer is None:
            return clone(*args, **kwargs)
        return call_layer(original, clone, *args, **kwargs)

    inputs = keras.tree.map_structure(
        lambda x: keras.Input(batch_shape=input_shape(x) if input_shape else x.shape, dtype=x.dtype,
                              name=x._keras_history.operation.name),
        graph.input,
    )
    new_model = keras.models.clone_model(graph, input_tensors=inputs, clone_function=clone_fn, call_function=call_fn)
    if isinstance(model, keras.Sequential):
        new_model = _as_sequential(new_model, model)
    if model.compiled and not new_model.compiled:
        new_model.compile_from_config(model.get_compile_config())
    return new_model


def _as_sequential(functional, model):
    layers = [layer for layer in functional.layers if not isinstance(layer, keras.layers.InputLayer)]
    (tensor,) = keras.tree.flatten(functional.input)
    sequential = keras.Sequential(
        [keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor._keras_history.operation.name),
         *layers],
        name=model.name,
    )
    for layer, previous in zip(layers, [None, *layers]):  # the rewrite must have kept a chain
        producers = [t._keras_history.operation for t in layer._inbound_nodes[0].input_tensors]
        if previous is not None and producers != [previous]:
            raise ValueError(
                f"Cannot rebuild Sequential model {model.name!r} as a Sequential: after the rewrite, layer "
                f"{layer.name!r} does not take the previous layer's output."
            )
    return sequential

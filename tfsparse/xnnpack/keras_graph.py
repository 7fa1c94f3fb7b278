"""A read-only view of a Keras model's layer graph for the XNNPACK planner.

Gives the operations of a functional (or built Sequential) model in
topological order with, for each, the operations feeding it and fed by it,
and the shapes of its first call. Nested Functional and Sequential models are
expanded in place: their layers appear in the graph, fed by the outer layers
that feed the nested model, and feeding the outer layers it feeds.

Example:

>>> import keras
>>> from tfsparse.xnnpack.keras_graph import KerasGraph
>>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 1, name="pw"), keras.layers.ReLU(name="relu")])
>>> graph = KerasGraph.of(model)
>>> [layer.name for layer in graph.consumers[graph.layer("pw")]]
['relu']
"""

from __future__ import annotations

import collections

import keras

from tfsparse.graph_insert import functional_view, is_graph_model


class KerasGraph:
    """Producers and consumers between the operations of a Keras model."""

    def __init__(self, operations, edges):
        self.operations = list(operations)
        self.producers = collections.defaultdict(list)
        self.consumers = collections.defaultdict(list)
        for source, operation in edges:
            if source not in self.producers[operation]:
                self.producers[operation].append(source)
                self.consumers[source].append(operation)

    @classmethod
    def of(cls, model) -> "KerasGraph":
        """The graph of a functional model, or of a Sequential one built with an `Input`, nested models expanded.

        Raises:
            ValueError: for a subclassed model, or a Sequential one without inputs.
        """
        inner = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
        if inner is None or getattr(inner, "operations", None) is None or not hasattr(inner, "inputs"):
            raise ValueError(
                "Invalid value received for argument `model`. Expected a functional keras.Model or a "
                "Sequential model that starts with keras.Input(...), whose layer graph can be read; a "
                f"subclassed model has no such graph. Received: model={getattr(model, 'name', model)!r}"
            )
        operations, edges = [], []
        _expand(functional_view(model), {}, operations, edges)
        return cls(operations, edges)

    def layer(self, name):
        """The operation called `name`."""
        for operation in self.operations:
            if operation.name == name:
                return operation
        raise KeyError(name)

    @staticmethod
    def input_shape(operation):
        """Shape of the first input of the operation's first call."""
        return tuple(operation._inbound_nodes[0].input_tensors[0].shape)

    @staticmethod
    def output_shape(operation):
        """Shape of the first output of the operation's first call."""
        return tuple(operation._inbound_nodes[0].outputs[0].shape)


def _expand(graph, sources, operations, edges):
    """Adds `graph`'s operations and edges; `sources` maps its input tensors to outer producers.

    Returns `{id(output tensor): producing operation}` for the outputs of `graph`.
    """
    producer = dict(sources)
    nodes = [node for depth in sorted(graph._nodes_by_depth, reverse=True) for node in graph._nodes_by_depth[depth]]
    for node in nodes:
        operation = node.operation
        if operation is None or node.is_input:
            continue
        inputs = [producer.get(id(t)) for t in node.input_tensors]
        if is_graph_model(operation):
            inner = functional_view(operation)
            inner_sources = {id(t): source for t, source in zip(keras.tree.flatten(inner.inputs), inputs)
                             if source is not None}
            made = _expand(inner, inner_sources, operations, edges)
            for outer, inner_output in zip(node.outputs, keras.tree.flatten(inner.outputs)):
                producer[id(outer)] = made.get(id(inner_output))
            continue
        if operation not in operations:
            operations.append(operation)
        edges.extend((source, operation) for source in inputs if source is not None)
        for tensor in node.outputs:
            producer[id(tensor)] = operation
    return {id(t): producer.get(id(t)) for t in keras.tree.flatten(graph.outputs)}

"""A read-only view of a Keras model's layer graph for the XNNPACK planner.

Gives the operations of a functional (or built Sequential) model in
topological order with, for each, the operations feeding it and fed by it,
and the shapes of its first call.

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


class KerasGraph:
    """Producers and consumers between the operations of a Keras model."""

    def __init__(self, operations):
        self.operations = list(operations)
        self.producers = collections.defaultdict(list)
        self.consumers = collections.defaultdict(list)
        members = set(map(id, self.operations))
        for operation in self.operations:
            for node in getattr(operation, "_inbound_nodes", []):
                for tensor in node.input_tensors:
                    source = tensor._keras_history.operation
                    if id(source) in members and source not in self.producers[operation]:
                        self.producers[operation].append(source)
                        self.consumers[source].append(operation)

    @classmethod
    def of(cls, model) -> "KerasGraph":
        """The graph of a functional model, or of a Sequential one built with an `Input`.

        Raises:
            ValueError: for a subclassed model, or a Sequential one without inputs.
        """
        inner = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
        operations = getattr(inner, "operations", None) if inner is not None else None
        if operations is None or not hasattr(inner, "inputs"):
            raise ValueError(
                "Invalid value received for argument `model`. Expected a functional keras.Model or a "
                "Sequential model that starts with keras.Input(...), whose layer graph can be read; a "
                f"subclassed model has no such graph. Received: model={getattr(model, 'name', model)!r}"
            )
        return cls(operations)

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

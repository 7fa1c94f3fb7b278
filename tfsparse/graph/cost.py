"""`flops(model)`: multiply-accumulates and parameters of a Sequential or Functional model.

MACs are counted per layer call (a shared layer counts once per call) for
batch 1, channels last, for the layers that do the arithmetic: convolutions
(1D/2D/3D), their transposes, depthwise and separable convolutions and
`Dense` (on inputs of any rank), see `tfsparse.xnnpack.macs.call_macs`.
Layers inside nested models count with the shapes of their own graph, and
unknown (`None`) dimensions count as 1. Parameters are every weight,
trainable or not, nested models included, a shared variable once (so
`params == model.count_params()`).

Example:

>>> import keras, tfsparse
>>> inputs = keras.Input((8, 8, 3))
>>> x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)  # 64 positions x 9 x 3 x 4
>>> x = keras.layers.BatchNormalization(name="bn")(x)
>>> outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x))  # 256 x 2
>>> report = tfsparse.flops(keras.Model(inputs, outputs))
>>> report.macs, report.params, report.per_layer
(7424, 642, {'conv': 6912, 'head': 512})
>>> print(report)
7.42 K MACs, 642 params
"""

from __future__ import annotations

import dataclasses
import math

import keras

from tfsparse.graph_insert import functional_view, is_graph_model
from tfsparse.prunable import check_model
from tfsparse.xnnpack.macs import MAC_LAYERS, call_macs


@dataclasses.dataclass(frozen=True)
class FlopsReport:
    """What `flops(model)` counted.

    Attributes:
        macs: Multiply-accumulates of one forward pass (batch 1).
        params: Scalars in the model's weights (trainable and not).
        per_layer: `{name: macs}` for every layer of a counted type, in
            graph order; a layer inside a nested model is named
            `"nested_model/layer"`.
    """

    macs: int
    params: int
    per_layer: dict

    def to_dict(self) -> dict:
        return {"macs": self.macs, "params": self.params, "per_layer": dict(self.per_layer)}

    def __str__(self) -> str:
        return f"{_human(self.macs)} MACs, {_human(self.params)} params"


def flops(model) -> FlopsReport:
    """Counts `model`'s MACs and parameters (see the module docstring).

    Args:
        model: A built Sequential or Functional `keras.Model`.

    Returns:
        A `FlopsReport`.

    Raises:
        ValueError: for a model that is not built, or not a Sequential or
            Functional model (a subclassed model has no layer graph to walk).
    """
    check_model(model)
    if not is_graph_model(model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a Sequential or Functional model: MACs are "
            f"counted per call in the layer graph, and a subclassed model ({type(model).__name__}) has none. "
            f"Received: model={model.name!r}")
    per_layer = {}
    _count(functional_view(model), "", per_layer)
    params = sum(math.prod(int(d) for d in weight.shape) for weight in model.weights)
    return FlopsReport(int(sum(per_layer.values())), int(params), per_layer)


def _count(graph, prefix, per_layer):
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            layer = node.operation
            if layer is None or node.is_input:
                continue
            if is_graph_model(layer):
                _count(functional_view(layer), f"{prefix}{layer.name}/", per_layer)
            elif isinstance(layer, MAC_LAYERS) and node.input_tensors and node.outputs:
                name = prefix + layer.name
                macs = call_macs(layer, node.input_tensors[0].shape, keras.tree.flatten(node.outputs)[0].shape)
                per_layer[name] = per_layer.get(name, 0) + macs


def _human(count) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.2f} {suffix}"
    return str(count)

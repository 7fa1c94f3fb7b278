"""Where `L0Gate`s go in a Sequential or Functional model, and putting them there.

`insert_gates(model)` returns a copy of the model (nested models included, all
weights kept) with one gate after each selected layer, one per output channel
or unit. Where it goes:

- after the BatchNormalization that directly follows the layer (its only
  consumer), so a closed channel is 0 after the normalization, not its shift
  `beta - mean * gamma / std`;
- otherwise right after the layer's linear part: the layer's activation moves
  into the gate (`activation(z * x)`), so the gate folds exactly into the
  kernel and bias (`tfsparse.strategies.l0.fold`). The activation must map 0
  to 0 (relu, tanh, gelu, swish...; not sigmoid or softplus), and so must an
  activation layer right after; no BatchNormalization may follow.

By default every Dense and convolution layer (see
`tfsparse.strategies.l0.fold.GATEABLE`) is gated except the last ones before
the model's outputs (gating logits rarely makes sense), and layers that cannot
take a gate are skipped (logged). With `layers=...` every selected layer must
take one, or a `ValueError` says why.

Example:

>>> import keras
>>> from tfsparse.strategies.l0.insert import insert_gates
>>> inputs = keras.Input((8, 8, 3))
>>> x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
>>> x = keras.layers.BatchNormalization(name="bn")(x)
>>> x = keras.layers.ReLU(name="relu")(x)
>>> outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D(name="pool")(x))
>>> gated = insert_gates(keras.Model(inputs, outputs))
>>> [layer.name for layer in gated.layers[1:]]
['conv', 'bn', 'conv_l0_gate', 'relu', 'pool', 'head']
"""

from __future__ import annotations

import keras
import numpy as np
from absl import logging
from keras import ops

from tfsparse.graph_insert import Call, functional_view, graph_nodes, is_graph_model, rebuild
from tfsparse.prunable import _layer_weights, check_model, iter_layers
from tfsparse.selection import select_weights
from tfsparse.strategies.l0.fold import GATEABLE, channel_axis, gateable_names
from tfsparse.strategies.l0.gate import L0Gate, _invalid, check_activation, check_log_alpha_scale

_ACTIVATION_LAYERS = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
                      keras.layers.Softmax)
_NORMALIZATIONS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization, keras.layers.GroupNormalization)


def insert_gates(model, *, layers=None, exclude=None, log_alpha_scale=1.0):
    """Returns a copy of `model` with an `L0Gate` after each selected layer.

    Args:
        model: A built Sequential or Functional `keras.Model`; it is not
            modified.
        layers: Which layers to gate (selectors of `tfsparse.selection`);
            `None` gates every layer that can take a gate, except the last
            ones before an output. Defaults to `None`.
        exclude: Layers not to gate, same forms. Defaults to `None`.
        log_alpha_scale: The gates' `log_alpha_scale` (see `L0Gate`).
            Defaults to `1.0`.

    Returns:
        A new model of the same kind (Sequential stays Sequential) whose
        gates, named `f"{layer.name}_l0_gate"`, are open at inference: it
        predicts what `model` predicts.

    Raises:
        ValueError: for a subclassed or unbuilt model, a selected layer that
            cannot take a gate (the message says why and lists the supported
            types), or no layer to gate.
    """
    check_model(model)
    if not is_graph_model(model):
        raise _invalid(
            "model", "a Sequential or Functional model; a subclassed model has no graph to insert gates into: add "
            "`tfsparse.layers.L0Gate()` after the layers to prune in its `call`", model.name)
    calls = graph_nodes(model)
    outputs = _output_layers(model)
    chosen, skipped = [], []
    for layer in dict.fromkeys(w.layer for w in select_weights(model, layers=layers, exclude=exclude)):
        placement = _place(layer, calls)
        if layers is None and id(layer) in outputs:
            skipped.append(f"{layer.name!r}: it makes a model output")
        elif isinstance(placement, str):
            if layers is not None:
                raise _invalid("layers", f"layers that can take an L0 gate; {layer.name!r} cannot: {placement}",
                               layers)
            skipped.append(f"{layer.name!r}: {placement}")
        else:
            chosen.append(placement)
    if skipped:
        logging.info("tfsparse l0: no gate on %s", "; ".join(skipped))
    if not chosen:
        raise _invalid("model", f"a model with a layer that can take an L0 gate ({gateable_names()}; not the last "
                       "layers before an output): " + "; ".join(skipped), model.name)
    return _insert(model, chosen, check_log_alpha_scale(log_alpha_scale))


def find_gates(model) -> list:
    """The `L0Gate` layers of `model`, nested ones included, in order."""
    return [layer for layer in iter_layers(model) if isinstance(layer, L0Gate)]


def _place(layer, calls):
    """`(layer, anchor, axis, activation)` for `layer`'s gate, or why it cannot take one."""
    if not isinstance(layer, GATEABLE):
        return f"a {type(layer).__name__} cannot take an L0 gate (supported: {gateable_names()})"
    found = calls.get(id(layer), [])
    if len(found) != 1:
        return (f"it is called {len(found)} times in the model graph" if found else
                "it is not called in the model graph (it is inside a subclassed layer)")
    call = found[0]
    rank = len(call.node.outputs[0].shape)
    axis = channel_axis(layer)
    consumers = call.consumers
    norms = [c for c in consumers if isinstance(c.layer, keras.layers.BatchNormalization)]
    if norms and (len(consumers) > 1 or call.is_output):
        return f"its output feeds BatchNormalization {norms[0].layer.name!r} and other layers"
    if norms:
        norm = norms[0]
        axes = norm.layer.axis if isinstance(norm.layer.axis, (list, tuple)) else [norm.layer.axis]
        if [a % rank for a in axes] != [axis % rank]:
            return f"the BatchNormalization {norm.layer.name!r} after it does not normalize its channels"
        if len(calls.get(id(norm.layer), [])) != 1:
            return f"the BatchNormalization {norm.layer.name!r} after it is shared"
        anchor, activation = norm, None
    else:
        anchor, activation = call, layer.activation
        try:
            check_activation(activation, f"layer {layer.name!r}")
        except ValueError:
            return f"its activation {getattr(activation, '__name__', activation)!r} maps 0 to a nonzero value"
    problem = _zero_breaking_consumer(anchor)
    if problem:
        return problem
    return layer, anchor.layer, axis, activation


def _zero_breaking_consumer(anchor: Call, seen=None):
    """Why a closed channel at `anchor`'s output would not stay 0 downstream, or `None`.

    Follows single-input layers without weights (dropout, pooling, padding,
    reshaping, activations) to the next layer with weights or a merge.
    """
    seen = set() if seen is None else seen
    for consumer in anchor.consumers:
        layer = consumer.layer
        if id(consumer) in seen:
            continue
        seen.add(id(consumer))
        if isinstance(layer, _NORMALIZATIONS):
            return f"{type(layer).__name__} {layer.name!r} follows it (a closed channel would not stay 0)"
        if isinstance(layer, _ACTIVATION_LAYERS):
            shape = [1 if d is None else d for d in consumer.node.input_tensors[0].shape]
            if np.any(ops.convert_to_numpy(layer(np.zeros(shape, "float32"))) != 0):
                return f"the activation layer {layer.name!r} after it maps 0 to a nonzero value"
        if not layer.weights and not is_graph_model(layer) and len(consumer.node.input_tensors) == 1:
            problem = _zero_breaking_consumer(consumer, seen)
            if problem:
                return problem
    return None


def _output_layers(model) -> set:
    """Ids of the last prunable layers before each output of `model` (skipping weightless layers)."""
    found, seen = set(), set()

    def walk(tensor):
        operation, node_index, _ = tensor._keras_history
        if id(tensor) in seen or isinstance(operation, keras.layers.InputLayer):
            return
        seen.add(id(tensor))
        if is_graph_model(operation):
            for inner in functional_view(operation).outputs:
                walk(inner)
            return
        if isinstance(operation, GATEABLE) or _layer_weights(operation):
            found.add(id(operation))
            return
        for inner in operation._inbound_nodes[node_index].input_tensors:
            walk(inner)

    for tensor in keras.tree.flatten(functional_view(model).outputs):
        walk(tensor)
    return found


def _insert(model, placements, log_alpha_scale):
    gated = {id(layer) for layer, _, _, activation in placements if activation is not None}
    after = {}
    for layer, anchor, axis, activation in placements:
        after[id(anchor)] = L0Gate(axis=axis, activation=activation, name=f"{layer.name}_l0_gate",
                                   dtype=layer.dtype_policy, log_alpha_scale=log_alpha_scale)

    def clone_layer(layer):
        config = layer.get_config()
        if id(layer) in gated:
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    def call_layer(original, clone, *args, **kwargs):
        outputs = clone(*args, **kwargs)
        gate = after.get(id(original))
        return gate(outputs) if gate is not None else outputs

    return rebuild(model, clone_layer=clone_layer, call_layer=call_layer)

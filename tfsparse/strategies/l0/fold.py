"""Folding `L0Gate`s into the weights before them: the `l0` finalizer.

At inference a gate multiplies its channels by fixed values `z` in [0, 1], so
it can be folded into the layer that makes those channels:

- a gate right after a Dense or convolution layer (the layer's only
  consumer) scales that layer's output channels: kernel columns and bias
  times `z`; the gate's activation becomes the layer's again;
- a gate right after a BatchNormalization (on the gate's axis) scales its
  `gamma` and `beta` (a BatchNormalization without `gamma` gets one); the
  layer before the BatchNormalization, if it has only that consumer, has its
  closed channels zeroed too.

Closed channels (`z == 0`) become exact zeros; `tfsparse.finalize` then
removes them with the structured shrink (`tfsparse.graph.shrink`), which
runs after every finalizer. A gate that
follows anything else (an `Add`, a shared layer, a subclassed model's code)
cannot be folded exactly and stays in the model; it computes the same
deterministic `z` at inference, and the log names it.

`tfsparse.finalize` (and so `tfsparse.export`) applies `fold_l0_gates`: it
is registered as the finalizer `"l0_gates"` when `tfsparse.strategies.l0`
(which `tfsparse.layers` imports) is imported, which every model containing
an `L0Gate` has done.

Example:

>>> import keras, numpy as np
>>> from tfsparse.layers import L0Gate
>>> from tfsparse.strategies.l0.fold import fold_l0_gates
>>> gate = L0Gate(log_alpha_initializer=keras.initializers.Constant([-5.0, 0.0, 5.0]), name="gate")
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc"), gate])
>>> folded, report = fold_l0_gates(model, return_report=True)
>>> [layer.name for layer in folded.layers], report.closed, report.channels
(['fc'], 1, 3)
>>> x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
>>> bool(np.allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6))
True
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from absl import logging

from tfsparse.deploy.finalize import register_finalizer
from tfsparse.graph_insert import graph_nodes, is_graph_model, rebuild
from tfsparse.strategies.l0.gate import L0Gate

L = keras.layers

#: Layers whose output channels a gate can follow and fold into.
GATEABLE = (
    L.Dense, L.Conv1D, L.Conv2D, L.Conv3D, L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose,
    L.DepthwiseConv1D, L.DepthwiseConv2D, L.SeparableConv1D, L.SeparableConv2D,
)
_HOMOGENEOUS = ("linear", "relu")  # f(z * x) == z * f(x) for z >= 0


def gateable_names() -> str:
    """The supported layer types, for error messages."""
    return ", ".join(cls.__name__ for cls in GATEABLE)


def channel_axis(layer) -> int:
    """The output channel axis of a gateable layer (`-1`, or `1` for channels_first)."""
    return 1 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1


def scale_output_channels(layer, factors) -> list:
    """`layer.get_weights()` with every output channel `c` multiplied by `factors[c]`."""
    factors = np.asarray(factors, dtype=np.float32)
    values = {id(v): np.array(keras.ops.convert_to_numpy(v.value)) for v in layer.weights}

    def scale(variable, axis=-1, depthwise=False):
        if variable is None:
            return
        value = values[id(variable)]
        if depthwise:  # (*kernel, in, multiplier): output channel i * multiplier + m
            flat = value.reshape(*value.shape[:-2], -1) * factors
            values[id(variable)] = flat.reshape(value.shape)
        else:
            shape = [1] * value.ndim
            shape[axis] = -1
            values[id(variable)] = value * factors.reshape(shape)

    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        scale(layer.pointwise_kernel)
    elif isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        scale(layer.kernel, depthwise=True)
    elif isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        scale(layer.kernel, axis=-2)
    else:
        scale(layer.kernel)
    scale(getattr(layer, "bias", None))
    return [values[id(v)] for v in layer.weights]


@dataclasses.dataclass(frozen=True)
class FoldReport:
    """What `fold_l0_gates` did.

    Attributes:
        folded: Names of the gates folded away.
        kept: `{gate name: reason}` for the gates left in the model.
        closed: Closed channels over all gates.
        channels: Channels over all gates.
        zeroed: Closed channels of the folded gates, now zero weights.
    """

    folded: tuple
    kept: dict
    closed: int
    channels: int
    zeroed: int

    def describe(self) -> str:
        text = (f"{self.closed} of {self.channels} gated channels are closed; folded {len(self.folded)} L0 "
                f"gate(s), {self.zeroed} closed channels zeroed (tfsparse.finalize then removes them: tfsparse.graph.shrink)")
        if self.kept:
            text += "; kept (not foldable): " + "; ".join(f"{k}: {v}" for k, v in self.kept.items())
        return text


def fold_l0_gates(model, *, return_report=False):
    """Returns a copy of `model` with its `L0Gate`s folded into the weights before them.

    Args:
        model: A built `keras.Model`. A model without gates, or a subclassed
            model (whose code places the gates), is returned as it is.
        return_report: Also return a `FoldReport`. Defaults to `False`.

    Returns:
        The folded model (its inference outputs equal `model`'s up to float
        rounding), or `(model, FoldReport)`.
    """
    gates = [layer for layer in model._flatten_layers(include_self=False, recursive=True) if isinstance(layer, L0Gate)]
    closed = sum(int(gate.closed().sum()) for gate in gates)
    channels = sum(gate.units for gate in gates)
    if not gates or not is_graph_model(model):
        kept = {gate.name: "the model is subclassed: its code calls the gate" for gate in gates}
        report = FoldReport((), kept, closed, channels, 0)
        result = model
    else:
        plan, kept = _plan(model, gates)
        result = _apply(model, plan) if plan else model
        folded = [gate for gate in gates if gate.name not in kept]
        zeroed = sum(int(gate.closed().sum()) for gate in folded)
        report = FoldReport(tuple(gate.name for gate in folded), kept, closed, channels, zeroed)
    if gates:
        (logging.warning if report.kept else logging.info)("tfsparse l0: %s", report.describe())
    return (result, report) if return_report else result


def _only_call(calls, layer):
    found = calls.get(id(layer), [])
    return found[0] if len(found) == 1 else None


def _plan(model, gates):
    """`{id(layer): (kind, gate)}`, kind one of "layer"/"bn" (fold into it), "zero", "drop"/"drop_bn"."""
    calls = graph_nodes(model)
    plan, kept = {}, {}
    for gate in gates:
        reason = _fold_target(gate, calls, plan)
        if reason is not None:
            kept[gate.name] = reason
    return plan, kept


def _fold_target(gate, calls, plan):
    call = _only_call(calls, gate)
    if call is None:
        return "it is called more than once (or not in the model graph)"
    (producer,) = call.producers
    producer_call = _only_call(calls, producer)
    if producer_call is None or len(producer_call.consumers) != 1 or producer_call.is_output:
        return "the layer before it has other consumers, other calls, or none"
    rank = len(call.node.input_tensors[0].shape)
    axis = gate.axis % rank
    activation = keras.activations.serialize(gate.activation)
    if isinstance(producer, GATEABLE):
        own = keras.activations.serialize(producer.activation)
        if channel_axis(producer) % rank != axis:
            return f"its axis is not the channel axis of {producer.name!r}"
        if own != "linear" and not (activation == "linear" and own in _HOMOGENEOUS):
            return f"{producer.name!r} has activation {own!r}, which a gate after it cannot fold through"
        plan[id(producer)] = ("layer", gate)
        plan[id(gate)] = ("drop", gate)
    elif isinstance(producer, L.BatchNormalization):
        if [a % rank for a in _bn_axes(producer)] != [axis]:
            return f"BatchNormalization {producer.name!r} does not normalize the gate's axis"
        plan[id(producer)] = ("bn", gate)
        plan[id(gate)] = ("drop_bn", gate)
        (before,) = producer_call.producers
        before_call = _only_call(calls, before)
        if isinstance(before, GATEABLE) and before_call is not None and len(before_call.consumers) == 1:
            plan[id(before)] = ("zero", gate)
    else:
        return f"it follows {type(producer).__name__} {producer.name!r}, not a Dense, convolution or BatchNormalization"
    return None


def _bn_axes(layer):
    axis = layer.axis
    return list(axis) if isinstance(axis, (list, tuple)) else [axis]


def _gate_values(gate):
    return np.asarray(keras.ops.convert_to_numpy(gate.inference_gates()), dtype=np.float32)


def _apply(model, plan):
    def clone_layer(layer):
        config = layer.get_config()
        kind, gate = plan.get(id(layer), (None, None))
        if kind == "layer" and keras.activations.serialize(gate.activation) != "linear":
            config["activation"] = keras.activations.serialize(gate.activation)
        if kind == "bn":
            config["scale"] = True
        return layer.__class__.from_config(config)

    def call_layer(original, clone, *args, **kwargs):
        kind, gate = plan.get(id(original), (None, None))
        if kind not in ("drop", "drop_bn"):
            return clone(*args, **kwargs)
        inputs = args[0] if args else kwargs["inputs"]
        if kind == "drop_bn" and keras.activations.serialize(gate.activation) != "linear":
            return L.Activation(gate.activation, name=gate.name)(inputs)
        return inputs

    def layer_weights(original, clone):
        kind, gate = plan.get(id(original), (None, None))
        if kind == "layer":
            return scale_output_channels(original, _gate_values(gate))
        if kind == "zero":
            return scale_output_channels(original, (_gate_values(gate) != 0).astype(np.float32))
        if kind == "bn":
            return _bn_weights(original, clone, _gate_values(gate))
        return original.get_weights()

    return rebuild(model, clone_layer=clone_layer, call_layer=call_layer, layer_weights=layer_weights)


def _bn_weights(original, clone, z):
    gamma = original.gamma.numpy() if original.gamma is not None else np.ones_like(z)
    values = {"gamma": gamma * z}
    if original.beta is not None:
        values["beta"] = original.beta.numpy() * z
    values["moving_mean"] = original.moving_mean.numpy()
    values["moving_variance"] = original.moving_variance.numpy()
    return [values[v.name] for v in clone.weights]


register_finalizer(fold_l0_gates, name="l0_gates")

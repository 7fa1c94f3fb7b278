"""Rewrites asymmetric stride-2 SAME padding into explicit symmetric padding.

XNNPACK's sparse (NCHW) path needs every strided convolution padded by
`kernel // 2` on every side. Keras' `padding="same"` with stride 2 on an even
input size pads 0 before and 1 after, which keeps the whole network off that
path. `make_compatible(model)` replaces each such layer by
`ZeroPadding2D(kernel // 2)` followed by the same layer with
`padding="valid"`: the output shape is unchanged and the weights are copied
1:1, but the sampling grid moves by one pixel, so the network computes a
slightly different function. Apply it before pruning and fine-tuning.

Example:

>>> import warnings, keras
>>> from tfsparse.xnnpack.compatible import make_compatible
>>> inputs = keras.Input((32, 32, 3))
>>> outputs = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
>>> model = keras.Model(inputs, outputs)
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     compatible = make_compatible(model)
>>> [type(layer).__name__ for layer in compatible.layers]
['InputLayer', 'ZeroPadding2D', 'Conv2D']
>>> compatible.get_layer("stem").padding, compatible.output.shape == model.output.shape
('valid', True)
>>> "stem" in str(caught[0].message)
True
"""

from __future__ import annotations

import dataclasses
import warnings

import keras
from keras.src.models.functional import Functional

from tfsparse import masks

L = keras.layers

CONVOLUTIONS = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D)
PAD_SUFFIX = "_xnnpack_pad"


@dataclasses.dataclass(frozen=True)
class _Rewrite:
    """Explicit padding for one layer, and the SAME padding it replaces."""

    padding: tuple  # ((top, bottom), (left, right)) for ZeroPadding2D
    same_padding: tuple  # (top, bottom, left, right) of the first asymmetric call

    def describe(self, name):
        (top, bottom), (left, right) = self.padding
        return f"'{name}' (SAME padded {self.same_padding}, now {(top, bottom, left, right)})"


def make_compatible(model):
    """Returns a copy of `model` whose strided convolutions pad symmetrically.

    Every `Conv2D`, `DepthwiseConv2D` and `SeparableConv2D` with a stride above
    1, `padding="same"` and an input size that makes SAME padding asymmetric
    (an odd total padding on an axis) becomes `ZeroPadding2D` (`kernel // 2`
    per axis, named `f"{layer.name}_xnnpack_pad"`) followed by the layer with
    `padding="valid"`. Other layers, and convolutions that already pad
    symmetrically (odd input sizes, stride 1, `"valid"`), are copied as they
    are. Every layer keeps its name and weights (moving statistics
    included), and the model keeps its name; `model` itself is not modified.
    A shared layer gets one padding layer per call (`..._xnnpack_pad_2`, ...).

    A layer that would need the rewrite but cannot get it is left as it is and
    named in the warning with the reason: an even kernel (no symmetric padding
    keeps the output size), `data_format="channels_first"`, an unknown input
    height or width, or any case where the output shape would change.

    The rewrite moves the sampling grid by one pixel, so outputs change
    slightly: a `UserWarning` names the rewritten layers. Apply it before
    pruning and fine-tuning.

    Args:
        model: A functional `keras.Model`, or a built `keras.Sequential` (its
            copy is returned as a functional model). It may not contain
            nested models nor tfsparse masks.

    Returns:
        A new functional `keras.Model` with the weights of `model`, compiled
        from `model`'s compile config if `model` was compiled (optimizer
        state is not carried). When nothing needs rewriting, it is a plain
        copy and no warning is emitted.

    Raises:
        ValueError: for a subclassed or unbuilt model, one with nested
            models, or one whose weights carry tfsparse masks (call
            `make_compatible` before attaching a pruning strategy).
    """
    graph_model = _functional_view(model)
    _check_rebuildable(model, graph_model)

    rewrites, skipped = {}, {}
    for layer, calls in _calls_by_layer(graph_model).items():
        decision = _decide(layer, calls)
        if isinstance(decision, _Rewrite):
            rewrites[id(layer)] = decision
        elif decision is not None:
            skipped[layer.name] = decision

    clones, clone_rewrites, pad_counts = {}, {}, {}

    def clone_layer(layer):
        config = layer.get_config()
        if id(layer) in rewrites:
            config["padding"] = "valid"
        clone = layer.__class__.from_config(config)
        clones[id(layer)] = (layer, clone)
        if id(layer) in rewrites:
            clone_rewrites[id(clone)] = rewrites[id(layer)]
        return clone

    def call_layer(layer, *args, **kwargs):
        rewrite = clone_rewrites.get(id(layer))
        if rewrite is not None:
            count = pad_counts[id(layer)] = pad_counts.get(id(layer), 0) + 1
            name = f"{layer.name}{PAD_SUFFIX}" + (f"_{count}" if count > 1 else "")
            pad = L.ZeroPadding2D(rewrite.padding, name=name)
            if args:
                args = (pad(args[0]), *args[1:])
            else:
                kwargs["inputs"] = pad(kwargs["inputs"])
        return layer(*args, **kwargs)

    inputs = keras.tree.map_structure(
        lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x._keras_history.operation.name),
        graph_model.input,
    )
    compatible = keras.models.clone_model(graph_model, input_tensors=inputs, clone_function=clone_layer,
                                          call_function=call_layer)
    for original, clone in clones.values():
        if isinstance(original, keras.layers.Layer):
            clone.set_weights(original.get_weights())
    if graph_model is not model and model.compiled:
        compatible.compile_from_config(model.get_compile_config())

    if rewrites or skipped:
        warnings.warn(_warning_text(model, [original for original, _ in clones.values() if id(original) in rewrites],
                                    rewrites, skipped), UserWarning, stacklevel=2)
    return compatible


def _functional_view(model):
    """`model` as a functional model over the same layers (for a Sequential, a view; nothing is modified)."""
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise ValueError(
                "Invalid value received for argument `model`. Expected a built Sequential model; start it with "
                f"keras.Input(...) or call `model.build(input_shape)` first. Received: model={model!r}"
            )
        return keras.Model(model.inputs[0], model.outputs[0], name=model.name)
    if isinstance(model, Functional):
        return model
    raise ValueError(
        "Invalid value received for argument `model`. Expected a functional or Sequential keras.Model, whose "
        "layer graph can be rebuilt; a subclassed model has none: in its code, replace each stride-2 "
        "padding='same' convolution by keras.layers.ZeroPadding2D(kernel_size // 2) + padding='valid'. "
        f"Received: model={model!r}"
    )


def _check_rebuildable(model, graph_model):
    nested = [op.name for op in graph_model.operations if isinstance(op, keras.Model)]
    if nested:
        raise ValueError(
            "Invalid value received for argument `model`. Expected a model without nested models; call "
            f"make_compatible on each nested model and rebuild the outer model with the results. Received: "
            f"model={model.name!r} with nested models {nested}"
        )
    masked = [variable.path for variable in model.weights if masks.has_mask(variable)]
    if masked:
        raise ValueError(
            "Invalid value received for argument `model`. Expected a model without tfsparse masks: "
            "make_compatible changes what the network computes, so call it before attaching a pruning strategy, "
            f"then prune and fine-tune its result. Received: model={model.name!r} with masked weights {masked}"
        )


def _calls_by_layer(model):
    """{convolution: [(input shape, output shape) per call in `model`]}."""
    calls = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if isinstance(node.operation, CONVOLUTIONS):
                shapes = (tuple(node.input_tensors[0].shape), tuple(node.outputs[0].shape))
                calls.setdefault(node.operation, []).append(shapes)
    return calls


def _same_padding(size, kernel, stride):
    """(before, after) padding of Keras' SAME on one axis."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _decide(layer, calls):
    """A `_Rewrite`, the reason the layer needs but cannot get one, or `None` if it is compatible."""
    if layer.padding != "same" or max(layer.strides) == 1:
        return None
    kernel, strides = tuple(layer.kernel_size), tuple(layer.strides)
    channels_last = layer.data_format == "channels_last"
    same_paddings = []
    for input_shape, _ in calls:
        height, width = input_shape[1:3] if channels_last else input_shape[2:4]
        if height is None or width is None:
            return "its input height or width is unknown, so SAME padding is only decided at run time"
        same_paddings.append((*_same_padding(height, kernel[0], strides[0]),
                              *_same_padding(width, kernel[1], strides[1])))
    asymmetric = [p for p in same_paddings if p[0] != p[1] or p[2] != p[3]]
    if not asymmetric:
        return None
    if not channels_last:
        return "data_format='channels_first' is not supported (XNNPACK's path starts from channels_last)"
    if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
        return f"its kernel {kernel} is even: no symmetric padding keeps the output size"
    if tuple(layer.dilation_rate) != (1, 1):
        return f"its dilation rate is {tuple(layer.dilation_rate)}, not 1"
    padding = ((kernel[0] // 2,) * 2, (kernel[1] // 2,) * 2)
    valid = layer.__class__.from_config({**layer.get_config(), "padding": "valid"})
    for input_shape, output_shape in calls:
        batch, height, width, channels = input_shape
        padded = (batch, height + sum(padding[0]), width + sum(padding[1]), channels)
        new_shape = tuple(valid.compute_output_shape(padded))
        if new_shape != output_shape:
            return f"its output shape would change from {output_shape} to {new_shape}"
    return _Rewrite(padding=padding, same_padding=asymmetric[0])


def _warning_text(model, rewritten_layers, rewrites, skipped):
    lines = []
    if rewritten_layers:
        described = ", ".join(rewrites[id(layer)].describe(layer.name) for layer in rewritten_layers)
        lines.append(
            f"make_compatible rewrote {len(rewritten_layers)} layer(s) of model {model.name!r} as ZeroPadding2D + "
            f"padding='valid' for XNNPACK's sparse path: {described}. This shifts their sampling grid by one "
            "pixel and changes the model's outputs: apply make_compatible before pruning and fine-tuning (and "
            "fine-tune after it)."
        )
    if skipped:
        described = "; ".join(f"'{name}': {reason}" for name, reason in skipped.items())
        lines.append(f"Not rewritten, though their SAME padding may be asymmetric: {described}.")
    return " ".join(lines)

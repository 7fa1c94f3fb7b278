"""`make_compatible(model)`: rewrites asymmetric strided padding into XNNPACK's symmetric form.

XNNPACK's sparse (NCHW) path needs every strided convolution padded by
`kernel // 2` on every side. Keras pads asymmetrically in two ways, and
Keras Applications (MobileNet, MobileNetV2, MobileNetV3, EfficientNet) use
both: `padding="same"` on an even input size pads 0 before and 1 after, and
`ZeroPadding2D(((0, 1), (0, 1)))` (or `((1, 2), (1, 2))` for 5x5 kernels)
before a `padding="valid"` layer. `make_compatible` gives each such layer
`ZeroPadding2D(kernel // 2)` + `padding="valid"`: it replaces the padding of
an explicit `ZeroPadding2D` (keeping its name) or inserts one named
`f"{layer.name}_xnnpack_pad"`. Output shapes and weights stay the same, but
the sampling grid moves by one pixel, so the network computes a slightly
different function: apply it before pruning and fine-tuning.

Example:

>>> import warnings, keras
>>> from tfsparse.xnnpack.compatible import make_compatible
>>> inputs = keras.Input((32, 32, 3))
>>> x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
>>> x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
>>> x = keras.layers.DepthwiseConv2D(3, strides=2, name="dw")(x)
>>> model = keras.Model(inputs, x)
>>> with warnings.catch_warnings(record=True):
...     warnings.simplefilter("always")
...     compatible, report = make_compatible(model, return_report=True)
>>> [type(layer).__name__ for layer in compatible.layers]
['InputLayer', 'ZeroPadding2D', 'Conv2D', 'ZeroPadding2D', 'DepthwiseConv2D']
>>> compatible.get_layer("pad").padding, compatible.output.shape == model.output.shape
(((1, 1), (1, 1)), True)
>>> print(report.changes[1].layer, report.changes[1].before, report.changes[1].after)
dw (0, 1, 0, 1) (1, 1, 1, 1)
"""

from __future__ import annotations

import warnings

import keras

from tfsparse import masks
from tfsparse.graph_insert import functional_view, graph_nodes, is_graph_model, rebuild
from tfsparse.xnnpack.compatible import gate_scale
from tfsparse.xnnpack.compatible.padding import CONVOLUTIONS, PaddingRewrite, Skip, decide
from tfsparse.xnnpack.compatible.report import Change, CompatibilityReport, Skipped

PAD_SUFFIX = "_xnnpack_pad"


def make_compatible(model, *, return_report=False):
    """Returns a copy of `model` whose strided convolutions pad symmetrically.

    Every call of a `Conv2D`, `DepthwiseConv2D` or `SeparableConv2D` whose
    padding (its own `"same"` padding plus a `ZeroPadding2D` feeding it) is
    asymmetric gets `kernel // 2` on every side and `padding="valid"`, when
    that keeps its output shape. Functional and Sequential models are
    rebuilt (a Sequential stays Sequential), nested models too; every layer
    keeps its name and weights (moving statistics included). `model` itself
    is never modified.

    A strided layer XNNPACK's sparse path cannot run and that no padding can
    fix is left as it is and named, with the reason, in the warning and the
    report: `data_format="channels_first"`, an even kernel, a dilation, an
    unknown input height or width, a `ZeroPadding2D` shared with other layers.

    Args:
        model: A built functional or Sequential `keras.Model` without tfsparse
            masks.
        return_report: Also return the `CompatibilityReport` (what was
            rewritten, from what padding to what, and what was left alone).
            Defaults to `False`.

    Returns:
        The new model (compiled from `model`'s compile config if `model` was
        compiled; optimizer state is not carried), or `(model, report)`.
        A `UserWarning` names the rewritten and the skipped layers; when
        nothing needs rewriting the copy is plain and there is no warning.

    Raises:
        ValueError: for a subclassed or unbuilt model, or one whose weights
            carry tfsparse masks (call `make_compatible` before pruning).
    """
    _check_model(model)
    top = functional_view(model)
    calls = graph_nodes(model)
    pad_uses = {key: sum(len(c.consumers) + c.is_output for c in layer_calls) for key, layer_calls in calls.items()}

    conv_rewrites, pad_paddings, changes, skipped = {}, {}, [], []
    for key, layer_calls in calls.items():
        layer = layer_calls[0].layer
        if not isinstance(layer, CONVOLUTIONS):
            continue
        path = _path(top, layer_calls[0])
        decisions = [decide(call, pad_uses) for call in layer_calls]
        skip = next((d for d in decisions if isinstance(d, Skip)), None)
        rewrites = [d for d in decisions if isinstance(d, PaddingRewrite)]
        if skip is None and rewrites and len(rewrites) != len(decisions):
            skip = Skip(None, "it is shared by calls that need different padding")
        if skip is not None:
            skipped.append(Skipped(path, skip.reason))
            continue
        if not rewrites:
            continue
        conv_rewrites[key] = rewrites
        for rewrite in rewrites:
            if rewrite.pad_layer is not None:
                pad_paddings[id(rewrite.pad_layer)] = rewrite.padding
            changes.append(Change(path, rewrite.before, rewrite.after, _how(layer, rewrite)))

    folds = gate_scale.find(calls)
    dropped = {id(fold.gate) for fold in folds}
    scales = {id(layer): fold.factor for fold in folds for layer in fold.consumers}
    for fold in folds:
        changes.append(Change(_path(top, calls[id(fold.gate)][0]), fold.factor, 1.0, _fold_how(fold), "gate scale"))

    inserted = {}

    def clone_layer(layer):
        config = layer.get_config()
        if id(layer) in conv_rewrites:
            config["padding"] = "valid"
        if id(layer) in pad_paddings:
            config["padding"] = pad_paddings[id(layer)]
        return layer.__class__.from_config(config)

    def call_layer(original, clone, *args, **kwargs):
        if id(original) in dropped:
            tensor = next(a for a in (*args, *kwargs.values()) if isinstance(a, keras.KerasTensor))
            if isinstance(original, keras.layers.Activation):  # hard_sigmoid(x) = relu6(x + 3) / 6
                return keras.layers.ReLU(6.0, name=f"{original.name}_relu6")(tensor + 3.0)
            return tensor
        rewrites = conv_rewrites.get(id(original))
        if rewrites is not None and rewrites[0].pad_layer is None:
            count = inserted[id(original)] = inserted.get(id(original), 0) + 1
            name = f"{original.name}{PAD_SUFFIX}" + (f"_{count}" if count > 1 else "")
            pad = keras.layers.ZeroPadding2D(rewrites[0].padding, name=name)
            if args:
                args = (pad(args[0]), *args[1:])
            else:
                kwargs["inputs"] = pad(kwargs["inputs"])
        return clone(*args, **kwargs)

    def layer_weights(original, clone):
        weights = original.get_weights()
        if id(original) in scales:
            weights[0] = weights[0] * scales[id(original)]
        return weights

    compatible = rebuild(model, clone_layer=clone_layer, call_layer=call_layer, layer_weights=layer_weights)
    report = CompatibilityReport(model.name, changes, skipped)
    if changes or skipped:
        warnings.warn(report.warning_text(), UserWarning, stacklevel=2)
    return (compatible, report) if return_report else compatible


def _check_model(model):
    if not is_graph_model(model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a functional or Sequential keras.Model, whose "
            "layer graph can be rebuilt; a subclassed model has none: in its code, give each strided convolution "
            "keras.layers.ZeroPadding2D(kernel_size // 2) + padding='valid'. "
            f"Received: model={getattr(model, 'name', model)!r} of type {type(model).__name__}"
        )
    masked = [variable.path for variable in model.weights if masks.has_mask(variable)]
    if masked:
        raise ValueError(
            "Invalid value received for argument `model`. Expected a model without tfsparse masks: "
            "make_compatible changes what the network computes, so call it before attaching a pruning strategy, "
            f"then prune and fine-tune its result. Received: model={model.name!r} with masked weights {masked}"
        )


def _path(top, call):
    """The layer's name, prefixed by its nested model's name when it is not in `top`'s own graph."""
    return call.layer.name if call.graph is top else f"{call.graph.name}/{call.layer.name}"


def _fold_how(fold):
    removed = "replaced by ReLU(6)(x + 3)" if isinstance(fold.gate, keras.layers.Activation) else "removed"
    consumers = ", ".join(repr(layer.name) for layer in fold.consumers)
    return (f"scale {removed}; the kernel(s) of {consumers} after {fold.multiply.name!r} multiplied by "
            f"{fold.factor:.4g} instead")


def _how(layer, rewrite):
    if rewrite.pad_layer is None:
        return f"inserted ZeroPadding2D '{layer.name}{PAD_SUFFIX}', padding='valid'"
    how = f"ZeroPadding2D {rewrite.pad_layer.name!r} now pads {rewrite.after}"
    return how + (" (merged with the layer's SAME padding), padding='valid'" if layer.padding == "same" else "")

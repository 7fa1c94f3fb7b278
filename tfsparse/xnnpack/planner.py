"""`check(model)`: will XNNPACK run this Keras model sparse, and how much faster at best?

The planner applies the rules of `tfsparse.xnnpack.lint` to the layers of a
Keras model, before training or export: it finds the region XNNPACK's sparse
(NCHW) path could run (a 3x3 stride-2 stem over 3 channels, then 1x1
convolutions, depthwise convolutions and elementwise layers, squeeze-and-
excitation blocks included, until a `GlobalAveragePooling2D`; 1x1
convolutions on the pooled map still belong to it, and what cannot run there
is the head), gives each layer a role and every broken rule with
a one-line fix, and bounds the speedup with Amdahl's law from the share of
MACs in the region's 1x1 convolutions (`tfsparse.xnnpack.macs`). Nested
models are planned through. Each rule was checked against the emulated
observation (`docs/xnnpack-rules.md`).

What only the converted file shows (static batch, sparse encoding, INT8) is
the business of export `target="xnnpack"` and of `lint`.

Example:

>>> import keras
>>> import tfsparse
>>> L = keras.layers
>>> inputs = keras.Input((32, 32, 3))
>>> x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
>>> x = L.Conv2D(64, 1, activation="relu", name="pw")(x)
>>> x = L.GlobalAveragePooling2D()(x)
>>> model = keras.Model(inputs, L.Dense(10)(x))
>>> report = tfsparse.xnnpack.check(model, sparsity=0.9)
>>> report.eligible, report.sparse_layers, round(report.amdahl_bound, 2)
(False, [], 1.0)
>>> print(report.reasons[0])
conv2d: stem padding is (0, 1, 0, 1) (top, bottom, left, right); it must be 1 on every side: use ZeroPadding2D(1) + padding='valid', or tfsparse.xnnpack.make_compatible(model)
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from keras.src.ops import numpy as numpy_ops

from tfsparse import masks
from tfsparse.xnnpack.compatible.gate_scale import constant_scale
from tfsparse.xnnpack.keras_graph import KerasGraph
from tfsparse.xnnpack.macs import amdahl_bound, layer_macs

L = keras.layers
#: Activations XNNPACK's sparse path runs (fused or as elementwise ops).
ACTIVATIONS = {"linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish", "silu", "swish",
               "elu", "leaky_relu"}
#: `keras.ops` elementwise operations (`x + 3.0`, `x * y`) the region runs as ADD/MUL.
ELEMENTWISE_OPS = (numpy_ops.Add, numpy_ops.Subtract, numpy_ops.Multiply)
SCALE_FIX = ("XNNPACK's sparse path rejects the MUL by a 0-D constant the converter keeps for it (observed on emulated "
             "aarch64): fold the scale into the next convolution; tfsparse.xnnpack.make_compatible(model) does it for "
             "squeeze-and-excitation gates")
PAD_FIX = "use ZeroPadding2D(1) + padding='valid', or tfsparse.xnnpack.make_compatible(model)"
PASSTHROUGH = (L.Dropout, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout, L.ActivityRegularization,
               L.Identity)
ELEMENTWISE = (L.Add, L.Multiply, L.Rescaling)
#: Share of zeros the pooled 1x1 weights need: XNNPACK takes the sparse path above it.
MIN_SPARSITY = 2 / 3


@dataclasses.dataclass
class LayerPlan:
    """One layer: its role for XNNPACK and the rules it breaks (with fixes)."""

    name: str
    type: str
    role: str  # before, stem, sparse 1x1, depthwise, elementwise, pad, folded, passthrough, pool, end, after, outside
    problems: list = dataclasses.field(default_factory=list)
    macs: int = 0

    @property
    def in_region(self) -> bool:
        return self.role not in ("before", "after")


@dataclasses.dataclass
class PlanReport:
    """The planner's verdict for a Keras model.

    Attributes:
        model: The model's name.
        eligible: Whether the structure allows the sparse path (sparsity aside).
        fires: Whether it would fire at `sparsity` (eligible and > 2/3 zeros).
        reasons: Every broken rule, with its fix; empty when `fires`.
        layers: A `LayerPlan` per layer, in model order.
        sparse_layers: Names of the 1x1 convolutions XNNPACK would run sparse.
        sparsity: Pooled sparsity of those layers (given, or measured).
        sparse_macs_share: Their share of the model's MACs.
        total_macs: MACs of the model for one image.
        amdahl_bound: `1 / ((1 - f) + f * (1 - s))` when it fires, else 1.0.
    """

    model: str
    eligible: bool
    fires: bool
    reasons: list
    layers: list
    sparse_layers: list
    sparsity: float
    sparse_macs_share: float
    total_macs: int
    amdahl_bound: float

    def bound_at(self, sparsity) -> float:
        """The Amdahl bound if the 1x1 convolutions were `sparsity` sparse and the path fired."""
        return amdahl_bound(self.sparse_macs_share, sparsity)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["layers"] = [dict(dataclasses.asdict(plan), in_region=plan.in_region) for plan in self.layers]
        return data

    def __str__(self) -> str:
        verdict = ("FIRES (sparse path predicted)" if self.fires else
                   "ELIGIBLE, NOT SPARSE ENOUGH YET" if self.eligible else "DOES NOT FIRE")
        lines = [f"XNNPACK sparse path for model {self.model}: {verdict}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        lines.append(f"  1x1 convolutions run sparse: {len(self.sparse_layers)}, {self.sparse_macs_share:.1%} of "
                     f"{self.total_macs / 1e6:.1f} M MACs, {self.sparsity:.1%} zeros pooled (needs > 66.7%)")
        lines.append(f"  Amdahl bound of the speedup: {self.amdahl_bound:.2f}x" + (
            f" (at 80% / 90% zeros: {self.bound_at(0.8):.2f}x / {self.bound_at(0.9):.2f}x)" if self.eligible else ""))
        for plan in self.layers:
            status = "ok" if not plan.problems else "; ".join(plan.problems)
            lines.append(f"  {plan.name:<24} {plan.type:<22} {plan.role:<12} {status}")
        return "\n".join(lines)


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _same_padding(size, kernel, stride):
    if size is None:
        return None
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _padding(graph, layer):
    """(top, bottom, left, right) padding, a preceding ZeroPadding2D included; None if unknown."""
    extra = (0, 0, 0, 0)
    for producer in graph.producers[layer]:
        if isinstance(producer, L.ZeroPadding2D):
            (top, bottom), (left, right) = producer.padding
            extra = (top, bottom, left, right)
    if layer.padding != "same":
        return extra
    height, width = graph.input_shape(layer)[1:3]
    kernel, stride = _pair(layer.kernel_size), _pair(layer.strides)
    rows, cols = _same_padding(height, kernel[0], stride[0]), _same_padding(width, kernel[1], stride[1])
    if rows is None or cols is None:
        return None
    return tuple(a + b for a, b in zip(extra, (*rows, *cols)))


def _activation_problems(layer):
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    if activation is None or name in ACTIVATIONS:
        return []
    return [f"activation {name!r} has no kernel in XNNPACK's sparse path: use relu, relu6, hard_swish or sigmoid"]


def _stem_problems(graph, layer):
    kernel, stride = _pair(layer.kernel_size), _pair(layer.strides)
    problems = []
    if kernel != (3, 3) or stride != (2, 2) or _pair(layer.dilation_rate) != (1, 1) or layer.groups != 1:
        problems.append(f"the stem must be a 3x3 stride-2 convolution without dilation or groups (is "
                        f"{kernel[0]}x{kernel[1]} stride {stride[0]})")
    channels = graph.input_shape(layer)[-1]
    if channels != 3:
        problems.append(f"the stem has {channels} input channels; XNNPACK needs 3: replicate grayscale images to 3 "
                        "channels (e.g. keras.ops.repeat(images, 3, axis=-1))")
    padding = _padding(graph, layer)
    if padding != (1, 1, 1, 1):
        problems.append(f"stem padding is {padding} (top, bottom, left, right); it must be 1 on every side: {PAD_FIX}")
    return problems + _activation_problems(layer)


def _depthwise_problems(graph, layer):
    kernel, stride = _pair(layer.kernel_size), _pair(layer.strides)
    if (kernel not in ((3, 3), (5, 5)) or stride[0] != stride[1] or stride[0] not in (1, 2)
            or _pair(layer.dilation_rate) != (1, 1)):
        return [f"depthwise must be 3x3 or 5x5 with stride 1 or 2 (is {kernel[0]}x{kernel[1]} stride {stride[0]})"]
    padding = _padding(graph, layer)
    if padding != (kernel[0] // 2,) * 4:
        kind = f"stride-{stride[0]} DepthwiseConv2D with padding='{layer.padding}'"
        fix = PAD_FIX.replace("ZeroPadding2D(1)", f"ZeroPadding2D({kernel[0] // 2})")
        return [f"{kind} pads {padding} (top, bottom, left, right), not {kernel[0] // 2} on every side: {fix}"]
    return _activation_problems(layer)


def _on_pooled_map(graph, layer) -> bool:
    """Whether `layer` takes a pooled tensor (1x1 spatial, or no spatial axes): the region has ended before it."""
    shape = graph.input_shape(layer)
    return len(shape) != 4 or tuple(shape[1:3]) == (1, 1)


def _scale_problems(graph, layer):
    """A constant scale whose MUL XNNPACK rejects: kept by the converter unless only convolutions consume it."""
    consumers = graph.consumers[layer]
    if consumers and all(isinstance(c, L.Conv2D) for c in consumers):
        return []  # the converter folds the scale into the convolution
    if isinstance(layer, L.Activation):
        return [f"hard_sigmoid's scale (1/6) on a gate: {SCALE_FIX}"]
    return [f"multiplies by a scalar constant: {SCALE_FIX}"]


def _region_role(graph, layer):
    """(role, problems) of a layer fed by the region."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return "outside", ["channels_first layers are not supported: use data_format='channels_last'"]
    if isinstance(layer, (L.SeparableConv2D, L.Conv1D, L.Conv3D, L.Conv2DTranspose)):
        return "outside", [f"{type(layer).__name__} is not supported in the region: use DepthwiseConv2D + a 1x1 Conv2D"]
    if isinstance(layer, L.DepthwiseConv2D):
        return "depthwise", _depthwise_problems(graph, layer)
    if isinstance(layer, L.Conv2D):
        kernel, stride = _pair(layer.kernel_size), _pair(layer.strides)
        if kernel == (1, 1) and stride == (1, 1) and layer.groups == 1:
            return "sparse 1x1", _activation_problems(layer)
        return "outside", [f"only 1x1 stride-1 convolutions may follow the stem (is {kernel[0]}x{kernel[1]} stride "
                           f"{stride[0]}): a full convolution inside the network breaks the region"]
    if isinstance(layer, L.ZeroPadding2D):
        if graph.consumers[layer] and all(isinstance(c, (L.Conv2D, L.DepthwiseConv2D)) for c in graph.consumers[layer]):
            return "pad", []
        return "outside", ["ZeroPadding2D not followed by a convolution cannot be fused"]
    if isinstance(layer, L.BatchNormalization):
        return "folded", []
    if isinstance(layer, PASSTHROUGH):
        return "passthrough", []
    if isinstance(layer, L.GlobalAveragePooling2D):
        height, width = graph.input_shape(layer)[1:3]
        if height == 1 and width == 1:
            return "end", ["the feature map is 1x1 at GlobalAveragePooling2D, so the converter folds the MEAN away "
                           "and the region never ends: keep at least a 2x2 map (fewer stride-2 layers or larger inputs)"]
        return "pool", []
    if isinstance(layer, L.Reshape) and _on_pooled_map(graph, layer) and tuple(layer.target_shape)[:2] == (1, 1):
        return "passthrough", []  # GlobalAveragePooling2D + Reshape((1, 1, C)): the converter keeps the MEAN's dims
    if constant_scale(layer) is not None:
        return "elementwise", _scale_problems(graph, layer)
    if isinstance(layer, (*ELEMENTWISE, *ELEMENTWISE_OPS)):
        return "elementwise", []
    if isinstance(layer, L.ReLU):
        plain = float(layer.negative_slope) == 0 and float(layer.threshold) == 0
        if plain and layer.max_value in (None, 6.0):
            return "elementwise", []
        return "elementwise", ["ReLU with a threshold, slope or max_value other than 6 is not supported: use ReLU(6)"]
    if isinstance(layer, (L.Activation, L.ELU, L.LeakyReLU)):
        problems = _activation_problems(layer)
        if not problems or not _on_pooled_map(graph, layer):  # a softmax on the pooled map is the head
            return "elementwise", problems
    if isinstance(layer, L.UpSampling2D) and layer.interpolation == "bilinear":
        return "elementwise", []
    if _on_pooled_map(graph, layer):
        return "after", []  # the classifier head: XNNPACK's region hands over to NHWC at the pooling
    return "outside", [f"{type(layer).__name__} cannot run in XNNPACK's sparse (NCHW) region: end the region with "
                       "GlobalAveragePooling2D before it"]


def _walk_region(graph, stem):
    roles = {}
    queue = list(graph.consumers[stem])
    while queue:
        layer = queue.pop(0)
        if layer.name in roles:
            continue
        roles[layer.name] = _region_role(graph, layer)
        if roles[layer.name][0] not in ("end", "outside", "after"):
            queue.extend(graph.consumers[layer])
    return roles


def _find_stem(graph):
    """(stem or None, the roles of the layers before it, problems if no stem)."""
    convs = [op for op in graph.operations if isinstance(op, L.Conv2D) and not isinstance(op, L.DepthwiseConv2D)]
    valid = [op for op in convs if not _stem_problems(graph, op)]
    if valid:
        return valid[0], []
    if not convs:
        return None, ["no Conv2D: there is no region XNNPACK could run sparse"]
    return convs[0], _stem_problems(graph, convs[0])


def _pooled_sparsity(layers) -> float:
    zeros = total = 0
    for layer in layers:
        values = np.array(layer.kernel.numpy())
        if masks.has_mask(layer.kernel):
            values = values * keras.ops.convert_to_numpy(masks.get_mask(layer.kernel))
        zeros += int(values.size - np.count_nonzero(values))
        total += int(values.size)
    return zeros / total if total else 0.0


def _check_sparsity(sparsity):
    if sparsity is not None and (isinstance(sparsity, bool) or not isinstance(sparsity, (int, float))
                                 or not 0.0 <= sparsity <= 1.0):
        raise ValueError(
            "Invalid value received for argument `sparsity`. Expected `None` (measure the 1x1 convolutions' zeros) "
            f"or a fraction in [0, 1], e.g. 0.9. Received: sparsity={sparsity!r}"
        )


def check(model, sparsity=None) -> PlanReport:
    """Plans XNNPACK's sparse path for a Keras model, layer by layer.

    Args:
        model: A functional `keras.Model`, or a Sequential one built with
            `keras.Input`.
        sparsity: The pooled sparsity of the 1x1 convolutions to judge and
            bound the speedup at, e.g. the pruning target; `None` measures
            the model's current zeros (masks included). Defaults to `None`.

    Returns:
        A `PlanReport` (print it for a per-layer table).

    Raises:
        ValueError: for a subclassed model or an invalid `sparsity`.
    """
    _check_sparsity(sparsity)
    graph = KerasGraph.of(model)
    stem, stem_problems = _find_stem(graph)
    # A stem that is only padded wrong still starts the region: list what else breaks it, so one plan shows every fix.
    walkable = stem is not None and all(problem.startswith("stem padding") for problem in stem_problems)
    roles = _walk_region(graph, stem) if walkable else {}
    if stem is not None:
        roles[stem.name] = ("stem", stem_problems)
    plans, seen_stem, ended = [], False, False
    for layer in graph.operations:
        if layer.name in roles:
            role, problems = roles[layer.name]
            seen_stem |= role == "stem"
            ended |= role in ("end", "pool")
        else:
            role, problems = ("after" if seen_stem else "before"), []
        plans.append(LayerPlan(layer.name, type(layer).__name__, role, list(problems), layer_macs(layer)))
    reasons = [f"{plan.name}: {problem}" for plan in plans for problem in plan.problems]
    if stem is None:
        reasons += stem_problems
    elif not stem_problems and not ended:
        reasons.append("the region never ends in GlobalAveragePooling2D (MEAN over the spatial axes)")
    sparse = [graph.layer(plan.name) for plan in plans if plan.role == "sparse 1x1"]
    if not sparse and stem is not None and not stem_problems:
        reasons.append("the region has no 1x1 convolution to run sparse")
    eligible = not reasons
    measured = _pooled_sparsity(sparse) if sparsity is None else float(sparsity)
    if eligible and measured <= MIN_SPARSITY:
        reasons.append(f"the 1x1 convolutions are {measured:.1%} zeros pooled; XNNPACK needs more than 2/3: prune "
                       "them further (e.g. GMP with policy='xnnpack' and target_sparsity=0.8)")
    total = sum(plan.macs for plan in plans)
    share = sum(plan.macs for plan in plans if plan.role == "sparse 1x1") / total if total and eligible else 0.0
    fires = eligible and not reasons
    return PlanReport(model.name, eligible, fires, reasons, plans, [layer.name for layer in sparse] if eligible else [],
                      measured, share, total, amdahl_bound(share, measured) if fires else 1.0)

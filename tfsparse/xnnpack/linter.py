"""`lint(path)`: will XNNPACK's sparse (NCHW) path fire for this `.tflite`?

Applies XNNPACK's rules (see `xnnpack-sparse.md` in the design docs) to the
flatbuffer, without running it:

- weights stored sparse (`DENSIFY` ops), static batch 1, float32/float16 only;
- a region that starts with a 3x3 stride-2 `CONV_2D` over 3 channels with
  exactly one pixel of padding on every side (a preceding `PAD` is fused);
- inside it only 1x1 stride-1 `CONV_2D`, 3x3/5x5 `DEPTHWISE_CONV_2D` with
  stride 1 or 2 and symmetric padding, `ADD`/`MUL` of 4D tensors, unary
  elementwise ops and `RESIZE_BILINEAR`;
- a `MUL` by a 0-D constant drops the region (observed; constants must have
  at most one non-unit dimension);
- up to a spatial `MEAN` (1x1 convolutions on the pooled map still count;
  what cannot run there is the head) or a `DEPTH_TO_SPACE`;
- over all 1x1 convolutions of the region (squeeze-and-excitation and head
  ones included), pooled, more than 2/3 zeros.

The verdict is a prediction; `tfsparse.xnnpack.observe` (on the emulated
aarch64 target) checks it by running the kernels.

Example:

>>> import os, tempfile, keras
>>> import tfsparse
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> path = os.path.join(tempfile.mkdtemp(), "m.tflite")
>>> _ = tfsparse.export(model, path, target="dense", verify=False)
>>> report = tfsparse.xnnpack.lint(path)
>>> report.fires, report.reasons[0].split(":")[0]
(False, 'no sparse-encoded weights (DENSIFY ops)')
"""

from __future__ import annotations

import dataclasses
import math

from tfsparse.xnnpack.tflite_graph import PADDING_NAMES, TfliteGraph

UNARY = {"RELU", "RELU6", "RELU_N1_TO_1", "HARD_SWISH", "LOGISTIC", "ELU", "LEAKY_RELU", "ABS", "NEG",
         "FLOOR", "CEIL", "SQUARE", "SQRT", "ROUND"}
PAD_FIX = "use ZeroPadding2D(1) + padding='valid' for stride-2 layers (symmetric padding)"


@dataclasses.dataclass
class OpVerdict:
    """What the linter concluded for one operator of the region."""

    index: int
    op: str
    role: str  # stem, sparse 1x1, depthwise, elementwise, pad, pool, end, after, outside
    problems: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class LintReport:
    """The predicted verdict with its reasons."""

    path: str
    fires: bool
    reasons: list
    ops: list
    pooled_zeros: int = 0
    pooled_params: int = 0

    @property
    def pooled_sparsity(self) -> float:
        return self.pooled_zeros / self.pooled_params if self.pooled_params else 0.0

    def to_dict(self) -> dict:
        return {"path": self.path, "fires": self.fires, "reasons": list(self.reasons),
                "pooled_1x1_sparsity": self.pooled_sparsity,
                "ops": [dataclasses.asdict(v) for v in self.ops]}

    def __str__(self) -> str:
        verdict = "FIRES (sparse path predicted)" if self.fires else "DOES NOT FIRE"
        lines = [f"XNNPACK sparse path for {self.path}: {verdict}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        if self.pooled_params:
            lines.append(f"  1x1 convolutions in the region: {self.pooled_sparsity:.1%} zeros pooled (needs > 66.7%)")
        for v in self.ops:
            status = "ok" if not v.problems else "; ".join(v.problems)
            lines.append(f"  op {v.index:>3} {v.op:<18} {v.role:<12} {status}")
        return "\n".join(lines)


def _padding(graph, op, kernel, stride):
    """(top, bottom, left, right) padding of a conv, a preceding PAD included."""
    source = op.inputs[0]
    extra = (0, 0, 0, 0)
    producer = graph.producer.get(source)
    if producer is not None and producer.name in ("PAD", "PADV2"):
        pads = graph.constant(producer.inputs[1])
        if pads is not None and pads.shape == (4, 2):
            extra = (int(pads[1, 0]), int(pads[1, 1]), int(pads[2, 0]), int(pads[2, 1]))
    height, width = graph.shape(source)[1:3]
    if PADDING_NAMES.get(op.options.padding) != "SAME":
        return extra

    def same(size, k, s):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        return total // 2, total - total // 2

    top, bottom = same(height, kernel[0], stride[0])
    left, right = same(width, kernel[1], stride[1])
    return tuple(a + b for a, b in zip(extra, (top, bottom, left, right)))


def _conv_facts(graph, op):
    weight = graph.shape(op.inputs[1])
    kernel = tuple(weight[1:3])
    stride = (op.options.strideH, op.options.strideW)
    dilation = (op.options.dilationHFactor, op.options.dilationWFactor)
    return weight, kernel, stride, dilation, _padding(graph, op, kernel, stride)


def _stem_problems(graph, op):
    weight, kernel, stride, dilation, padding = _conv_facts(graph, op)
    problems = []
    if kernel != (3, 3) or stride != (2, 2) or dilation != (1, 1):
        problems.append(f"stem must be a 3x3 stride-2 convolution without dilation (is {kernel[0]}x{kernel[1]} "
                        f"stride {stride[0]})")
    if weight[-1] != 3:
        problems.append(f"stem has {weight[-1]} input channels; XNNPACK needs 3 (replicate grayscale to 3 channels)")
    if padding != (1, 1, 1, 1):
        problems.append(f"stem padding is {padding} (top, bottom, left, right); it must be 1 on every side: {PAD_FIX}")
    return problems


def _region_problems(graph, op):
    """(role, problems) for an op consuming a region tensor."""
    if op.name == "CONV_2D":
        weight, kernel, stride, dilation, padding = _conv_facts(graph, op)
        if kernel == (1, 1) and stride == (1, 1) and padding == (0, 0, 0, 0):
            return "sparse 1x1", []
        return "conv", [f"only 1x1 stride-1 convolutions may follow the stem (is {kernel[0]}x{kernel[1]} stride "
                        f"{stride[0]}); a full convolution inside the network breaks the region"]
    if op.name == "DEPTHWISE_CONV_2D":
        weight, kernel, stride, dilation, padding = _conv_facts(graph, op)
        problems = []
        if kernel not in ((3, 3), (5, 5)) or stride[0] != stride[1] or stride[0] not in (1, 2) or dilation != (1, 1):
            problems.append(f"depthwise must be 3x3 or 5x5 with stride 1 or 2 (is {kernel[0]}x{kernel[1]} stride {stride[0]})")
        elif padding != (kernel[0] // 2,) * 4:
            problems.append(f"{'stride-2 ' if stride[0] == 2 else ''}depthwise padding is {padding} (top, bottom, left, "
                            f"right), not symmetric {kernel[0] // 2}: {PAD_FIX}")
        return "depthwise", problems
    if op.name in ("PAD", "PADV2"):
        consumers = graph.consumers.get(op.outputs[0], [])
        if consumers and all(c.name in ("CONV_2D", "DEPTHWISE_CONV_2D") for c in consumers):
            return "pad", []  # fused into the convolution
        return "pad", ["PAD not followed by a convolution cannot be fused"]
    if op.name in ("ADD", "MUL"):
        problems = []
        for t in op.inputs:
            shape, value = graph.shape(t), graph.constant(t)
            if value is not None and sum(int(d) != 1 for d in shape) > 1:
                problems.append(f"{op.name} constant operand must be a scalar or a vector along one axis "
                                f"(is {tuple(shape)})")
            elif value is not None and op.name == "MUL" and len(shape) == 0:
                problems.append("MUL by a 0-D constant (e.g. hard_sigmoid's 1/6 on a squeeze-and-excitation gate) "
                                "keeps XNNPACK off its sparse path (observed on emulated aarch64): fold the scale into "
                                "the next convolution (tfsparse.xnnpack.make_compatible does it)")
            elif value is None and len(shape) != 4:
                problems.append(f"{op.name} needs 4D tensors (is {len(shape)}D)")
        return "elementwise", problems
    if op.name in UNARY or op.name == "RESIZE_BILINEAR":
        return "elementwise", []
    if op.name == "MEAN":
        axes = graph.constant(op.inputs[1])
        if axes is not None and sorted(int(a) % 4 for a in axes.ravel()) == [1, 2]:
            return "pool", []
        return "end", ["MEAN must average over the two spatial axes"]
    if op.name == "DEPTH_TO_SPACE":
        return "end", []
    if _pooled(graph, op):
        return "after", []  # the classifier head: the region hands over to NHWC after the pooling
    return "outside", [f"{op.name} cannot run in XNNPACK's sparse (NCHW) region; the region must end with "
                       "GlobalAveragePooling2D (MEAN) before it"]


def _pooled(graph, op) -> bool:
    """Whether `op` takes a pooled tensor (1x1 spatial, or not 4D): the region has ended before it."""
    shape = tuple(graph.shape(op.inputs[0]))
    return len(shape) != 4 or shape[1:3] == (1, 1)


def _model_reasons(graph):
    reasons = []
    sparse = [op for op in graph.ops if op.name == "DENSIFY" and graph.is_sparse(op.inputs[0])]
    if not sparse:
        reasons.append("no sparse-encoded weights (DENSIFY ops): a target='dense' export stores every weight dense, "
                       "and target='xnnpack' encodes a weight sparse only where that is smaller, so prune the 1x1 "
                       "convolutions further (e.g. to 0.8-0.9) and export with target='xnnpack'")
    for t in graph.inputs:
        shape = graph.shape(t)
        if shape and shape[0] != 1:
            reasons.append(f"input batch dimension is {shape[0]} (dynamic = -1); XNNPACK needs a static batch of 1: "
                           "export with target='xnnpack'")
    quantized = sorted({op.name for op in graph.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")
                        and graph.dtype(op.inputs[0]) in ("int8", "uint8")})
    if quantized:
        reasons.append(f"quantized {', '.join(quantized)}: INT8 nodes never take the sparse path; export float32")
    return reasons


def _walk_region(graph, stem):
    verdicts, pooled = {}, [0, 0]
    sparse_encoded = False
    queue = list(stem.outputs)
    seen = set()
    while queue:
        tensor = queue.pop(0)
        for op in graph.consumers.get(tensor, []):
            if op.index in seen:
                continue
            seen.add(op.index)
            role, problems = _region_problems(graph, op)
            verdicts[op.index] = OpVerdict(op.index, op.name, role, problems)
            if role == "sparse 1x1":
                weight = graph.constant(op.inputs[1])
                if weight is not None:
                    pooled[0] += int(weight.size - (weight != 0).sum())
                    pooled[1] += int(weight.size)
                sparse_encoded |= graph.weight_is_sparse_encoded(op.inputs[1])
            if role not in ("end", "outside", "after"):
                queue.extend(op.outputs)
    return verdicts, pooled, sparse_encoded


def lint(path) -> LintReport:
    """Predicts whether XNNPACK's sparse path fires for a `.tflite` file.

    Args:
        path: A `.tflite` path, or its bytes.

    Returns:
        A `LintReport`: `fires`, model-level `reasons`, a verdict per
        operator of the region, and the pooled sparsity of its 1x1 convs.

    Raises:
        ValueError: if the file is missing, not a flatbuffer or truncated.
    """
    graph = TfliteGraph.load(path)
    where = path if isinstance(path, str) else "<bytes>"
    reasons = _model_reasons(graph)
    candidates = [op for op in graph.ops if op.name == "CONV_2D"]
    stems = [op for op in candidates if not _stem_problems(graph, op)]
    if not candidates:
        return LintReport(where, False, reasons + ["no convolution: there is no region XNNPACK could run sparse"], [])
    if not stems:
        first = candidates[0]
        problems = _stem_problems(graph, first)
        return LintReport(where, False, reasons + ["no valid stem: " + "; ".join(problems)],
                          [OpVerdict(first.index, first.name, "stem", problems)])
    stem = stems[0]
    verdicts, (zeros, params), encoded = _walk_region(graph, stem)
    ops = [OpVerdict(stem.index, stem.name, "stem")] + [verdicts[i] for i in sorted(verdicts)]
    broken = [f"op {v.index} {v.op}: {p}" for v in ops for p in v.problems]
    reasons += broken
    if not any(v.role in ("end", "pool") and not v.problems for v in ops):
        reasons.append("the region never ends in a spatial MEAN (GlobalAveragePooling2D) or DEPTH_TO_SPACE")
    if not params:
        reasons.append("the region has no 1x1 convolution to run sparse")
    elif zeros * 3 <= params * 2:
        reasons.append(f"1x1 convolutions are {zeros / params:.1%} zeros pooled; XNNPACK needs more than 2/3: "
                       "prune them further (e.g. GMP to 0.8 with policy on the 1x1 layers)")
    elif not encoded and not any("no sparse-encoded" in r for r in reasons):
        reasons.append("the 1x1 weights are not sparse-encoded: export with target='xnnpack'")
    return LintReport(where, not reasons, reasons, ops, zeros, params)

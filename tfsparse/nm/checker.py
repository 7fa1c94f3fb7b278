"""`check(path)`: does a `.keras` or `.tflite` model hold the N:M pattern?

Every weight with a reduction axis is cut into blocks of M consecutive input
channels (see `tfsparse.nm.axes`); a block with more than N non-zeros is a
violation. In a `.keras` file these are the prunable kernels (Dense, Conv,
Conv transpose, SeparableConv pointwise, EinsumDense, RNN cells); in a
`.tflite` file the constant weights of `FULLY_CONNECTED`, `CONV_2D`,
`TRANSPOSE_CONV` (input channels innermost) and `CONV_3D` (input channels
second to last) in the main subgraph, decoded when sparse-encoded, float16 or
int8. Depthwise kernels and embeddings are listed as skipped. A reduction
axis that is not a multiple of M is checked zero-padded (its last block may
hold at most N non-zeros).

TFLite and XNNPACK on CPU do not run N:M faster: the check is for
accelerators with 2:4 support (e.g. sparse tensor cores).

Example:

>>> import keras, numpy as np
>>> from tfsparse.nm import check
>>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, name="fc")], name="net")
>>> report = check(model, n=2, m=4)
>>> report.ok, [(t.name, t.violating, t.blocks) for t in report.violations]
(False, [('net/fc/kernel', 4, 4)])
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from tfsparse.nm.axes import reduction_axis
from tfsparse.nm.pattern import check_nm, violations

#: TFLite op -> weight input index and the reduction axis of its layout.
TFLITE_WEIGHTS = {"FULLY_CONNECTED": (1, -1), "CONV_2D": (1, -1), "TRANSPOSE_CONV": (1, -1), "CONV_3D": (1, -2)}
NOT_ACCELERATED = ("TFLite and XNNPACK on CPU do not accelerate N:M sparsity; it pays off only on "
                   "accelerators with N:M (2:4) support.")


@dataclasses.dataclass(frozen=True)
class TensorCheck:
    """The verdict for one weight.

    Attributes:
        name: The weight path (`.keras`) or tensor name (`.tflite`).
        op: `"CONV_2D #3"` (op name and index) for a `.tflite`, else `None`.
        shape: The weight's shape in its file's layout.
        axis: The axis blocks run along.
        blocks: Blocks checked (the axis zero-padded to a multiple of M).
        violating: Blocks with more than N non-zeros.
    """

    name: str
    op: str | None
    shape: tuple
    axis: int
    blocks: int
    violating: int

    @property
    def ok(self) -> bool:
        return self.violating == 0


@dataclasses.dataclass(frozen=True)
class NMReport:
    """The N:M verdict of a model.

    Attributes:
        path: The file checked, or the model's name.
        n: Non-zeros allowed per block.
        m: Block size.
        tensors: A `TensorCheck` per checked weight.
        skipped: `(name, reason)` for weights without a reduction axis.
    """

    path: str
    n: int
    m: int
    tensors: tuple
    skipped: tuple = ()

    @property
    def ok(self) -> bool:
        """Whether every checked weight holds the pattern."""
        return all(t.ok for t in self.tensors)

    @property
    def violations(self) -> list:
        """The `TensorCheck`s that break the pattern."""
        return [t for t in self.tensors if not t.ok]

    def to_dict(self) -> dict:
        """A JSON-serializable dict."""
        return {
            "path": self.path, "nm": f"{self.n}:{self.m}", "ok": self.ok,
            "violations": [t.name for t in self.violations],
            "tensors": [{**dataclasses.asdict(t), "shape": list(t.shape), "ok": t.ok} for t in self.tensors],
            "skipped": [{"name": name, "reason": reason} for name, reason in self.skipped],
            "note": NOT_ACCELERATED,
        }

    def __str__(self) -> str:
        nm = f"{self.n}:{self.m}"
        if not self.tensors:
            verdict = "NOTHING TO CHECK (no weight with a reduction axis)"
        elif self.ok:
            verdict = f"OK: all {len(self.tensors)} weights are {nm}"
        else:
            verdict = f"VIOLATED: {len(self.violations)} of {len(self.tensors)} weights are not {nm}"
        lines = [f"N:M {nm} check of {self.path}: {verdict}"]
        rows = [(t.name + (f" ({t.op})" if t.op else ""), "x".join(map(str, t.shape)), str(t.axis),
                 f"{t.violating}/{t.blocks}", "ok" if t.ok else "VIOLATES") for t in self.tensors]
        if rows:
            header = ("weight", "shape", "axis", "bad blocks", "verdict")
            widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
            lines += ["  " + "  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)).rstrip()
                      for row in [header, *rows]]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.skipped]
        lines.append(f"Note: {NOT_ACCELERATED}")
        return "\n".join(lines)


def _check_keras(model, n, m, path):
    from tfsparse.prunable import prunable_weights

    tensors, skipped = [], []
    for weight in prunable_weights(model):
        axis = reduction_axis(weight.layer, weight.variable)
        if axis is None:
            skipped.append((weight.path, "no reduction axis (depthwise, embedding or unknown layer)"))
            continue
        value = keras.ops.convert_to_numpy(weight.variable.value)
        bad, blocks = violations(value, n, m, axis)
        tensors.append(TensorCheck(weight.path, None, tuple(value.shape), axis, blocks, bad))
    return NMReport(path, n, m, tuple(tensors), tuple(skipped))


def _check_tflite(path, n, m):
    from tfsparse.xnnpack.tflite_graph import TfliteGraph

    graph = TfliteGraph.load(path)
    tensors, skipped, seen = [], [], set()
    for op in graph.ops:
        if op.name == "DEPTHWISE_CONV_2D" and len(op.inputs) > 1:
            skipped.append((_tensor_name(graph, op.inputs[1]), f"{op.name} #{op.index} has no reduction axis"))
        if op.name not in TFLITE_WEIGHTS or len(op.inputs) <= TFLITE_WEIGHTS[op.name][0]:
            continue
        index, axis = TFLITE_WEIGHTS[op.name]
        tensor = op.inputs[index]
        if tensor < 0 or tensor in seen:
            continue
        seen.add(tensor)
        value = graph.constant(tensor)
        if value is None:
            skipped.append((_tensor_name(graph, tensor), f"{op.name} #{op.index} weights are not constant"))
            continue
        value = np.asarray(value)
        axis %= value.ndim
        bad, blocks = violations(value, n, m, axis)
        tensors.append(TensorCheck(_tensor_name(graph, tensor), f"{op.name} #{op.index}", tuple(value.shape),
                                   axis, blocks, bad))
    return NMReport(path, n, m, tuple(tensors), tuple(skipped))


def _tensor_name(graph, tensor):
    name = graph.tensors[tensor].name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def check(source, *, n=2, m=4) -> NMReport:
    """Checks a model for the N:M pattern.

    Args:
        source: A `.keras` or `.tflite` path, or a built Keras model.
        n: Non-zeros allowed per block. Defaults to `2`.
        m: Block size. Defaults to `4`.

    Returns:
        An `NMReport`: `ok`, `violations` (the weights that break the
        pattern), per-weight counts; `str()` is a table, `to_dict()` JSON.

    Raises:
        ValueError: for bad `n`/`m`, a missing or unreadable file, or a path
            that is neither `.keras` nor `.tflite`.
    """
    n, m = check_nm(n, m)
    if isinstance(source, keras.layers.Layer):
        return _check_keras(source, n, m, source.name)
    path = os.fspath(source)
    if path.endswith(".tflite"):
        return _check_tflite(path, n, m)
    if path.endswith(".keras"):
        from tfsparse.model_source import load_keras_file

        return _check_keras(load_keras_file(path, compile=False), n, m, path)
    raise ValueError(
        "Invalid value received for argument `source`. Expected a `.keras` or `.tflite` "
        f"file or a Keras model. Received: source={source!r}"
    )

"""`inspect_tflite(path)`: what a `.tflite` file holds (ops, tensors, sparsity).

Reads the flatbuffer with the `tflite` package (generated from the TFLite
schema), so it needs neither TensorFlow nor an interpreter. Sparse-encoded
tensors are the constant weights stored in TFLite's compressed format (the
`DENSIFY` ops expand them at load time); their `bytes` count the non-zero
values plus the index arrays.

Example:

>>> import os, pathlib, tempfile, keras
>>> from tfsparse.deploy import TfliteSummary, export
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
>>> _ = export(model, path, target="dense", verify=False)
>>> summary = TfliteSummary.from_bytes(pathlib.Path(path).read_bytes())
>>> summary.op_counts
{'FULLY_CONNECTED': 1}
>>> summary.sparse_tensors
()
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

_TYPE_NAMES = {v: k.lower() for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_INDEX_ITEMSIZE = {
    tflite.SparseIndexVector.Int32Vector: (tflite.Int32Vector, 4),
    tflite.SparseIndexVector.Uint16Vector: (tflite.Uint16Vector, 2),
    tflite.SparseIndexVector.Uint8Vector: (tflite.Uint8Vector, 1),
}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a `.tflite` file.

    Attributes:
        name: The tensor name.
        shape: The shape, with -1 for dynamic dimensions.
        dtype: The element type name (`float32`, `int8`, ...).
        sparse: Whether the tensor is stored sparse-encoded.
        bytes: Bytes of constant data (values plus sparse index arrays);
            0 for activations and inputs.
        subgraph: The index of the subgraph holding the tensor.
    """

    name: str
    shape: tuple
    dtype: str
    sparse: bool
    bytes: int
    subgraph: int = 0


@dataclasses.dataclass(frozen=True)
class TfliteSummary:
    """The contents of a `.tflite` file.

    Attributes:
        path: The file inspected (`None` for in-memory content).
        size_bytes: The total file size.
        operators: `(op_name, count)` pairs in order of first appearance.
        tensors: Every tensor, as `TensorInfo`.
        inputs: The main subgraph's input tensors.
        outputs: The main subgraph's output tensors.
    """

    path: str | None
    size_bytes: int
    operators: tuple
    tensors: tuple
    inputs: tuple
    outputs: tuple

    @classmethod
    def from_bytes(cls, content, *, path=None, argument="path"):
        """Summarizes `.tflite` `content` (bytes); `path` is only recorded, `argument` names it in errors.

        Raises:
            ValueError: if `content` is not a complete TFLite flatbuffer
                (no `TFL3` identifier, truncated or corrupt).
        """
        content = bytes(content)
        where = "<bytes>" if path is None else os.fspath(path)
        try:
            if len(content) < 8 or content[4:8] != b"TFL3":
                raise ValueError("no 'TFL3' file identifier")
            return cls._parse(content, path)
        except Exception as error:  # flatbuffers reads past the end of a truncated file as struct.error etc.
            raise ValueError(
                f"Invalid value received for argument `{argument}`. Expected a TFLite flatbuffer; "
                f"{where} is not a valid .tflite flatbuffer (truncated or corrupt?): {error}. "
                f"Re-export it with `tfsparse export`. Received: {argument}={where}"
            ) from error

    @classmethod
    def _parse(cls, content, path):
        model = tflite.Model.GetRootAsModel(content, 0)
        if not model.SubgraphsLength():
            raise ValueError("it has no subgraph")
        for b in range(model.BuffersLength()):  # constant data must lie inside the file
            buffer = model.Buffers(b)
            end = buffer.Offset() + buffer.Size() if buffer.Offset() > 1 else None
            if end is not None and end > len(content):
                raise ValueError(f"buffer {b} ends at byte {end}, past the end of the file ({len(content)} bytes)")
            if end is None and buffer.DataLength():
                buffer.DataAsNumpy()  # raises if the data runs past the end
        counts: dict = {}
        tensors, inputs, outputs = [], [], []
        for g in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(g)
            for i in range(subgraph.OperatorsLength()):
                name = _op_name(model.OperatorCodes(subgraph.Operators(i).OpcodeIndex()))
                counts[name] = counts.get(name, 0) + 1
            graph_tensors = [_tensor_info(model, subgraph.Tensors(t), g) for t in range(subgraph.TensorsLength())]
            tensors.extend(graph_tensors)
            if g == 0:
                inputs = [graph_tensors[int(t)] for t in subgraph.InputsAsNumpy()] if subgraph.InputsLength() else []
                outputs = [graph_tensors[int(t)] for t in subgraph.OutputsAsNumpy()] if subgraph.OutputsLength() else []
        return cls(
            path=None if path is None else os.fspath(path),
            size_bytes=len(content),
            operators=tuple(counts.items()),
            tensors=tuple(tensors),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
        )

    @property
    def op_counts(self) -> dict:
        """`{op_name: count}`, e.g. `{"DENSIFY": 2, "FULLY_CONNECTED": 2}`."""
        return dict(self.operators)

    @property
    def sparse_tensors(self) -> tuple:
        """Names of the sparse-encoded tensors."""
        return tuple(t.name for t in self.tensors if t.sparse)

    @property
    def constant_bytes(self) -> int:
        """Bytes of all constant tensor data (weights)."""
        return sum(t.bytes for t in self.tensors)

    def to_dict(self) -> dict:
        """A JSON-serializable dict of the summary."""
        tensor = lambda t: {**dataclasses.asdict(t), "shape": list(t.shape)}  # noqa: E731
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "operators": dict(self.operators),
            "sparse_tensors": list(self.sparse_tensors),
            "inputs": [tensor(t) for t in self.inputs],
            "outputs": [tensor(t) for t in self.outputs],
            "tensors": [tensor(t) for t in self.tensors],
        }

    def __str__(self) -> str:
        lines = [f"{self.path or '<in-memory model>'}: {self.size_bytes:,} bytes"]
        lines.append("operators: " + ", ".join(f"{name} x{count}" for name, count in self.operators))
        for label, group in (("inputs", self.inputs), ("outputs", self.outputs)):
            lines.append(f"{label}: " + ", ".join(f"{t.name} {_shape(t.shape)} {t.dtype}" for t in group))
        weights = [t for t in self.tensors if t.bytes]
        if weights:
            rows = [(t.name, _shape(t.shape), t.dtype, "sparse" if t.sparse else "dense", f"{t.bytes:,}")
                    for t in weights]
            header = ("constant tensor", "shape", "dtype", "encoding", "bytes")
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
            for row in [header, *rows]:
                lines.append("  ".join(cell.ljust(w) if i < 4 else cell.rjust(w)
                                       for i, (cell, w) in enumerate(zip(row, widths))))
        lines.append(f"sparse-encoded tensors: {len(self.sparse_tensors)} of {len(weights)} constant tensors")
        return "\n".join(lines)


def inspect_tflite(path, *, argument="path"):
    """Summarizes the `.tflite` file at `path`.

    Args:
        path: A `.tflite` file (str or path-like).
        argument: The name errors give `path`. Defaults to `"path"`.

    Returns:
        A `TfliteSummary`: operators with counts (`DENSIFY` included),
        tensors with their encoding and size, inputs and outputs.

    Raises:
        ValueError: if `path` does not exist or is not a complete TFLite
            flatbuffer (e.g. truncated).

    Example:

    >>> import os, tempfile, keras
    >>> from tfsparse.deploy import export, inspect_tflite
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
    >>> _ = export(model, path, target="sparse")
    >>> [t.shape for t in inspect_tflite(path).inputs]  # -1: the dynamic batch
    [(-1, 4)]
    """
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        why = ("" if not isinstance(path, (str, os.PathLike)) else
               f" {os.fspath(path)} is a directory." if os.path.isdir(path) else f" {os.fspath(path)} does not exist.")
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Expected an existing "
            f"`.tflite` file;{why} Check the path. Received: {argument}={path!r}"
        )
    with open(path, "rb") as f:
        return TfliteSummary.from_bytes(f.read(), path=path, argument=argument)


def _op_name(opcode) -> str:
    code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
    if code == tflite.BuiltinOperator.CUSTOM:
        return "CUSTOM:" + (opcode.CustomCode() or b"?").decode("utf-8", "replace")
    return BUILTIN_OPCODE2NAME.get(code, f"BUILTIN_{code}")


def _tensor_info(model, tensor, subgraph) -> TensorInfo:
    shape = tensor.ShapeSignatureAsNumpy() if tensor.ShapeSignatureLength() else tensor.ShapeAsNumpy()
    shape = tuple(int(d) for d in shape) if isinstance(shape, np.ndarray) else ()
    buffer = model.Buffers(tensor.Buffer())
    size = buffer.Size() if buffer.Offset() > 1 else buffer.DataLength()
    sparsity = tensor.Sparsity()
    if sparsity is not None:
        size += _index_bytes(sparsity)
    return TensorInfo(
        name=(tensor.Name() or b"").decode("utf-8", "replace"),
        shape=shape,
        dtype=_TYPE_NAMES.get(tensor.Type(), f"type_{tensor.Type()}"),
        sparse=sparsity is not None,
        bytes=int(size),
        subgraph=subgraph,
    )


def _index_bytes(sparsity) -> int:
    total = 0
    for d in range(sparsity.DimMetadataLength()):
        dim = sparsity.DimMetadata(d)
        for kind, table in ((dim.ArraySegmentsType(), dim.ArraySegments()),
                            (dim.ArrayIndicesType(), dim.ArrayIndices())):
            if table is None or kind not in _INDEX_ITEMSIZE:
                continue
            vector_cls, itemsize = _INDEX_ITEMSIZE[kind]
            vector = vector_cls()
            vector.Init(table.Bytes, table.Pos)
            total += vector.ValuesLength() * itemsize
    return total


def _shape(shape) -> str:
    return "[" + ",".join("?" if d < 0 else str(d) for d in shape) + "]"

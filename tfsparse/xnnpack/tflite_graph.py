"""A read-only view of a `.tflite` graph for the XNNPACK linter.

Parses the flatbuffer with TensorFlow's generated schema bindings (object API)
and exposes what the rules need: operators with their options, tensor shapes
and types, constant values (sparse-encoded weights decoded), producers and
consumers.

Example:

>>> import os, tempfile, keras
>>> import tfsparse
>>> from tfsparse.xnnpack.tflite_graph import TfliteGraph
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> path = os.path.join(tempfile.mkdtemp(), "m.tflite")
>>> _ = tfsparse.export(model, path, target="dense", verify=False)
>>> [(op.name, op.version) for op in TfliteGraph.load(path).ops]
[('FULLY_CONNECTED', 1)]
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from tensorflow.lite.python import schema_py_generated as fb

from tfsparse.deploy.sparse_format import DTYPES, decode_sparse

OP_NAMES = {value: name for name, value in vars(fb.BuiltinOperator).items() if not name.startswith("_")}
TYPE_NAMES = {value: name.lower() for name, value in vars(fb.TensorType).items() if not name.startswith("_")}
PADDING_NAMES = {fb.Padding.SAME: "SAME", fb.Padding.VALID: "VALID"}


@dataclasses.dataclass
class Op:
    """One operator: index, builtin name, tensor indices, options and the version of its operator code.

    The version belongs to the operator code, which every operator of the
    same builtin in the file shares (so one block-sparse `FULLY_CONNECTED`
    raises all of them to version 8).
    """

    index: int
    name: str
    inputs: list
    outputs: list
    options: object
    version: int = 1


class TfliteGraph:
    """The main subgraph of a `.tflite` model."""

    def __init__(self, model):
        self.model = model
        self.subgraph = model.subgraphs[0]
        self.tensors = self.subgraph.tensors
        self.ops = []
        for index, op in enumerate(self.subgraph.operators):
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            self.ops.append(Op(index, OP_NAMES.get(builtin, f"CUSTOM_{builtin}"), list(op.inputs),
                               list(op.outputs), op.builtinOptions, int(code.version or 1)))
        self.producer = {t: op for op in self.ops for t in op.outputs}
        self.consumers = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    self.consumers.setdefault(t, []).append(op)

    @classmethod
    def load(cls, path_or_bytes):
        """Parses a path or the file's bytes; clear errors for bad files."""
        if isinstance(path_or_bytes, (bytes, bytearray)):
            content, where = bytes(path_or_bytes), "<bytes>"
        else:
            where = os.fspath(path_or_bytes)
            if not os.path.isfile(where):
                raise ValueError(
                    "Invalid value received for argument `path`. The file does not "
                    f"exist; check the path. Received: path={where}"
                )
            with open(where, "rb") as handle:
                content = handle.read()
        try:
            if len(content) < 8 or content[4:8] != b"TFL3":
                raise ValueError("missing the TFL3 file identifier")
            model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(content, 0))
            if not model.subgraphs:
                raise ValueError("no subgraph")
        except Exception as error:
            raise ValueError(
                "Invalid value received for argument `path`. Expected a TFLite "
                f"flatbuffer, but it cannot be parsed ({error}); the file is not a "
                f".tflite or is truncated. Received: path={where}"
            ) from error
        return cls(model)

    def shape(self, tensor) -> tuple:
        """The static shape of a tensor index (dynamic dims from shapeSignature as -1)."""
        t = self.tensors[tensor]
        signature = t.shapeSignature if t.shapeSignature is not None else t.shape
        return tuple(int(d) for d in (signature if signature is not None else ()))

    def dtype(self, tensor) -> str:
        return TYPE_NAMES.get(self.tensors[tensor].type, "unknown")

    def is_sparse(self, tensor) -> bool:
        return self.tensors[tensor].sparsity is not None

    def constant(self, tensor):
        """The value of a constant tensor (through DENSIFY/DEQUANTIZE), or `None`."""
        op = self.producer.get(tensor)
        if op is not None and op.name in ("DENSIFY", "DEQUANTIZE"):
            return self.constant(op.inputs[0])
        if op is not None:
            return None
        t = self.tensors[tensor]
        data = self.model.buffers[t.buffer].data if t.buffer < len(self.model.buffers) else None
        if t.sparsity is not None:  # an all-zero sparse weight stores no values: its buffer is empty
            return decode_sparse(t, np.asarray(data if data is not None else [], dtype=np.uint8))
        if data is None or len(data) == 0:
            return None
        data = np.asarray(data, dtype=np.uint8)
        return np.frombuffer(data.tobytes(), dtype=DTYPES[t.type]).reshape(self.shape(tensor))

    def weight_is_sparse_encoded(self, tensor) -> bool:
        """Whether a weight reaches its op through a DENSIFY of a sparse tensor."""
        op = self.producer.get(tensor)
        return op is not None and op.name == "DENSIFY" and self.is_sparse(op.inputs[0])

    @property
    def inputs(self):
        return list(self.subgraph.inputs)

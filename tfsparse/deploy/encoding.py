"""Sparse tensor encoding in `.tflite` files: keep it only where it is smaller.

With `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` the converter stores a constant
weight sparse (values of the non-zeros plus compressed-sparse-row index
arrays, expanded at load time by a `DENSIFY` op) whenever at least 30% of it
is zero, whatever the element type. That is not always smaller: int8 values
with uint16 indices cost 3 bytes per non-zero against 1 byte per element
dense, so below about 67% zeros the "compressed" tensor is larger.

`densify_where_not_smaller(content)` rewrites a converted model tensor by
tensor: a sparse tensor whose encoding (values, index arrays and metadata)
is not smaller than its dense data is decoded, stored dense, and its
`DENSIFY` op is removed (consumers read the constant directly). The values
are bit-identical, so the model computes exactly the same function. The
rewrite uses TensorFlow's generated flatbuffer object API
(`tensorflow.lite.python.schema_py_generated`), the same one as TensorFlow's
`flatbuffer_utils`, with constant buffers kept 16-byte aligned as the
converter writes them.

Example:

>>> import tempfile, keras, numpy as np, tensorflow as tf
>>> from tfsparse.deploy import encoding
>>> model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(8)])
>>> kernel = model.layers[0].kernel
>>> _ = kernel.assign(kernel * (np.random.default_rng(0).random((300, 8)) > 1 / 3))  # 1/3 zeros
>>> model.export(saved := tempfile.mkdtemp(), format="tf_saved_model", verbose=False)
>>> converter = tf.lite.TFLiteConverter.from_saved_model(saved)
>>> converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
>>> content, densified = encoding.densify_where_not_smaller(converter.convert())
>>> len(densified)  # float32 + uint16 index = 6 bytes per non-zero: not smaller
1
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from absl import logging
from tensorflow.lite.python import schema_py_generated as fb

from tfsparse.deploy.sparse_format import DTYPES, bookkeeping_bytes, decode_sparse, sparse_tensor_bytes

_FILE_IDENTIFIER = b"TFL3"
_NOT_SMALLER = "not smaller"
_BUFFER_ALIGNMENT = 16


def densify_where_not_smaller(content, *, keep_block_sparse_fc=False):
    """Stores dense every sparse tensor whose sparse encoding is not smaller.

    A sparse tensor stays sparse only when its values, index arrays and
    bookkeeping take fewer bytes than its dense data. The bookkeeping
    estimate (`sparse_format.bookkeeping_bytes`) covers the sparsity metadata
    tables and, when a `DENSIFY` op expands the tensor, that op and its
    second tensor (240-300 bytes measured on TF 2.21 files, depending on
    names and alignment), so a tensor within a few tens of bytes of
    break-even may go either way. Re-packing the flatbuffer costs 20-60
    bytes, so a rewrite made only for size that does not shrink the file is
    dropped and `content` is returned unchanged. Independently of size, an
    int8 weight that a `DENSIFY` op feeds to `FULLY_CONNECTED` is stored
    dense: LiteRT 2.3's XNNPACK delegate fails to prepare that pattern
    ("failed to delegate FULLY_CONNECTED node"), while TF 2.21's interpreter
    and the built-in kernels run it (measured).

    A weight that `FULLY_CONNECTED` reads sparse itself (block-sparse, no
    `DENSIFY`: the converter then gives the file's `FULLY_CONNECTED`
    operator code version 8) is a special case. Stored dense, it would leave
    the op at version 8, which XNNPACK refuses for every `FULLY_CONNECTED`
    of the file, without the block-sparse kernel either. So such weights are
    stored dense only when that is smaller *and* leaves another
    `FULLY_CONNECTED` weight block-sparse or no sparse tensor at all (then
    `tfsparse.deploy.export` writes the converter's dense file, version 1);
    otherwise every one of them stays sparse, at the cost of at most their
    bookkeeping (about 100 bytes each). With `keep_block_sparse_fc=True`
    (targets `sparse-fc` and `sparse-fc-int8`, whose point is that kernel)
    they always stay sparse.

    Args:
        content: A `.tflite` model as bytes.
        keep_block_sparse_fc: Never store dense a weight that
            `FULLY_CONNECTED` reads sparse. Defaults to `False`.

    Returns:
        `(content, densified)`: the rewritten model (the input object itself
        when nothing changed) and `{tensor_name: reason}` for the tensors
        stored dense.
    """
    rewritten, densified, fc_left = _densify(content, keep_block_sparse_fc=keep_block_sparse_fc)
    if fc_left is not None and not fc_left["sparse"] and fc_left["densified"] and fc_left["others"]:
        logging.info("tfsparse: keeping the block-sparse FULLY_CONNECTED weights sparse: stored dense, they would "
                     "leave FULLY_CONNECTED at version 8 (no XNNPACK) without the block-sparse kernel")
        rewritten, densified, _ = _densify(content, keep_block_sparse_fc=True)
    return rewritten, densified


def _densify(content, *, keep_block_sparse_fc):
    """`(content, densified, fc)`: the rewrite, and `fc` (None if nothing changed) counting what it left:
    `sparse` FULLY_CONNECTED weights still read sparse, `densified` ones stored dense, `others` sparse tensors."""
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(content, 0))
    if any((b.offset or 0) > 1 for b in model.buffers or []):
        logging.warning("tfsparse: model uses external buffers (>2 GB); sparse encoding left as converted.")
        return content, {}, None
    references = _buffer_references(model)
    densified = {}
    fc = {"sparse": 0, "densified": 0, "others": 0}
    for g, subgraph in enumerate(model.subgraphs):
        replaced = {}
        producers = {int(op.inputs[0]): op for op in subgraph.operators or []
                     if _op_code(model, op) == fb.BuiltinOperator.DENSIFY}
        fc_weights = _sparse_fc_weights(model, subgraph)
        for index, tensor in enumerate(subgraph.tensors or []):
            if tensor.sparsity is None or tensor.type not in DTYPES or model.buffers[tensor.buffer].data is None:
                continue
            densify_op = producers.get(index)
            reason = _dense_reason(model, subgraph, tensor, densify_op)
            if index in fc_weights and (reason is None or keep_block_sparse_fc):
                fc["sparse"] += 1
                continue
            if reason is None:
                fc["others"] += 1
                continue
            if index in fc_weights:
                fc["densified"] += 1
            logging.info("tfsparse: storing %s dense: %s", tensor.name.decode("utf-8", "replace"), reason)
            _store_dense(model, subgraph, tensor, densify_op, references)
            if densify_op is not None:
                replaced[int(densify_op.outputs[0])] = index
            densified[tensor.name.decode("utf-8", "replace")] = reason
        if replaced:
            subgraph.operators = [op for op in subgraph.operators
                                  if not (op.outputs is not None and len(op.outputs) and int(op.outputs[0]) in replaced
                                          and _op_code(model, op) == fb.BuiltinOperator.DENSIFY)]
            _drop_tensors(model, g, subgraph, replaced)
    if not densified:
        return content, {}, None
    _drop_unused_opcodes(model)
    rewritten = _pack(model)
    if len(rewritten) >= len(content) and all(r.startswith(_NOT_SMALLER) for r in densified.values()):
        logging.info("tfsparse: the dense re-encoding would not shrink the file; keeping it as converted")
        return content, {}, None
    return rewritten, densified, fc


def _sparse_fc_weights(model, subgraph) -> set:
    """Indices of the sparse tensors that a FULLY_CONNECTED reads directly as its weight (no DENSIFY)."""
    tensors = subgraph.tensors or []
    return {int(op.inputs[1]) for op in subgraph.operators or []
            if _op_code(model, op) == fb.BuiltinOperator.FULLY_CONNECTED and op.inputs is not None
            and len(op.inputs) > 1 and 0 <= int(op.inputs[1]) < len(tensors)
            and tensors[int(op.inputs[1])].sparsity is not None}


def _op_code(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _dense_reason(model, subgraph, tensor, densify_op):
    """Why `tensor` should be stored dense, or `None` to keep it sparse."""
    data = model.buffers[tensor.buffer].data
    dense_bytes = int(np.prod(tensor.shape)) * np.dtype(DTYPES[tensor.type]).itemsize
    sparse_bytes = sparse_tensor_bytes(tensor, np.zeros(0, np.uint8) if data is None else data)
    sparse_bytes += bookkeeping_bytes(tensor, densify=densify_op is not None)
    if sparse_bytes >= dense_bytes:
        return f"{_NOT_SMALLER}: sparse {sparse_bytes} bytes >= dense {dense_bytes} bytes"
    if densify_op is not None and tensor.type == fb.TensorType.INT8:
        output = int(densify_op.outputs[0])
        for op in subgraph.operators:
            if _op_code(model, op) == fb.BuiltinOperator.FULLY_CONNECTED and output in [int(i) for i in op.inputs]:
                return "int8 FULLY_CONNECTED weight: LiteRT's XNNPACK delegate fails on it behind DENSIFY"
    return None


def _store_dense(model, subgraph, tensor, densify_op, references) -> None:
    data = model.buffers[tensor.buffer].data
    dense = np.frombuffer(decode_sparse(tensor, np.zeros(0, np.uint8) if data is None else data).tobytes(),
                          dtype=np.uint8)
    if references.get(tensor.buffer, 0) > 1:  # shared buffer: give this tensor its own
        references[tensor.buffer] -= 1
        model.buffers.append(fb.BufferT())
        tensor.buffer = len(model.buffers) - 1
        references[tensor.buffer] = 1
    model.buffers[tensor.buffer].data = dense
    if densify_op is not None and tensor.quantization is None:
        tensor.quantization = subgraph.tensors[int(densify_op.outputs[0])].quantization
    tensor.sparsity = None


def _buffer_references(model) -> dict:
    counts: dict = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors or []:
            counts[tensor.buffer] = counts.get(tensor.buffer, 0) + 1
    return counts


def _drop_tensors(model, g, subgraph, replaced) -> None:
    """Points every use of a replaced tensor at its source and deletes it."""
    dropped = sorted(replaced)
    new_index = {}
    for old in range(len(subgraph.tensors)):
        if old not in replaced:
            new_index[old] = old - int(np.searchsorted(dropped, old))

    def remap(indices):
        if indices is None:
            return None
        return [-1 if int(i) < 0 else new_index[replaced.get(int(i), int(i))] for i in indices]

    for op in subgraph.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        op.intermediates = remap(op.intermediates)
    subgraph.inputs, subgraph.outputs = remap(subgraph.inputs), remap(subgraph.outputs)
    subgraph.tensors = [t for i, t in enumerate(subgraph.tensors) if i not in replaced]
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == g:
            for item in [*(signature.inputs or []), *(signature.outputs or [])]:
                item.tensorIndex = new_index[replaced.get(item.tensorIndex, item.tensorIndex)]


def _drop_unused_opcodes(model) -> None:
    used = sorted({op.opcodeIndex for s in model.subgraphs for op in s.operators or []})
    if len(used) == len(model.operatorCodes):
        return
    new_index = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            op.opcodeIndex = new_index[op.opcodeIndex]


class _AlignedBufferT(fb.BufferT):
    """A `BufferT` whose data is written 16-byte aligned, as TFLite expects."""

    def Pack(self, builder):
        data = None
        if self.data is not None and len(self.data):
            payload = np.asarray(self.data, np.uint8).tobytes()
            builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            data = builder.EndVector()
        fb.BufferStart(builder)
        if data is not None:
            fb.BufferAddData(builder, data)
        if self.offset:
            fb.BufferAddOffset(builder, self.offset)
        if self.size:
            fb.BufferAddSize(builder, self.size)
        return fb.BufferEnd(builder)


def _pack(model) -> bytes:
    for i, buffer in enumerate(model.buffers):
        aligned = _AlignedBufferT()
        aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
        model.buffers[i] = aligned
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())

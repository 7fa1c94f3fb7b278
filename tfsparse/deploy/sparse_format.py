"""The TFLite sparse tensor format: sizes and decoding.

A sparse-encoded constant tensor (TFLite schema `SparsityParameters`) stores
the values of its non-zeros (or of its non-zero blocks) in its buffer, and
per dimension either a dense size or compressed-sparse-row arrays
(`array_segments`, `array_indices`; uint8, uint16 or int32), visited in
`traversal_order`, with `block_map` for block-sparse layouts. TFLite's
converter keeps every dimension dense except the innermost (CSR), with 1x4
blocks for some `FULLY_CONNECTED` weights.

Example:

>>> import numpy as np
>>> from tensorflow.lite.python import schema_py_generated as fb
>>> from tfsparse.deploy import sparse_format
>>> tensor = fb.TensorT()
>>> tensor.type, tensor.shape, tensor.sparsity = fb.TensorType.FLOAT32, [2, 3], fb.SparsityParametersT()
>>> rows, cols = fb.DimensionMetadataT(), fb.DimensionMetadataT()
>>> rows.format, rows.denseSize = fb.DimensionType.DENSE, 2
>>> cols.format = fb.DimensionType.SPARSE_CSR
>>> cols.arraySegments, cols.arrayIndices = fb.Uint8VectorT(), fb.Uint8VectorT()
>>> cols.arraySegments.values, cols.arrayIndices.values = [0, 1, 2], [2, 0]
>>> tensor.sparsity.traversalOrder, tensor.sparsity.dimMetadata = [0, 1], [rows, cols]
>>> data = np.array([5.0, 7.0], np.float32).view(np.uint8)
>>> sparse_format.decode_sparse(tensor, data).tolist()
[[0.0, 0.0, 5.0], [7.0, 0.0, 0.0]]
>>> sparse_format.sparse_tensor_bytes(tensor, data)  # 8 value bytes + 3 + 2 index bytes
13
"""

from __future__ import annotations

import numpy as np
from tensorflow.lite.python import schema_py_generated as fb

DTYPES = {
    fb.TensorType.FLOAT32: np.float32,
    fb.TensorType.FLOAT16: np.float16,
    fb.TensorType.FLOAT64: np.float64,
    fb.TensorType.INT8: np.int8,
    fb.TensorType.UINT8: np.uint8,
    fb.TensorType.INT16: np.int16,
    fb.TensorType.UINT16: np.uint16,
    fb.TensorType.INT32: np.int32,
    fb.TensorType.UINT32: np.uint32,
    fb.TensorType.INT64: np.int64,
    fb.TensorType.UINT64: np.uint64,
}


_INDEX_ITEMSIZE = {fb.Uint8VectorT: 1, fb.Uint16VectorT: 2, fb.Int32VectorT: 4}


def sparse_tensor_bytes(tensor, data) -> int:
    """Bytes of a sparse tensor's encoding: values plus index arrays."""
    total = len(data)
    for dim in tensor.sparsity.dimMetadata:
        for vector in (dim.arraySegments, dim.arrayIndices):
            if vector is not None and vector.values is not None:
                total += len(vector.values) * _INDEX_ITEMSIZE[type(vector)]
    return total


def decode_sparse(tensor, data) -> np.ndarray:
    """Decodes a sparse-encoded `fb.TensorT` with value bytes `data`.

    Follows TFLite's `FormatConverter::SparseToDense` for any traversal
    order, block map and dense/CSR dimension formats, vectorized with numpy.

    Returns:
        The dense array of the tensor's shape and element type.
    """
    dtype = DTYPES[tensor.type]
    values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype=dtype)
    sparsity = tensor.sparsity
    shape = [int(d) for d in tensor.shape]
    order = [int(d) for d in sparsity.traversalOrder]
    block_map = [int(d) for d in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    levels = sparsity.dimMetadata
    coords = np.zeros((1, 0), dtype=np.int64)
    position = np.zeros(1, dtype=np.int64)  # index of each partial path in its level
    for dim in levels:
        if dim.format == fb.DimensionType.DENSE:
            n = int(dim.denseSize)
            step = np.tile(np.arange(n, dtype=np.int64), len(position))
            coords = np.concatenate([np.repeat(coords, n, axis=0), step[:, None]], axis=1)
            position = np.repeat(position, n) * n + step
        else:
            segments = np.asarray(dim.arraySegments.values, dtype=np.int64)
            indices = np.asarray(dim.arrayIndices.values, dtype=np.int64)
            starts, ends = segments[position], segments[position + 1]
            lengths = ends - starts
            parent = np.repeat(np.arange(len(position)), lengths)
            offsets = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            position = np.repeat(starts, lengths) + offsets
            coords = np.concatenate([coords[parent], indices[position][:, None]], axis=1)
    if len(coords) != len(values):
        raise ValueError(
            f"Sparse tensor {tensor.name!r} has {len(values)} values but its index "
            f"arrays describe {len(coords)}; the file is inconsistent."
        )
    rank = len(shape)
    original = np.zeros((len(coords), rank), dtype=np.int64)
    for level in range(rank):
        original[:, order[level]] = coords[:, level]
    for level in range(rank, len(order)):
        block = order[level] - rank
        block_size = int(levels[order[level]].denseSize)
        original[:, block_map[block]] = original[:, block_map[block]] * block_size + coords[:, level]
    dense = np.zeros(int(np.prod(shape)), dtype=dtype)
    if len(values):
        dense[np.ravel_multi_index(tuple(original.T), shape)] = values
    return dense.reshape(shape)


def bookkeeping_bytes(tensor, *, densify) -> int:
    """Estimated bytes a sparse encoding adds besides values and indices.

    Args:
        tensor: The sparse `fb.TensorT`.
        densify: Whether a `DENSIFY` op (and its output tensor) expands it.
    """
    tables = 16 * len(tensor.sparsity.dimMetadata) + 48
    if densify:
        tables += 160 + len(tensor.name or b"")
    return tables

"""A dense twin of a sparse-encoded `.tflite`: same values, no sparse encoding.

Every sparse-encoded constant is decoded and stored dense and the `DENSIFY`
op expanding it is removed, reusing the rewriting helpers of
`tfsparse.deploy.encoding` (which does the same for the tensors that are not
smaller sparse). The values are bit-identical, so the twin computes the
same function; only how XNNPACK may run it changes.

Example:

>>> import tempfile, keras, numpy as np, tensorflow as tf
>>> from tfsparse.emulator.densify import densify_all, sparse_tensor_names
>>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64)])
>>> kernel = model.layers[0].kernel
>>> _ = kernel.assign(kernel * (np.random.default_rng(0).random((64, 64)) > 0.9))
>>> model.export(saved := tempfile.mkdtemp(), format="tf_saved_model", verbose=False)
>>> converter = tf.lite.TFLiteConverter.from_saved_model(saved)
>>> converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
>>> content = converter.convert()
>>> len(sparse_tensor_names(content)), sparse_tensor_names(densify_all(content))
(1, [])
"""

from __future__ import annotations

from tensorflow.lite.python import schema_py_generated as fb

from tfsparse.deploy import encoding
from tfsparse.deploy.sparse_format import DTYPES


def sparse_tensor_names(content) -> list:
    """Names of the sparse-encoded constant tensors of a `.tflite` model (bytes)."""
    model = fb.Model.GetRootAsModel(content, 0)
    names = []
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            if tensor.Sparsity() is not None:
                names.append(tensor.Name().decode("utf-8", "replace"))
    return names


def _expands(model, op, replaced) -> bool:
    """Whether `op` is a `DENSIFY` op whose output is in `replaced`."""
    return (op.outputs is not None and len(op.outputs) > 0 and int(op.outputs[0]) in replaced
            and encoding._op_code(model, op) == fb.BuiltinOperator.DENSIFY)  # pylint: disable=protected-access


def densify_all(content) -> bytes:
    """Stores every sparse-encoded constant of `content` dense and drops its `DENSIFY` op.

    Args:
        content: A `.tflite` model as bytes.

    Returns:
        The rewritten model as bytes (`content` itself if nothing is sparse).

    Raises:
        ValueError: if a sparse tensor has an element type that cannot be
            decoded.
    """
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(content, 0))
    references = encoding._buffer_references(model)  # pylint: disable=protected-access
    changed = False
    for g, subgraph in enumerate(model.subgraphs):
        producers = {int(op.inputs[0]): op for op in subgraph.operators or []
                     if encoding._op_code(model, op) == fb.BuiltinOperator.DENSIFY}  # pylint: disable=protected-access
        replaced = {}
        for index, tensor in enumerate(subgraph.tensors or []):
            if tensor.sparsity is None:
                continue
            if tensor.type not in DTYPES or model.buffers[tensor.buffer].data is None:
                raise ValueError(
                    f"Cannot build a dense twin: sparse tensor {tensor.name!r} has element type {tensor.type} "
                    "or no constant data, which tfsparse cannot decode. Observe a model exported by "
                    "`tfsparse export`."
                )
            densify_op = producers.get(index)
            encoding._store_dense(model, subgraph, tensor, densify_op, references)  # pylint: disable=protected-access
            if densify_op is not None:
                replaced[int(densify_op.outputs[0])] = index
            changed = True
        if replaced:
            subgraph.operators = [op for op in subgraph.operators if not _expands(model, op, replaced)]
            encoding._drop_tensors(model, g, subgraph, replaced)  # pylint: disable=protected-access
    if not changed:
        return content
    encoding._drop_unused_opcodes(model)  # pylint: disable=protected-access
    return encoding._pack(model)  # pylint: disable=protected-access

"""A dense twin of a sparse-encoded `.tflite`: same values, no sparse encoding.

Every sparse-encoded constant is decoded and stored dense and the `DENSIFY`
op expanding it is removed, reusing the rewriting helpers of
`tfsparse.deploy.encoding` (which does the same for the tensors that are not
smaller sparse). The values are bit-identical, so the twin computes the
same function; only how XNNPACK may run it changes.

With `lower_fc_version=True` the twin also gets the `FULLY_CONNECTED`
version the converter gives the dense model (`fully_connected_dense_version`:
1 for float32, 4 for int8, ...) instead of the 8 that a block-sparse weight
raised it to, which XNNPACK refuses: that twin is what XNNPACK runs dense
(`tfsparse.emulator.fc_observation`). Without it (the default, what
`tfsparse.emulator.observe` compares against) the versions are kept.

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
>>> from tfsparse.emulator.densify import fully_connected_versions
>>> fully_connected_versions(content), fully_connected_versions(densify_all(content, lower_fc_version=True))
([1], [1])
"""

from __future__ import annotations

from tensorflow.lite.python import schema_py_generated as fb

from tfsparse.deploy import encoding
from tfsparse.deploy.sparse_format import DTYPES

#: The `FULLY_CONNECTED` version a sparse weight raises the op to (TFLite's `op_version.cc`).
SPARSE_FC_VERSION = 8


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


def _tensor_type(subgraph, index):
    return None if index < 0 else subgraph.tensors[index].type


def _per_channel(subgraph, index) -> bool:
    quantization = None if index < 0 else subgraph.tensors[index].quantization
    return quantization is not None and quantization.scale is not None and len(quantization.scale) > 1


def fully_connected_dense_version(subgraph, op) -> int:
    """The version TFLite's converter gives a `FULLY_CONNECTED` op whose weight is dense.

    Mirrors `GetBuiltinOperatorVersion` of TFLite's `op_version.cc` for
    `FULLY_CONNECTED`, leaving out its sparse-weight rule (version 8).

    Args:
        subgraph: The op's `fb.SubGraphT`.
        op: An `fb.OperatorT` of `FULLY_CONNECTED`.

    Returns:
        The version (1 float32, 3 hybrid, 4 int8, 5 `keep_num_dims`, 6 no bias, ...).
    """
    inputs = list(op.inputs) if op.inputs is not None else []
    source, weight = (_tensor_type(subgraph, inputs[i]) if len(inputs) > i else None for i in (0, 1))
    output = _tensor_type(subgraph, op.outputs[0]) if op.outputs is not None and len(op.outputs) else None
    options = op.builtinOptions if isinstance(op.builtinOptions, fb.FullyConnectedOptionsT) else None
    types = fb.TensorType
    hybrid = (source, weight, output) == (types.FLOAT32, types.INT8, types.FLOAT32)
    if hybrid and _per_channel(subgraph, inputs[1]):
        return 12
    if (source, weight, output) == (types.INT16, types.INT8, types.INT16) and options is not None and \
            getattr(options, "quantizedBiasType", 0):
        return 11
    if (source, weight, output) == (types.INT16, types.INT16, types.INT16):
        return 7
    if len(inputs) == 2:
        return 6
    if options is not None and options.keepNumDims:
        return 5
    if (source, weight, output) == (types.INT8, types.INT8, types.INT8):
        return 4
    if (source, weight, output) == (types.INT8, types.INT4, types.INT8):
        return 10
    if hybrid:
        return 9 if options is not None and options.asymmetricQuantizeInputs else 3
    if options is not None and options.weightsFormat == fb.FullyConnectedOptionsWeightsFormat.SHUFFLED4x16INT8:
        return 2
    return 1


def fully_connected_versions(content) -> list:
    """The versions of the `FULLY_CONNECTED` operator codes of a `.tflite` model (bytes), in file order."""
    model = fb.Model.GetRootAsModel(content, 0)
    versions = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == fb.BuiltinOperator.FULLY_CONNECTED:
            versions.append(int(code.Version()))
    return versions


def _lower_fc_versions(model) -> bool:
    """Gives each `FULLY_CONNECTED` code at the sparse version the dense model's version; whether any changed."""
    wanted = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            if encoding._op_code(model, op) == fb.BuiltinOperator.FULLY_CONNECTED:  # pylint: disable=protected-access
                version = fully_connected_dense_version(subgraph, op)
                wanted[op.opcodeIndex] = max(wanted.get(op.opcodeIndex, 1), version)
    changed = False
    for index, version in wanted.items():
        code = model.operatorCodes[index]
        if code.version == SPARSE_FC_VERSION and version < code.version:
            code.version, changed = version, True
    return changed


def densify_all(content, *, lower_fc_version=False) -> bytes:
    """Stores every sparse-encoded constant of `content` dense and drops its `DENSIFY` op.

    Args:
        content: A `.tflite` model as bytes.
        lower_fc_version: Also give each `FULLY_CONNECTED` operator code at
            version 8 (raised by a sparse weight) the version the converter
            gives the dense model (`fully_connected_dense_version`, the
            largest over the ops sharing the code), so that XNNPACK may
            delegate it. Defaults to `False` (versions kept).

    Returns:
        The rewritten model as bytes (`content` itself if nothing changed).

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
    if lower_fc_version:
        changed = _lower_fc_versions(model) or changed
    if not changed:
        return content
    encoding._drop_unused_opcodes(model)  # pylint: disable=protected-access
    return encoding._pack(model)  # pylint: disable=protected-access

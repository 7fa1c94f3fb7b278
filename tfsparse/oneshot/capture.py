"""What one-shot pruning can reconstruct, and the inputs of those layers on calibration data.

A layer is supported when it is a linear map of each input row: a `Dense`
kernel (rows: the input's last axis), or the kernel of a `Conv1D`/`Conv2D`/
`Conv3D` whose kernel is 1 everywhere and `groups=1` (a Dense over pixels:
rows are the `N*H*W` input pixels, every `strides`-th one, channels last).

Inputs are read from the layer graph: for each target layer, a
`keras.Model(graph inputs, [the layer's input at each of its calls])` feature
extractor, composed through nested Sequential/Functional models, so the
values reflect the model's weights at the time of the call (earlier layers
already pruned).

Example:

>>> import keras, numpy as np
>>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 1, strides=2, name="pw")])
>>> layer = model.get_layer("pw")
>>> unsupported_reason(layer, layer.kernel) is None
True
>>> [rows.shape for rows in layer_inputs(model, layer)(np.ones((5, 4, 4, 3), "float32"))]
[(20, 3)]
"""

from __future__ import annotations

import keras
import numpy as np

from tfsparse.graph_insert import functional_view, is_graph_model
from tfsparse.prunable import iter_layers

_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def unsupported_reason(layer, variable):
    """`None` if one-shot pruning can reconstruct `variable` of `layer`, else why not (a short phrase)."""
    if isinstance(layer, keras.layers.Dense):
        kind = "Dense"
    elif isinstance(layer, _CONVOLUTIONS):
        if any(size != 1 for size in layer.kernel_size):
            return f"a {'x'.join(map(str, layer.kernel_size))} convolution (only 1x1 kernels are)"
        if layer.groups != 1:
            return f"a grouped convolution (groups={layer.groups})"
        kind = "convolution"
    else:
        return f"a {type(layer).__name__} (only Dense and 1x1 convolutions are)"
    if getattr(layer, "lora_enabled", False):
        return "a LoRA-enabled layer"
    if getattr(layer, "quantization_mode", None) is not None:
        return f"a quantized layer ({layer.quantization_mode})"
    if variable is not layer.kernel:
        return f"not the {kind} kernel"
    return None


def weight_matrix(kernel):
    """The `(outputs, inputs)` matrix of a Dense `[in, out]` or 1x1 conv `[1, .., in, out]` kernel."""
    kernel = np.asarray(kernel)
    return kernel.reshape(-1, kernel.shape[-1]).T


def kernel_from_matrix(matrix, shape, dtype):
    """Inverse of `weight_matrix`."""
    return np.asarray(matrix).T.reshape(shape).astype(dtype)


def input_rows(layer, values):
    """The `(rows, inputs)` float64 matrix a supported layer multiplies by its kernel."""
    values = np.asarray(keras.ops.convert_to_numpy(values), dtype=np.float64)
    if isinstance(layer, _CONVOLUTIONS):
        if layer.data_format == "channels_first":
            values = np.moveaxis(values, 1, -1)
        # A 1x1 kernel needs no padding ("same" pads nothing), so output pixel j reads input pixel j * stride.
        values = values[(slice(None), *(slice(None, None, s) for s in layer.strides), slice(None))]
    return values.reshape(-1, values.shape[-1])


def call_order(model, layers):
    """`layers` (those called in `model`'s graph) in the order the graph calls them first; nested models included."""
    wanted = {id(layer) for layer in layers}
    found = []
    _walk(functional_view(model), wanted, found)
    return found


def _walk(graph, wanted, found):
    for node in _nodes(graph):
        operation = node.operation
        if id(operation) in wanted and operation not in found:
            found.append(operation)
        elif is_graph_model(operation):
            _walk(functional_view(operation), wanted, found)


def _nodes(graph):
    """`graph`'s layer calls, inputs first (a node's depth is its distance to the outputs)."""
    return [node for depth in sorted(graph._nodes_by_depth, reverse=True) for node in graph._nodes_by_depth[depth]
            if node.operation is not None and not node.is_input]


def _inputs_struct(graph):
    return graph.inputs[0] if len(graph.inputs) == 1 else list(graph.inputs)


def layer_inputs(model, layer):
    """A function `batch -> [rows matrix per call of layer]`, `batch` being inputs of `model`.

    Raises:
        ValueError: if `model` is not a Sequential or Functional model.
    """
    capture = _capture(functional_view(model), layer)
    return lambda batch: [input_rows(layer, values) for values in capture(batch)]


def _capture(graph, layer):
    direct, nested = [], []
    for node in _nodes(graph):
        if node.operation is layer:
            direct.append(node.input_tensors[0])
        elif is_graph_model(node.operation) and any(inner is layer for inner in iter_layers(node.operation)):
            nested.append((list(node.input_tensors), _capture(functional_view(node.operation), layer)))
    extractor = keras.Model(_inputs_struct(graph), direct + [t for tensors, _ in nested for t in tensors])

    def capture(batch):
        values = extractor(batch, training=False)
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        found, position = values[:len(direct)], len(direct)
        for tensors, inner in nested:
            arguments = values[position:position + len(tensors)]
            position += len(tensors)
            found.extend(inner(arguments[0] if len(arguments) == 1 else arguments))
        return found

    return capture

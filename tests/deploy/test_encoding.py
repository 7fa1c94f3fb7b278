import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as fb

from tfsparse.deploy import TfliteSummary, encoding, sparse_format


def _convert(model, *, sparse=True):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    return converter.convert()


def _sparse_tensors(content):
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(content, 0))
    return model, [t for t in model.subgraphs[0].tensors if t.sparsity is not None]


def _dense_model(kernel):
    model = keras.Sequential([keras.Input((kernel.shape[0],)), keras.layers.Dense(kernel.shape[1], use_bias=False)])
    model.layers[0].kernel.assign(kernel)
    return model


@pytest.mark.parametrize("block", [False, True], ids=["csr", "block_1x4"])
def test_decode_sparse_recovers_the_weights(block):
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(64, 24)).astype("float32")
    keep = np.repeat(rng.random((16, 24)) < 0.1, 4, axis=0) if block else rng.random(kernel.shape) < 0.1
    kernel *= keep
    model, tensors = _sparse_tensors(_convert(_dense_model(kernel)))
    (tensor,) = tensors
    if block:
        assert tensor.sparsity.blockMap is not None and len(tensor.sparsity.blockMap) == 1
    decoded = sparse_format.decode_sparse(tensor, model.buffers[tensor.buffer].data)
    np.testing.assert_array_equal(decoded, kernel.T)  # TFLite stores FULLY_CONNECTED weights [out, in]


def test_decode_sparse_conv_kernel():
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((6, 6, 8)), keras.layers.Conv2D(16, 3, use_bias=False)])
    kernel = model.layers[0].kernel.numpy() * (rng.random((3, 3, 8, 16)) < 0.2)
    model.layers[0].kernel.assign(kernel)
    flat, (tensor,) = _sparse_tensors(_convert(model))
    decoded = sparse_format.decode_sparse(tensor, flat.buffers[tensor.buffer].data)
    np.testing.assert_array_equal(decoded, kernel.transpose(3, 0, 1, 2))  # OHWI


def test_not_smaller_tensors_are_densified_per_tensor(run_tflite):
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(300), keras.layers.Dense(8)])
    big, small = model.layers[0].kernel, model.layers[1].kernel
    big.assign(big.numpy() * (rng.random(big.shape) > 0.9))  # 90% zeros: much smaller sparse
    small.assign(small.numpy() * (rng.random(small.shape) > 0.33))  # 33% zeros, uint16 indices: larger
    content = _convert(model)
    assert len(TfliteSummary.from_bytes(content).sparse_tensors) == 2
    rewritten, densified = encoding.densify_where_not_smaller(content)
    summary = TfliteSummary.from_bytes(rewritten)
    assert len(summary.sparse_tensors) == 1 and len(densified) == 1
    assert "not smaller" in next(iter(densified.values()))
    assert summary.op_counts == {"DENSIFY": 1, "FULLY_CONNECTED": 2}
    assert len(rewritten) < len(content)
    x = rng.normal(size=(5, 300)).astype("float32")
    np.testing.assert_array_equal(run_tflite(rewritten, x), run_tflite(content, x))


def _op_names(content):
    return TfliteSummary.from_bytes(content).op_counts


def test_all_densified_removes_densify_ops_and_tensors(run_tflite):
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(300, 8)).astype("float32")
    kernel[rng.random(kernel.shape) < 1 / 3] = 0.0  # scattered zeros: CSR behind a DENSIFY op
    content = _convert(_dense_model(kernel))
    assert _op_names(content) == {"DENSIFY": 1, "FULLY_CONNECTED": 1}
    rewritten, densified = encoding.densify_where_not_smaller(content)
    flat = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(rewritten, 0))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in flat.operatorCodes]
    assert codes == [fb.BuiltinOperator.FULLY_CONNECTED]
    before = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(content, 0))
    assert len(flat.subgraphs[0].tensors) == len(before.subgraphs[0].tensors) - 1
    assert [s.tensorIndex for s in flat.signatureDefs[0].outputs] == list(flat.subgraphs[0].outputs)
    assert len(rewritten) < len(content)
    x = rng.normal(size=(3, 300)).astype("float32")
    np.testing.assert_array_equal(run_tflite(rewritten, x), run_tflite(content, x))


def test_block_sparse_weight_read_directly_stays_sparse_when_smaller():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(300, 8)).astype("float32")
    kernel[:100] = 0.0  # whole 1x4 blocks of zeros: the FULLY_CONNECTED kernel reads it sparse
    content = _convert(_dense_model(kernel))
    assert _op_names(content) == {"FULLY_CONNECTED": 1} and TfliteSummary.from_bytes(content).sparse_tensors
    # 1600 float32 values + 400 uint8 block indices: far below 2400 * 4 dense bytes
    assert encoding.densify_where_not_smaller(content) == (content, {})


def test_rewritten_buffers_stay_16_byte_aligned():
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(7), keras.layers.Dense(3)])
    for layer in model.layers:
        layer.kernel.assign(layer.kernel * (rng.random(layer.kernel.shape) > 1 / 3))
    rewritten, densified = encoding.densify_where_not_smaller(_convert(model))
    assert len(densified) == 2  # both kernels: a third zeros is not worth encoding sparse
    flat = fb.Model.GetRootAsModel(rewritten, 0)
    for i in range(flat.BuffersLength()):
        buffer = flat.Buffers(i)
        if buffer.DataLength():
            offset = buffer._tab.Vector(buffer._tab.Offset(4))
            assert offset % 16 == 0


def test_content_without_sparse_tensors_is_returned_unchanged():
    content = _convert(_dense_model(np.ones((4, 3), "float32")), sparse=False)
    assert encoding.densify_where_not_smaller(content) == (content, {})

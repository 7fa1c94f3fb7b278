import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsparse.deploy import TfliteSummary, inspect_tflite


@pytest.fixture
def sparse_file(tmp_path, sparse_mlp):
    converter = tf.lite.TFLiteConverter.from_keras_model(sparse_mlp)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    path = tmp_path / "m.tflite"
    path.write_bytes(converter.convert())
    return path


def test_inspect_lists_ops_sparse_tensors_and_sizes(sparse_file, sparse_mlp):
    summary = inspect_tflite(sparse_file)
    assert summary.size_bytes == sparse_file.stat().st_size
    assert summary.op_counts == {"DENSIFY": 2, "FULLY_CONNECTED": 2}
    sparse = [t for t in summary.tensors if t.sparse]
    assert sorted(t.shape for t in sparse) == [(10, 128), (128, 64)]
    nonzeros = sum(int(np.count_nonzero(layer.kernel.numpy())) for layer in sparse_mlp.layers)
    values_bytes = 4 * nonzeros
    index_bytes = sum(t.bytes for t in sparse) - values_bytes
    assert nonzeros <= index_bytes < 2 * nonzeros  # uint8 column indices plus row segments
    assert summary.sparse_tensors == tuple(t.name for t in sparse)
    assert [t.shape for t in summary.inputs] == [(-1, 64)] and [t.dtype for t in summary.outputs] == ["float32"]


def test_summary_to_dict_and_str(sparse_file):
    summary = inspect_tflite(sparse_file)
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["operators"] == {"DENSIFY": 2, "FULLY_CONNECTED": 2}
    assert len(data["sparse_tensors"]) == 2 and data["size_bytes"] == summary.size_bytes
    text = str(summary)
    assert "DENSIFY x2" in text and "sparse-encoded tensors: 2 of" in text and str(sparse_file) in text


def test_dense_biases_and_weights_are_reported_dense():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, bias_initializer="ones")])
    summary = TfliteSummary.from_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    weights = [t for t in summary.tensors if t.bytes]
    assert sorted((t.shape, t.bytes, t.sparse) for t in weights) == [((3,), 12, False), ((3, 4), 48, False)]
    assert summary.path is None and summary.constant_bytes == 60


def test_inspect_refuses_missing_and_non_tflite_files(tmp_path):
    with pytest.raises(ValueError, match="Expected an existing `.tflite` file"):
        inspect_tflite(tmp_path / "nope.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="Expected a TFLite flatbuffer"):
        inspect_tflite(bad)


@pytest.mark.parametrize("cut", ["first_100_bytes", "half", "last_8_bytes", "text"])
def test_inspect_refuses_truncated_or_garbage_files_with_a_value_error(tmp_path, sparse_file, cut):
    content = sparse_file.read_bytes()
    bad = tmp_path / "bad.tflite"
    bad.write_bytes({"first_100_bytes": content[:100], "half": content[:len(content) // 2],
                     "last_8_bytes": content[:-8], "text": b"hello, this is not a model\n" * 20}[cut])
    with pytest.raises(ValueError, match=r"^Invalid value received for argument `path`. Expected a TFLite flatbuffer; "
                                         r".*bad.tflite is not a valid .tflite flatbuffer \(truncated or corrupt\?\)"):
        inspect_tflite(bad)


def test_every_truncation_of_a_file_is_refused(sparse_file):
    content = sparse_file.read_bytes()
    for length in range(0, len(content), 7):
        with pytest.raises(ValueError, match="is not a valid .tflite flatbuffer"):
            TfliteSummary.from_bytes(content[:length])
    assert TfliteSummary.from_bytes(content).sparse_tensors

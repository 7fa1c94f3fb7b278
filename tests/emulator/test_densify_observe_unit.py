"""Dense twins and the not-eligible case of `observe` (no emulator needed)."""

import numpy as np

from tfsparse.emulator import observe
from tfsparse.emulator.densify import densify_all, sparse_tensor_names


def _sparse_mlp_content(tmp_path):
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, name="d")])
    kernel = model.layers[0].kernel
    kernel.assign(kernel * (np.random.default_rng(0).random((64, 64)) > 0.9))
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return converter.convert()


def test_dense_twin_computes_the_same(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    content = _sparse_mlp_content(tmp_path)
    assert len(sparse_tensor_names(content)) == 1
    twin = densify_all(content)
    assert sparse_tensor_names(twin) == []
    x = np.random.default_rng(1).random((1, 64)).astype("float32")
    results = []
    for model in (content, twin):
        interpreter = Interpreter(model_content=model, num_threads=1)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        results.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-6)


def test_observe_not_eligible_without_sparse_weights(tiny_tflite):
    observation = observe(tiny_tflite)
    assert not observation.eligible and not observation.fired
    assert observation.reason == "not eligible: no sparse-encoded weights"


def test_constant_outputs_make_the_observation_inconclusive(tmp_path, monkeypatch):
    """An untrained network whose outputs do not depend on the input cannot show which kernels ran."""
    import base64

    from tfsparse.emulator import bench_runner

    path = tmp_path / "sparse.tflite"
    path.write_bytes(_sparse_mlp_content(tmp_path))

    def fake_run(paths, **kwargs):
        array = np.full((1, 10), 0.1, np.float32)
        out = {"dtype": array.dtype.str, "shape": [1, 10], "sha256": "same",
               "base64": base64.b64encode(array.tobytes()).decode()}
        return {"runtime": "fake", "models": [{"outputs": [out]}, {"outputs": [out]}]}

    monkeypatch.setattr(bench_runner, "run_emulated", fake_run)
    observation = observe(str(path))
    assert observation.eligible and not observation.fired and not observation.conclusive
    assert observation.reason.startswith("inconclusive: the outputs are constant")
    assert "tfsparse.recalibrate" in observation.reason
    from tfsparse.emulator.observation import Observation

    assert Observation.from_dict(observation.to_dict()) == observation

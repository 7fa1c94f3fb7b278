"""`tfsparse.bench.bench` on the local LiteRT runner.

No assertion here depends on real timings: the interleaving order is
recorded, and the ratio logic is checked with an injected fake clock.
"""

import importlib
import json
import types

import numpy as np
import pytest

from tfsparse.bench import BenchResult, ModelTiming, bench
from tfsparse.bench import local, timing


def test_result_structure_with_real_models(tflite_files):
    result = bench(tflite_files["small"], compare=tflite_files["large"], runs=4, warmup=2, threads=1)
    assert isinstance(result, BenchResult)
    assert [m.path for m in result.models] == [tflite_files["small"], tflite_files["large"]]
    assert (result.target, result.threads, result.runs, result.warmup) == ("local", 1, 4, 2)
    for model in result.models:
        assert len(model.times_ms) == 4 and all(t > 0 for t in model.times_ms)
        assert model.min_ms <= model.median_ms <= model.max_ms
        assert model.median_ms == pytest.approx(float(np.median(model.times_ms)))
    assert result.speedup == pytest.approx(result.models[1].median_ms / result.models[0].median_ms)
    assert result.details["runtime"].startswith("ai-edge-litert")
    as_dict = json.loads(json.dumps(result.to_dict()))
    assert as_dict["speedup"] == pytest.approx(result.speedup)
    assert [m["times_ms"] for m in as_dict["models"]] == [list(m.times_ms) for m in result.models]
    for entry, model in zip(as_dict["models"], result.models):
        assert entry["runs"] == 4 and entry["median_ms"] == pytest.approx(model.median_ms)
        assert (entry["min_ms"], entry["max_ms"]) == pytest.approx((model.min_ms, model.max_ms))
    assert (as_dict["threads"], as_dict["target"], as_dict["runs"]) == (1, "local", 4)
    assert BenchResult.from_dict(as_dict) == result
    text = str(result)
    assert "speedup of small.tflite vs large.tflite" in text and "> 1 means small.tflite is faster" in text


def test_invokes_are_interleaved_warmup_included(tflite_files, monkeypatch):
    order = []
    original = local.LocalModel.invoke

    def recording_invoke(self):
        order.append(self.path)
        original(self)

    monkeypatch.setattr(local.LocalModel, "invoke", recording_invoke)
    a, b = tflite_files["small"], tflite_files["large"]
    bench(a, compare=b, runs=3, warmup=2)
    assert order == [a, b] * 5


def test_ratio_direction_with_a_fake_clock(tflite_files, monkeypatch):
    """`path` takes 1 ms per invoke and `compare` 3 ms: a speedup of 3 for `path`."""
    now = [100.0]
    cost = {tflite_files["small"]: 0.001, tflite_files["large"]: 0.003}
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(local.LocalModel, "invoke", lambda self: now.__setitem__(0, now[0] + cost[self.path]))
    result = bench(tflite_files["small"], compare=tflite_files["large"], runs=5, warmup=1)
    assert [m.median_ms for m in result.models] == pytest.approx([1.0, 3.0])
    assert result.speedup == pytest.approx(3.0)
    assert "speedup of small.tflite vs large.tflite: 3.00x" in str(result)
    swapped = bench(tflite_files["large"], compare=tflite_files["small"], runs=5, warmup=1)
    assert swapped.speedup == pytest.approx(1 / 3)


def test_single_model_has_no_speedup(tflite_files):
    result = bench(tflite_files["small"], runs=2, warmup=0)
    assert len(result.models) == 1 and len(result.models[0].times_ms) == 2
    assert result.speedup is None and result.to_dict()["speedup"] is None
    assert "speedup" not in str(result) and "interleaved" not in str(result)


def test_random_inputs_match_every_input_tensor(tflite_files):
    model = local.LocalModel(tflite_files["two_inputs"], threads=1, seed=0)
    details = sorted(model.interpreter.get_input_details(), key=lambda d: d["index"])
    assert len(model.inputs) == 2
    for detail, value in zip(details, model.inputs):
        assert value.shape == tuple(detail["shape"]) and value.dtype == detail["dtype"]
    tokens = next(v for v in model.inputs if v.dtype == np.int32)
    assert set(np.unique(tokens)) <= {0, 1}
    model.invoke()  # the inputs are valid for the model
    again = local.LocalModel(tflite_files["two_inputs"], threads=1, seed=0)
    for first, second in zip(model.inputs, again.inputs):
        np.testing.assert_array_equal(first, second)


def test_dynamic_batch_is_resized_to_one(tflite_files):
    model = local.LocalModel(tflite_files["small"], threads=1)
    (detail,) = model.interpreter.get_input_details()
    assert list(detail["shape_signature"]) == [-1, 16]  # Keras exports a dynamic batch
    assert tuple(detail["shape"]) == (1, 16) and model.inputs[0].shape == (1, 16)
    model.invoke()
    assert model.interpreter.get_output_details()[0]["shape"].tolist() == [1, 4]


def test_fixed_shape():
    assert local.fixed_shape({"shape": np.array([8, 4]), "shape_signature": np.array([-1, 4])}) == (1, 4)
    assert local.fixed_shape({"shape": np.array([2, 4]), "shape_signature": np.array([2, 4])}) == (2, 4)
    assert local.fixed_shape({"shape": np.array([3])}) == (3,)
    with pytest.raises(ValueError, match=r"m.tflite: its shape \(-1, -1, 3\) has a dynamic dimension besides"):
        local.fixed_shape({"name": "x", "shape": np.array([1, 1, 3]), "shape_signature": np.array([-1, -1, 3])},
                          "m.tflite")


def test_dynamic_non_batch_dimension_is_refused(tflite_files):
    with pytest.raises(ValueError, match="Export the model with a fixed input shape"):
        bench(tflite_files["dynamic_length"], runs=1)


def test_random_input_kinds():
    rng = np.random.default_rng(0)
    quantized = local.random_input({"shape": [1000], "dtype": np.int8, "quantization": (0.1, 3)}, rng)
    assert quantized.dtype == np.int8 and quantized.min() < -100 and quantized.max() > 100
    flags = local.random_input({"shape": [50], "dtype": np.bool_, "quantization": (0.0, 0)}, rng)
    assert flags.dtype == np.bool_ and 0 < flags.sum() < 50
    floats = local.random_input({"shape": [2, 3], "dtype": np.float32}, rng)
    assert floats.shape == (2, 3) and floats.dtype == np.float32 and 0 <= floats.min() and floats.max() < 1
    with pytest.raises(ValueError, match="string inputs"):
        local.random_input({"name": "text", "shape": [1], "dtype": np.bytes_}, rng)


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"runs": 0}, "argument `runs`. Expected an integer >= 1. Received: runs=0"),
        ({"runs": True}, "argument `runs`"),
        ({"warmup": -1}, "argument `warmup`. Expected an integer >= 0"),
        ({"threads": 0}, "argument `threads`. Expected an integer >= 1"),
        ({"threads": 1.5}, "argument `threads`"),
        ({"target": "arm-remote"}, "argument `target`. Expected one of 'local'.*Received: target='arm-remote'"),
        ({"compare": "dense.onnx"}, "argument `compare`. Expected a .tflite file"),
        ({"compare": 3}, "argument `compare`. Expected the path of a .tflite file"),
    ],
)
def test_invalid_arguments(tflite_files, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        bench(tflite_files["small"], **kwargs)


def test_missing_and_wrong_files(tmp_path, tflite_files):
    with pytest.raises(FileNotFoundError, match="missing.tflite .*does not exist"):
        bench(str(tmp_path / "missing.tflite"))
    with pytest.raises(FileNotFoundError, match="argument `compare`"):
        bench(tflite_files["small"], compare=tmp_path / "missing.tflite")
    (tmp_path / "model.keras").write_bytes(b"PK")
    with pytest.raises(ValueError, match="Expected a .tflite file"):
        bench(tmp_path / "model.keras")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="LiteRT cannot load .*corrupt.tflite"):
        bench(corrupt, runs=1)


def test_long_runs_log_progress(monkeypatch):
    messages = []
    fake_logging = types.SimpleNamespace(info=lambda *args: messages.append(args[0] % args[1:]))
    monkeypatch.setattr(timing, "logging", fake_logging)
    ticks = iter(range(0, 10_000, 4))  # every clock reading is 4 s later
    times = timing.interleaved([lambda: None, lambda: None], runs=5, warmup=0, clock=lambda: next(ticks),
                               labels=["a", "b"])
    assert times == [[4000.0] * 5, [4000.0] * 5]
    assert messages and messages[0].startswith("bench: 1/5 runs") and "a median 4000.000 ms" in messages[0]
    assert not any(m.startswith("bench: 5/5") for m in messages)


def test_table_uses_full_paths_when_file_names_collide():
    result = BenchResult(models=(ModelTiming("a/m.tflite", (1.0,)), ModelTiming("b/m.tflite", (2.0,))),
                         target="local", threads=2, runs=1, warmup=0)
    text = str(result)
    assert "speedup of a/m.tflite vs b/m.tflite: 2.00x" in text and "2 threads, 1 interleaved run after" in text


def test_package_exports():
    package = importlib.import_module("tfsparse.bench")
    assert package.bench is bench and set(package.TARGETS) == {"local", "arm-emu"}
    assert {"bench", "BenchResult", "ModelTiming"} <= set(package.__all__)

"""Tests on the real emulated aarch64 runtime (slow; skipped locally when it is not set up)."""

import pytest

from tfsparse.bench import bench
from tfsparse.emulator import observe

pytestmark = pytest.mark.slow


def test_bench_arm_emu_tiny_model_vs_itself(emulator_ready, tiny_tflite):
    path = tiny_tflite
    result = bench(path, compare=path, target="arm-emu", runs=3, warmup=1)
    assert result.target == "arm-emu" and len(result.models) == 2
    assert [len(m.times_ms) for m in result.models] == [3, 3]
    assert all(t > 0 for m in result.models for t in m.times_ms)
    assert result.speedup > 0
    assert result.details["machine"].startswith("aarch64")
    assert result.details["runtime"] == "tflite-runtime 2.14.0"
    assert "arm-emu" in str(result)


def test_observe_sparse_path_fires_for_xnnpack_export(emulator_ready, mobilenet_files):
    observation = observe(mobilenet_files["xnnpack"])
    assert observation.eligible and observation.sparse_tensors
    assert observation.fired, observation.reason
    assert 0 < observation.max_abs_diff < 1e-2


def test_observe_dense_export(emulator_ready, mobilenet_files):
    observation = observe(mobilenet_files["dense"])
    assert not observation.fired
    assert observation.reason == "not eligible: no sparse-encoded weights"


def test_observe_sparse_weights_with_dynamic_batch_do_not_fire(emulator_ready, mobilenet_files):
    observation = observe(mobilenet_files["sparse"])
    assert observation.eligible and observation.sparse_tensors
    assert not observation.fired and observation.max_abs_diff == 0.0
    assert "bit-identical" in observation.reason


def test_bench_arm_emu_observes_the_sparse_path_and_measures_the_speedup(emulator_ready, mobilenet_files):
    sparse, dense = mobilenet_files["xnnpack"], mobilenet_files["dense"]
    result = bench(sparse, compare=dense, target="arm-emu", runs=3)
    fired, not_eligible = result.observations
    assert (fired.path, fired.eligible, fired.fired) == (sparse, True, True), fired.reason
    assert 0 < fired.max_abs_diff < 1e-2
    assert (not_eligible.path, not_eligible.eligible, not_eligible.fired) == (dense, False, False)
    assert result.speedup > 1.5, str(result)
    text = str(result)
    assert text.startswith("Emulated aarch64 tflite-runtime XNNPACK latency (arm-emu, 1 thread, 3 interleaved runs")
    assert "Emulated (qemu) ratios overstate real devices." in text
    assert ("XNNPACK sparse path: xnnpack.tflite fired (outputs differ from its dense twin by "
            in text and "; dense.tflite not eligible: no sparse-encoded weights" in text)
    assert [o["fired"] for o in result.to_dict()["observations"]] == [True, False]

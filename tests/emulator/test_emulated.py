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

"""`tfsparse.sparse_fc.observe` on the real emulated aarch64 runtime (slow; skipped locally when it is not set up).

Small MLPs (256 -> 256 -> 256 -> 10, ReLU) whose first two kernels are
masked with numpy, converted with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`:
90% of the 4-input blocks zero (float32, 1x4 block-sparse), 90% of the
16-input blocks zero (int8, 1x16), 90% zeros anywhere (a `DENSIFY` op per
weight), and a mixed file (1x4 blocks, then unstructured). Timings are left
to the benchmarks: the tests check the kernel evidence.
"""

import os

import numpy as np
import pytest

import tfsparse.sparse_fc
from tfsparse.emulator.fc_observation import observe_fc

pytestmark = pytest.mark.slow

UNITS = 256


def _mlp(masks):
    """The MLP with the first two kernels masked: each of `masks` is "block4", "block16" or "random"."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((UNITS,)), keras.layers.Dense(UNITS, activation="relu"),
                              keras.layers.Dense(UNITS, activation="relu"), keras.layers.Dense(10)])
    rng = np.random.default_rng(0)
    for layer, mask in zip(model.layers, masks):
        kernel = layer.kernel.numpy()  # [inputs, outputs]: TFLite's filter [outputs, inputs] transposed
        if mask == "random":
            keep = rng.random(kernel.shape) >= 0.9
        else:
            size = {"block4": 4, "block16": 16}[mask]
            blocks = rng.random((kernel.shape[0] // size, 1, kernel.shape[1])) >= 0.9
            keep = np.repeat(blocks, size, axis=1).reshape(kernel.shape)
        layer.kernel.assign(kernel * keep)
    return model


def _convert(model, directory, quantization=None):
    import tensorflow as tf

    saved = os.path.join(directory, "saved")
    model.export(saved, format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if quantization is not None:
        converter.optimizations.append(tf.lite.Optimize.DEFAULT)
    if quantization in ("int8", "int8-per-tensor"):
        rng = np.random.default_rng(1)
        converter.representative_dataset = lambda: ([rng.random((1, UNITS)).astype(np.float32)] for _ in range(20))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # pylint: disable-next=protected-access
        converter._experimental_disable_per_channel = quantization == "int8-per-tensor"
    return converter.convert()


FILES = {
    "block4_fp32": (("block4", "block4"), None),
    "block16_int8": (("block16", "block16"), "int8-per-tensor"),
    "block16_int8_per_channel": (("block16", "block16"), "int8"),
    "random_fp32": (("random", "random"), None),
    "mixed_fp32": (("block4", "random"), None),
    "block16_hybrid": (("block16", "block16"), "dynamic-range"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{name: .tflite path} for `FILES`."""
    paths = {}
    for name, (masks, quantization) in FILES.items():
        directory = str(tmp_path_factory.mktemp(name))
        paths[name] = os.path.join(directory, f"{name}.tflite")
        with open(paths[name], "wb") as file:
            file.write(_convert(_mlp(masks), directory, quantization))
    return paths


def test_float32_1x4_blocks_run_the_sparse_kernel_and_the_twin_runs_xnnpack(emulator_ready, files):
    observation = tfsparse.sparse_fc.observe(files["block4_fp32"], runs=3)
    assert observation.kernel_names == ("builtin-sparse-1x4", "builtin-sparse-1x4", "builtin-dense"), observation
    assert observation.partitions == () and observation.fc_versions == (8,)
    assert observation.twin_kernel_names == ("xnnpack-dense",) * 3
    assert observation.twin_fc_versions == (1,) and observation.twin_partitions == ((3, (0, 1, 2)),)
    assert observation.outputs_agree and observation.max_abs_diff < 1e-5, observation
    assert observation.speedup is not None and observation.speedup > 0  # the ratio itself: see the benchmarks
    assert len(observation.times_ms) == len(observation.twin_times_ms) == 3
    assert observation.runtime == "tflite-runtime 2.14.0"
    assert "FULLY_CONNECTED version 8 -> 1" in str(observation)


def test_int8_1x16_blocks_run_the_sparse_kernel_and_nothing_int8_is_delegated(emulator_ready, files):
    observation = observe_fc(files["block16_int8"], runs=3)
    assert observation.kernel_names == ("builtin-sparse-1x16", "builtin-sparse-1x16", "builtin-dense"), observation
    assert observation.twin_kernel_names == ("builtin-dense",) * 3  # tflite-runtime 2.14's XNNPACK takes no int8
    assert observation.twin_fc_versions == (4,)
    assert observation.outputs_agree, observation
    assert observation.effective_kernel_names == observation.kernel_names


def test_int8_1x16_with_per_channel_scales_gives_wrong_outputs_on_tflite_runtime_2_14(emulator_ready, files):
    """tflite-runtime 2.14's 1x16 kernel takes one output multiplier: per-channel weights come out wrong."""
    observation = observe_fc(files["block16_int8_per_channel"], runs=1)
    assert observation.kernel_names == ("builtin-sparse-1x16", "builtin-sparse-1x16", "builtin-dense"), observation
    assert observation.outputs_agree is False, observation
    assert [k.wrong_outputs for k in observation.kernels] == [True, True, False]
    assert observation.effective_kernel_names == ("unsupported", "unsupported", "builtin-dense")


def test_unstructured_zeros_densify_and_run_xnnpack(emulator_ready, files):
    observation = observe_fc(files["random_fp32"], runs=1)
    assert observation.kernel_names == ("xnnpack-dense",) * 3, observation
    (delegate, replaced), = observation.partitions
    assert replaced == (0, 1, 2, 3, 4)  # the two DENSIFY ops and the three FULLY_CONNECTED
    assert all(k.partition == delegate and "DENSIFY" in k.encoding for k in observation.kernels[:2])
    assert observation.twin_kernel_names == ("xnnpack-dense",) * 3
    assert observation.outputs_agree and observation.fc_versions == observation.twin_fc_versions == (1,)


def test_one_block_sparse_weight_keeps_every_fully_connected_from_xnnpack(emulator_ready, files):
    observation = observe_fc(files["mixed_fp32"], runs=1)
    # The shared operator code is at version 8: the DENSIFY-fed and the dense ops run builtin too.
    assert observation.kernel_names == ("builtin-sparse-1x4", "builtin-dense", "builtin-dense"), observation
    assert observation.partitions == ()
    assert "DENSIFY" in observation.kernels[1].encoding
    assert observation.twin_kernel_names == ("xnnpack-dense",) * 3
    assert observation.outputs_agree, observation


def test_hybrid_version_12_is_unsupported_not_an_error(emulator_ready, files):
    observation = observe_fc(files["block16_hybrid"], runs=1)
    assert observation.kernel_names == ("unsupported",) * 3, observation
    assert "version '12'" in observation.error and observation.fc_versions == (12,)
    assert observation.speedup is None and observation.outputs_agree is None


def test_bench_observe_prints_the_fully_connected_kernels(emulator_ready, files, capsys):
    from tfsparse.cli import bench_command

    bench_command.FLAGS.unparse_flags()  # defaults for every flag an earlier test in this worker set (--json, --compare)
    try:
        bench_command.FLAGS(["bench", "--target=arm-emu", "--runs=1", "--warmup=0"])
        assert bench_command.main(["bench", files["block4_fp32"]]) == 0
    finally:
        bench_command.FLAGS.unparse_flags()
    out = capsys.readouterr().out
    assert ("block4_fp32.tflite: FULLY_CONNECTED kernels on emulated aarch64 (tflite-runtime 2.14.0): op 0 "
            "builtin-sparse-1x4, op 1 builtin-sparse-1x4, op 2 builtin-dense (0 of 3 delegated to XNNPACK)") in out
    assert "XNNPACK sparse path: block4_fp32.tflite" in out

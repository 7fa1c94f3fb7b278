"""`tfsparse.sparse_fc.observe` without the emulator: the partition walk, the kernel names, the twin, the report."""

import base64
import json

import numpy as np
import pytest
from tensorflow.lite.python import schema_py_generated as fb

from tfsparse.emulator import fc_observation
from tfsparse.emulator.densify import (densify_all, fully_connected_dense_version, fully_connected_versions,
                                       sparse_tensor_names)
from tfsparse.emulator.errors import EmulatorError
from tfsparse.emulator.fc_observation import (FcKernel, FcObservation, FcWeight, decide_kernel, delegate_partitions,
                                              fc_weights, observe_fc, observed_kernels, unsupported_op)

UNKNOWN_FC_12 = ("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older version of this builtin "
                 "might be supported. Are you using an old TFLite binary with a newer model?\nRegistration failed.")

# What tflite-runtime 2.14 reports for a DENSIFY + FULLY_CONNECTED float32 MLP (one XNNPACK partition).
DENSIFY_MLP = [[0, "DENSIFY", [1], [2]], [1, "FULLY_CONNECTED", [0, 2, -1], [3]], [2, "DENSIFY", [4], [5]],
               [3, "FULLY_CONNECTED", [3, 5, -1], [6]], [4, "FULLY_CONNECTED", [6, 7, -1], [8]],
               [5, "DELEGATE", [0, 1, 4, 7], [8]]]
# ... and for a block-sparse one (FULLY_CONNECTED version 8: no partition at all).
BLOCK_MLP = [[0, "FULLY_CONNECTED", [0, 1, -1], [2]], [1, "FULLY_CONNECTED", [2, 3, -1], [4]],
             [2, "FULLY_CONNECTED", [4, 5, -1], [6]]]


def _fp32(op, **kwargs):
    return FcWeight(op, f"w{op}", "float32", "float32", **kwargs)


def _int8(op, **kwargs):
    return FcWeight(op, f"w{op}", "int8", "int8", **kwargs)


# The partition walk.

def test_one_partition_takes_the_densify_ops_and_stops_at_its_inputs():
    assert delegate_partitions(DENSIFY_MLP) == {5: (0, 1, 2, 3, 4)}


def test_no_delegate_node_no_partition():
    assert delegate_partitions(BLOCK_MLP) == {}
    assert delegate_partitions([]) == {}


def test_two_partitions_around_an_op_xnnpack_refused():
    ops = [[0, "FULLY_CONNECTED", [0, 1, -1], [2]], [1, "CUSTOM_OP", [2], [3]],
           [2, "FULLY_CONNECTED", [3, 4, 5], [6]], [3, "RELU", [6], [7]],
           [4, "DELEGATE", [0, 1], [2]], [5, "DELEGATE", [3, 4, 5], [7]]]
    assert delegate_partitions(ops) == {4: (0,), 5: (2, 3)}


def test_the_walk_stops_at_the_delegate_inputs_not_only_at_graph_inputs():
    # op 0 feeds the partition, which starts at its output (tensor 2): op 0 is not replaced.
    ops = [[0, "TANH", [0], [2]], [1, "FULLY_CONNECTED", [2, 3, -1], [4]], [2, "DELEGATE", [2, 3], [4]]]
    assert delegate_partitions(ops) == {2: (1,)}


def test_graph_inputs_stop_the_walk_and_shared_producers_are_counted_once():
    # A diamond: op 0 feeds ops 1 and 2, which op 3 adds; graph input 9 is not in the delegate's inputs.
    ops = [[0, "RELU", [9], [1]], [1, "FULLY_CONNECTED", [1, 5, -1], [2]], [2, "FULLY_CONNECTED", [1, 6, -1], [3]],
           [3, "ADD", [2, 3], [4]], [4, "DELEGATE", [5, 6], [4]]]
    assert delegate_partitions(ops, graph_inputs=[9]) == {4: (0, 1, 2, 3)}


def test_op_details_dicts_are_accepted():
    ops = [{"index": 0, "op_name": "FULLY_CONNECTED", "inputs": np.array([0, 1, -1]), "outputs": np.array([2])},
           {"index": 1, "op_name": "DELEGATE", "inputs": np.array([0, 1]), "outputs": np.array([2])}]
    assert delegate_partitions(ops) == {1: (0,)}


# The kernel names.

def test_densify_mlp_is_xnnpack_dense_with_its_partition():
    weights = [_fp32(1, densify=True), _fp32(3, densify=True), _fp32(4)]
    kernels = observed_kernels(weights, DENSIFY_MLP)
    assert [k.kernel for k in kernels] == ["xnnpack-dense"] * 3
    assert all(k.delegated and k.partition == 5 for k in kernels)
    assert "DELEGATE node 5" in kernels[0].reason and "DENSIFY" in kernels[0].encoding


def test_block_sparse_fp32_not_delegated_runs_the_1x4_kernel_and_the_dense_one_builtin_dense():
    weights = [_fp32(0, block=(1, 4), sparse=True, version=8), _fp32(1, block=(1, 4), sparse=True, version=8),
               _fp32(2, version=8)]
    kernels = observed_kernels(weights, BLOCK_MLP)
    assert [k.kernel for k in kernels] == ["builtin-sparse-1x4", "builtin-sparse-1x4", "builtin-dense"]
    assert not any(k.delegated for k in kernels)
    assert "version 8" in kernels[2].reason


def test_int8_blocks_need_16_inputs():
    weights = [_int8(0, block=(1, 16), sparse=True, version=8), _int8(1, block=(1, 4), sparse=True, version=8),
               _int8(2, version=8)]
    assert [k.kernel for k in observed_kernels(weights, BLOCK_MLP)] == [
        "builtin-sparse-1x16", "builtin-dense", "builtin-dense"]


@pytest.mark.parametrize("weight, why", [
    (_fp32(0, block=(1, 16), sparse=True), "reads 1x4 blocks"),
    (_fp32(0, block=(4, 1), sparse=True), "reads 1x4 blocks"),
    (_int8(0, sparse=True), "no blocks"),
    (FcWeight(0, "w", "int8", "float32", block=(1, 16), sparse=True), "hybrid"),
    (FcWeight(0, "w", "float16", "float16", block=(1, 4), sparse=True), "no builtin sparse kernel for float16"),
])
def test_sparse_weights_no_builtin_sparse_kernel_reads_are_builtin_dense(weight, why):
    kernel, reason = decide_kernel(weight, delegated=False)
    assert kernel == "builtin-dense" and why in reason


def test_float32_csr_read_by_the_op_is_the_random_sparse_loop():
    kernel, reason = decide_kernel(_fp32(0, sparse=True), delegated=False)
    assert kernel == "builtin-random-sparse" and "sparse (no blocks) float32" in reason


def test_delegated_wins_whatever_the_weight():
    assert decide_kernel(_fp32(0, block=(1, 4), sparse=True), delegated=True)[0] == "xnnpack-dense"


def test_unknown_fully_connected_version_is_unsupported_for_the_ops_concerned():
    weights = [FcWeight(0, "w0", "int8", "float32", version=12), FcWeight(1, "w1", "int8", "float32", version=12)]
    kernels = observed_kernels(weights, [], error=UNKNOWN_FC_12)
    assert [k.kernel for k in kernels] == ["unsupported", "unsupported"]
    assert "version 12" in kernels[0].reason and not kernels[0].delegated


def test_a_load_error_about_another_op_leaves_the_fully_connected_unobserved():
    error = "Didn't find op for builtin opcode 'GELU' version '9'. An older version might be supported."
    kernels = observed_kernels([_fp32(0)], [], error=error)
    assert kernels[0].kernel is None and "GELU" in kernels[0].reason
    assert observed_kernels([_fp32(0)], [], error="boom")[0].reason == "not observed: the file fails to load (boom)"


def test_an_op_that_fails_to_invoke_is_unsupported_and_the_others_are_named_from_the_nodes():
    error = ("tensorflow/lite/kernels/fully_connected.cc:1072 Unsupported sparse fully-connected weight format.\n"
             "Node number 1 (FULLY_CONNECTED) failed to invoke.")
    weights = [_fp32(0, block=(1, 4), sparse=True, version=8), _fp32(1, block=(1, 16), sparse=True, version=8),
               _fp32(2, version=8)]
    kernels = observed_kernels(weights, BLOCK_MLP, error=error)
    assert [k.kernel for k in kernels] == ["builtin-sparse-1x4", "unsupported", "builtin-dense"]
    assert kernels[1].reason.startswith("the op fails to invoke: tensorflow/lite/kernels/fully_connected.cc:1072 "
                                        "Unsupported sparse fully-connected weight format; weight block-sparse 1x16")


def test_a_failure_to_prepare_before_any_node_list_leaves_the_others_unobserved():
    error = "fully_connected.cc:300 filter->params.zero_point != 0\nNode number 0 (FULLY_CONNECTED) failed to prepare."
    kernels = observed_kernels([_int8(0, block=(1, 16), sparse=True), _int8(1)], [], error=error)
    assert [k.kernel for k in kernels] == ["unsupported", None]


def test_wrong_outputs_mark_only_the_sparse_kernels():
    weights = [_int8(1, block=(1, 16), sparse=True, version=8), _int8(2, version=8)]
    ops = [[0, "QUANTIZE", [0], [1]], [1, "FULLY_CONNECTED", [1, 2, -1], [3]], [2, "FULLY_CONNECTED", [3, 4, -1], [5]]]
    kernels = fc_observation.mark_wrong_outputs(observed_kernels(weights, ops), 0.08)
    assert [k.wrong_outputs for k in kernels] == [True, False]
    assert "WRONG OUTPUTS" in kernels[0].reason
    observation = FcObservation("m.tflite", kernels=kernels)
    assert observation.kernel_names == ("builtin-sparse-1x16", "builtin-dense")
    assert observation.effective_kernel_names == ("unsupported", "builtin-dense")
    assert "op 1 builtin-sparse-1x16 (WRONG OUTPUTS), op 2 builtin-dense" in str(observation)


def test_unsupported_op_parses_builtin_and_custom_ops():
    assert unsupported_op(UNKNOWN_FC_12) == ("FULLY_CONNECTED", 12)
    assert unsupported_op("Encountered unresolved custom op: MyOp.\nSee instructions") == ("MyOp", None)
    assert unsupported_op(None) is None and unsupported_op("bad file") is None


def test_a_node_list_of_another_file_is_refused():
    with pytest.raises(ValueError, match="op 0 is a FULLY_CONNECTED in the file but 'DENSIFY' in the node list"):
        observed_kernels([_fp32(0)], DENSIFY_MLP)
    with pytest.raises(ValueError, match="but missing in the node list"):
        observed_kernels([_fp32(9)], DENSIFY_MLP)


# The twin's FULLY_CONNECTED version.

def _fc(types, *, inputs=3, per_channel=False, **options):
    subgraph = fb.SubGraphT()
    subgraph.tensors = []
    for i, kind in enumerate(types):
        tensor = fb.TensorT()
        tensor.type = kind
        if i == 1 and per_channel:
            tensor.quantization = fb.QuantizationParametersT()
            tensor.quantization.scale = [0.1, 0.2]
        subgraph.tensors.append(tensor)
    op = fb.OperatorT()
    op.inputs = [0, 1, -1][:inputs]
    op.outputs = [2]
    op.builtinOptions = fb.FullyConnectedOptionsT()
    for name, value in options.items():
        setattr(op.builtinOptions, name, value)
    return subgraph, op


F32, I8, I16 = fb.TensorType.FLOAT32, fb.TensorType.INT8, fb.TensorType.INT16


@pytest.mark.parametrize("types, kwargs, version", [
    ((F32, F32, F32), {}, 1),
    ((I8, I8, I8), {}, 4),
    ((F32, I8, F32), {}, 3),
    ((F32, I8, F32), {"asymmetricQuantizeInputs": True}, 9),
    ((F32, I8, F32), {"per_channel": True}, 12),
    ((F32, F32, F32), {"keepNumDims": True}, 5),
    ((F32, F32, F32), {"inputs": 2}, 6),
    ((I16, I16, I16), {}, 7),
    ((F32, F32, F32), {"weightsFormat": fb.FullyConnectedOptionsWeightsFormat.SHUFFLED4x16INT8}, 2),
])
def test_fully_connected_dense_version_mirrors_the_converter(types, kwargs, version):
    assert fully_connected_dense_version(*_fc(types, **kwargs)) == version


def _block_mlp_content(tmp_path, *, blocks=4, units=64):
    """A float32 Dense(units) -> Dense(8) whose first kernel has 90% of its `blocks`-input blocks zero."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((units,)), keras.layers.Dense(units), keras.layers.Dense(8)])
    kernel = model.layers[0].kernel
    keep = np.random.default_rng(0).random((units // blocks, 1, units)) > 0.9
    kernel.assign(kernel.numpy() * np.repeat(keep, blocks, axis=1).reshape(units, units))
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return converter.convert()


@pytest.fixture(scope="module")
def block_content(tmp_path_factory):
    return _block_mlp_content(tmp_path_factory.mktemp("block"))


def test_twin_lowers_the_sparse_version_only_when_asked(block_content):
    assert fully_connected_versions(block_content) == [8]
    kept = densify_all(block_content)
    assert fully_connected_versions(kept) == [8] and sparse_tensor_names(kept) == []
    lowered = densify_all(block_content, lower_fc_version=True)
    assert fully_connected_versions(lowered) == [1] and sparse_tensor_names(lowered) == []
    # A file with nothing sparse and no version 8 is its own twin.
    assert densify_all(lowered, lower_fc_version=True) is lowered


def test_twin_computes_the_same(block_content):
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(1).random((1, 64)).astype("float32")
    results = []
    for content in (block_content, densify_all(block_content, lower_fc_version=True)):
        interpreter = Interpreter(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        results.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_fc_weights_reads_the_block_and_version(block_content):
    first, second = fc_weights(block_content)
    assert (first.op, first.block, first.sparse, first.densify, first.version) == (0, (1, 4), True, False, 8)
    assert first.encoding == "block-sparse 1x4 float32"
    assert (second.block, second.sparse, second.encoding) == (None, False, "dense float32")
    assert [w.block for w in fc_weights(densify_all(block_content, lower_fc_version=True))] == [None, None]


# observe_fc with a fake emulated run.

def _output(values):
    array = np.asarray(values, np.float32)
    return {"name": "out", "dtype": array.dtype.str, "shape": list(array.shape), "sha256": str(array.tobytes()),
            "base64": base64.b64encode(array.tobytes()).decode()}


def _fake_run(calls, models):
    def run(paths, **kwargs):
        calls.append((paths, kwargs))
        return {"runtime": "tflite-runtime 2.14.0", "machine": "aarch64", "models": models}

    return run


@pytest.fixture
def block_file(tmp_path, block_content):
    path = tmp_path / "block.tflite"
    path.write_bytes(block_content)
    return str(path)


def test_observe_fc_names_kernels_and_compares_with_the_twin(block_file, monkeypatch):
    from tfsparse.emulator import bench_runner

    calls = []
    models = [
        {"times_ms": [1.0, 1.0, 1.2], "outputs": [_output([1.0, 2.0])], "error": None,
         "ops": [[0, "FULLY_CONNECTED", [0, 1, -1], [2]], [1, "FULLY_CONNECTED", [2, 3, -1], [4]]]},
        {"times_ms": [4.0, 4.0, 4.4], "outputs": [_output([1.0, 2.00001])], "error": None,
         "ops": [[0, "FULLY_CONNECTED", [0, 1, -1], [2]], [1, "FULLY_CONNECTED", [2, 3, -1], [4]],
                 [2, "DELEGATE", [0, 1, 3], [4]]]},
    ]
    monkeypatch.setattr(bench_runner, "run_emulated", _fake_run(calls, models))
    observation = observe_fc(block_file, runs=3, warmup=0)
    (paths, kwargs), = calls
    assert paths[0] == block_file and kwargs["ops"] is True and kwargs["runs"] == 3
    assert observation.kernel_names == ("builtin-sparse-1x4", "builtin-dense")
    assert observation.twin_kernel_names == ("xnnpack-dense", "xnnpack-dense")
    assert observation.partitions == () and observation.twin_partitions == ((2, (0, 1)),)
    assert (observation.fc_versions, observation.twin_fc_versions) == ((8,), (1,))
    assert observation.speedup == pytest.approx(4.0)
    assert observation.outputs_agree and observation.max_abs_diff == pytest.approx(1e-5, rel=0.1)
    assert observation.tolerance == pytest.approx(2e-4, rel=1e-3)
    text = str(observation)
    assert text.startswith("block.tflite: FULLY_CONNECTED kernels on emulated aarch64 (tflite-runtime 2.14.0): "
                           "op 0 builtin-sparse-1x4, op 1 builtin-dense (0 of 2 delegated to XNNPACK)")
    assert "FULLY_CONNECTED version 8 -> 1): op 0 xnnpack-dense, op 1 xnnpack-dense (2 of 2 delegated" in text
    assert "speedup vs the twin: 4.00x (twin median 4 ms / file median 1 ms, 3 interleaved runs" in text
    assert "outputs agree" in text
    assert FcObservation.from_dict(json.loads(json.dumps(observation.to_dict()))) == observation


def test_observe_fc_outputs_that_differ_beyond_the_tolerance_disagree(block_file, monkeypatch):
    from tfsparse.emulator import bench_runner

    ops = [[0, "FULLY_CONNECTED", [0, 1, -1], [2]], [1, "FULLY_CONNECTED", [2, 3, -1], [4]]]
    models = [{"times_ms": [1.0], "outputs": [_output([0.0, 0.0])], "error": None, "ops": ops},
              {"times_ms": [2.0], "outputs": [_output([0.5, -0.2])], "error": None, "ops": ops}]
    monkeypatch.setattr(bench_runner, "run_emulated", _fake_run([], models))
    observation = observe_fc(block_file)
    assert observation.outputs_agree is False and observation.max_abs_diff == 0.5
    assert "outputs DISAGREE" in str(observation)


def test_observe_fc_reports_an_unknown_version_instead_of_failing(block_file, monkeypatch):
    from tfsparse.emulator import bench_runner

    unknown_fc_8 = UNKNOWN_FC_12.replace("'12'", "'8'")  # as a runtime older than FULLY_CONNECTED version 8 says
    models = [{"times_ms": [], "outputs": [], "error": unknown_fc_8, "ops": []},
              {"times_ms": [], "outputs": [], "error": UNKNOWN_FC_12, "ops": []}]
    monkeypatch.setattr(bench_runner, "run_emulated", _fake_run([], models))
    observation = observe_fc(block_file)
    assert observation.kernel_names == ("unsupported", "unsupported")
    assert observation.twin_kernel_names == (None, None)  # the twin has version 1: its error is not about it
    assert observation.speedup is None and observation.outputs_agree is None
    text = str(observation)
    assert "runtime error: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '8'\n" in text
    assert "speedup" not in text


def test_observe_fc_raises_other_load_errors(block_file, monkeypatch):
    from tfsparse.emulator import bench_runner

    models = [{"times_ms": [], "outputs": [], "error": "Model provided has model identifier 'xxxx'", "ops": []},
              {"times_ms": [1.0], "outputs": [], "error": None, "ops": []}]
    monkeypatch.setattr(bench_runner, "run_emulated", _fake_run([], models))
    with pytest.raises(EmulatorError, match="could not load .*block.tflite \\(it\\): Model provided"):
        observe_fc(block_file)


def test_observe_fc_without_fully_connected_runs_nothing(tmp_path, monkeypatch):
    import keras
    import tensorflow as tf

    from tfsparse.emulator import bench_runner

    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu")])
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    path = tmp_path / "relu.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved")).convert())
    monkeypatch.setattr(bench_runner, "run_emulated", lambda *a, **k: pytest.fail("ran the emulator"))
    observation = observe_fc(str(path))
    assert observation.kernels == () and str(observation) == "relu.tflite: no FULLY_CONNECTED op"


@pytest.mark.parametrize("kwargs, message", [
    ({"path": "model.h5"}, "Invalid value received for argument `path`. Expected the path of a .tflite file"),
    ({"path": 3}, "Invalid value received for argument `path`"),
    ({"threads": 0}, "Invalid value received for argument `threads`"),
    ({"runs": 0}, "Invalid value received for argument `runs`"),
    ({"warmup": -1}, "Invalid value received for argument `warmup`. Expected an integer >= 0"),
    ({"seed": 1.5}, "Invalid value received for argument `seed`"),
])
def test_observe_fc_checks_its_arguments(block_file, kwargs, message):
    kwargs = {"path": block_file, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", "\\(").replace(".", "\\.")):
        observe_fc(kwargs.pop("path"), **kwargs)


def test_observe_fc_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        observe_fc(tmp_path / "missing.tflite")


def test_lazy_entry_points():
    import tfsparse.emulator
    import tfsparse.sparse_fc

    assert tfsparse.sparse_fc.observe is observe_fc is tfsparse.emulator.observe_fc
    assert tfsparse.emulator.FcObservation is FcObservation
    with pytest.raises(AttributeError):
        tfsparse.sparse_fc.nothing  # pylint: disable=pointless-statement


# The emulated runner's "ops" mode, on the host with a fake interpreter.

class _FakeInterpreter:
    def __init__(self, model_path, num_threads):
        if "bad" in model_path:
            raise ValueError(UNKNOWN_FC_12)
        self.invokes = 0
        self.fails = "fails" in model_path

    def get_input_details(self):
        return [{"index": 0, "name": "x", "shape": np.array([1, 2]), "dtype": np.float32}]

    def get_output_details(self):
        return [{"index": 1, "name": "y"}]

    def resize_tensor_input(self, *args):
        pass

    def allocate_tensors(self):
        pass

    def set_tensor(self, index, value):
        pass

    def invoke(self):
        self.invokes += 1
        if self.fails:
            raise RuntimeError("Unsupported sparse fully-connected weight format.Node number 0 (FULLY_CONNECTED) "
                               "failed to invoke.")

    def get_tensor(self, index):
        return np.zeros((1, 2), np.float32)

    def _get_ops_details(self):  # pylint: disable=invalid-name
        return [{"index": 0, "op_name": "FULLY_CONNECTED", "inputs": np.array([0, 2, -1]), "outputs": np.array([1])},
                {"index": 1, "op_name": "DELEGATE", "inputs": np.array([0, 2]), "outputs": np.array([1])}]


def test_emulated_runner_reports_ops_and_load_errors(monkeypatch, capsys):
    from tfsparse.emulator import emulated_runner

    monkeypatch.setattr(emulated_runner, "Interpreter", _FakeInterpreter, raising=False)
    arguments = {"paths": ["good.tflite", "bad.tflite"], "threads": 1, "runs": 2, "warmup": 1, "seed": 0, "ops": True}
    assert emulated_runner.main(["runner", json.dumps(arguments)]) == 0
    good, bad = json.loads(capsys.readouterr().out.splitlines()[-1])["models"]
    assert good["ops"] == [[0, "FULLY_CONNECTED", [0, 2, -1], [1]], [1, "DELEGATE", [0, 2], [1]]]
    assert len(good["times_ms"]) == 2 and good["error"] is None and len(good["outputs"]) == 1
    assert bad == {"path": "bad.tflite", "times_ms": [], "outputs": [], "ops": [], "error": UNKNOWN_FC_12.strip()}
    del arguments["ops"]
    with pytest.raises(ValueError, match="version '12'"):  # without "ops", as the bench always did
        emulated_runner.main(["runner", json.dumps(arguments)])
    arguments.update(paths=["fails.tflite", "good.tflite"], ops=True)
    emulated_runner.main(["runner", json.dumps(arguments)])
    fails, good = json.loads(capsys.readouterr().out.splitlines()[-1])["models"]
    assert fails["error"].endswith("Node number 0 (FULLY_CONNECTED) failed to invoke.")
    assert (fails["times_ms"], fails["outputs"], len(fails["ops"])) == ([], [], 2) and len(good["times_ms"]) == 2
    arguments = {"paths": ["good.tflite"], "threads": 1, "runs": 1, "warmup": 0, "seed": 0}
    emulated_runner.main(["runner", json.dumps(arguments)])
    assert set(json.loads(capsys.readouterr().out.splitlines()[-1])["models"][0]) == {"path", "times_ms", "outputs"}


# The command line.

def test_bench_command_observes_fully_connected_only_on_arm_emu(monkeypatch):
    from tfsparse.bench import BenchResult, ModelTiming
    from tfsparse.cli import bench_command

    calls = []
    monkeypatch.setattr(fc_observation, "observe_fc",
                        lambda path, threads: calls.append(path) or FcObservation(path, kernels=_KERNELS(path)))
    result = BenchResult(models=(ModelTiming("a.tflite", (1.0,)), ModelTiming("a.tflite", (1.0,))), target="local",
                         threads=1, runs=1, warmup=0)
    assert bench_command.observe_fully_connected(result) == () and calls == []
    import dataclasses

    emulated = dataclasses.replace(result, target="arm-emu")
    assert bench_command.observe_fully_connected(emulated, observe=False) == ()
    observations = bench_command.observe_fully_connected(emulated, observe=None, threads=2)
    assert calls == ["a.tflite"] and [o.path for o in observations] == ["a.tflite"]


def _KERNELS(path):  # pylint: disable=invalid-name
    return (FcKernel(0, "xnnpack-dense", True, 1, "w", "dense float32", 1, "delegated to XNNPACK"),)


def test_bench_command_prints_and_dumps_the_fc_observation(monkeypatch, capsys, tmp_path):
    from tfsparse.bench import BenchResult, ModelTiming
    from tfsparse.cli import bench_command

    path = str(tmp_path / "m.tflite")
    result = BenchResult(models=(ModelTiming(path, (1.0,)),), target="arm-emu", threads=1, runs=1, warmup=0)
    monkeypatch.setattr(bench_command, "run", lambda *a, **k: result)
    monkeypatch.setattr(fc_observation, "observe_fc", lambda p, threads: FcObservation(p, kernels=_KERNELS(p)))
    try:
        bench_command.FLAGS(["bench", "--target=arm-emu", "--noobserve"])
        assert bench_command.main(["bench", path]) == 0
        assert "FULLY_CONNECTED kernels" not in capsys.readouterr().out
        bench_command.FLAGS.unparse_flags()
        bench_command.FLAGS(["bench", "--target=arm-emu", "--observe"])
        bench_command.main(["bench", path])
        assert "m.tflite: FULLY_CONNECTED kernels on emulated aarch64 (tflite-runtime): op 0 xnnpack-dense (1 of " \
               "1 delegated to XNNPACK)" in capsys.readouterr().out
        bench_command.FLAGS.unparse_flags()
        bench_command.FLAGS(["bench", "--target=arm-emu", "--json"])
        bench_command.main(["bench", path])
        config = json.loads(capsys.readouterr().out)
        assert [k["kernel"] for k in config["fc_observations"][0]["kernels"]] == ["xnnpack-dense"]
    finally:
        bench_command.FLAGS.unparse_flags()

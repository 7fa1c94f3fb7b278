"""GMP with `block_shape`: block-aligned masks on fully-connected kernels, and TFLite's block-sparse encoding."""

import json
import re
import tempfile

import keras
import numpy as np
import pytest

from tfsparse import blocks, masks
from tfsparse.backend_state import before_writes
from tfsparse.strategies.gmp import GMP
from tfsparse.training import make_strategy, parse_strategy_args

TFLITE_HERE = pytest.mark.tensorflow_only(
    "converts with tf.lite.TFLiteConverter from a SavedModel exported in this process; on JAX and PyTorch "
    "tfsparse.export converts in a TensorFlow subprocess (tests/deploy/test_export_other_backends.py)")


def _compiled(model):
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def _fit(model, gmp, *, epochs=2, extra=(), x=None):
    """Trains `model` (compiled here unless it is) on random regression data (16 steps per epoch)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, *model.input_shape[1:])).astype("float32") if x is None else x
    y = rng.normal(size=(len(x), *model.output_shape[1:])).astype("float32")
    model = model if model.compiled else _compiled(model)
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[gmp, *extra])
    return x


def _check_blocks(kernel, sizes, sparsity=None):
    """Asserts every block (`sizes[i]` consecutive entries along kernel axis i) is all zero or all kept.

    With `sparsity`, also that `round(sparsity * blocks)` blocks are zero. Returns `(zero blocks, blocks)`.
    Written from the orientation alone, independently of `tfsparse.blocks`.
    """
    nonzero = np.asarray(kernel) != 0
    split = [n for d, b in zip(nonzero.shape, sizes) for n in (d // b, b)]
    grouped = nonzero.reshape(split)
    inside = tuple(range(1, len(split), 2))
    whole, none = grouped.all(axis=inside), ~grouped.any(axis=inside)
    assert (whole | none).all(), f"{(~(whole | none)).sum()} blocks of {whole.size} are partly zero"
    if sparsity is not None:
        assert none.sum() == round(sparsity * none.size)
    return int(none.sum()), none.size


class _ZeroHistory(keras.callbacks.Callback):
    """Records, after every batch, which weights of `variables` are zero."""

    def __init__(self, variables):
        super().__init__()
        self.variables, self.zeros = variables, []

    def on_train_batch_end(self, batch, logs=None):
        before_writes(self.model)  # JAX: the fit's state into the variables before reading them
        self.zeros.append([keras.ops.convert_to_numpy(v) == 0 for v in self.variables])


def _mlp(inputs=32, hidden=32, outputs=16):
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(hidden, activation="relu", name="hidden"),
                             keras.layers.Dense(outputs, name="out")])


# ------------------------------------------------------------------ masks
@pytest.mark.parametrize("block_shape, block", [((1, 4), 4), ((1, 16), 16), ("fp32", 4), ("int8", 16)])
def test_dense_masks_are_whole_blocks_of_input_rows_with_exact_counts(block_shape, block):
    model = _mlp()
    gmp = GMP(target_sparsity=0.8, begin_step=0, end_step=12, frequency=4, block_shape=block_shape)
    history = _ZeroHistory([model.layers[0].kernel, model.layers[1].kernel])
    _fit(model, gmp, extra=[history])
    for layer in model.layers:
        kernel = layer.kernel.numpy()
        _check_blocks(kernel, (block, 1), sparsity=0.8)  # kernel[block*i:block*(i+1), j]
        mask = masks.get_mask(layer.kernel).numpy()
        np.testing.assert_array_equal(mask, kernel != 0)  # the mask is the same blocks
    for before, after in zip(history.zeros, history.zeros[1:]):  # masks only grow
        for zero_before, zero_after in zip(before, after):
            assert zero_after[zero_before].all()
    for step, sparsity in gmp.history:  # every update zeroes exactly round(s * blocks) blocks of each kernel
        blocks_total = sum(layer.kernel.shape[0] // block * layer.kernel.shape[1] for layer in model.layers)
        expected = sum(round(gmp.schedule.sparsity(step) * (layer.kernel.shape[0] // block * layer.kernel.shape[1]))
                       for layer in model.layers)
        assert sparsity == pytest.approx(expected / blocks_total)


def test_out_block_groups_outputs_too():
    model = _mlp(outputs=8)
    gmp = GMP(target_sparsity=0.75, end_step=8, frequency=4, block_shape=(2, 4))
    _fit(model, gmp)
    for layer in model.layers:
        _check_blocks(layer.kernel.numpy(), (4, 2), sparsity=0.75)


def test_einsum_dense_blocks_run_along_the_last_contracted_input_axis():
    inputs = keras.Input((6, 32))
    plain = keras.layers.EinsumDense("abc,cd->abd", output_shape=(6, 16), name="plain")  # kernel [c, d]
    heads = keras.layers.EinsumDense("abc,cde->abde", output_shape=(6, 2, 8), name="heads")  # kernel [c, d, e]
    merge = keras.layers.EinsumDense("abcd,dce->abe", output_shape=(6, 8), name="merge")  # kernel [d, c, e]
    x = heads(plain(inputs))
    outputs = merge(keras.layers.Permute((1, 3, 2))(x))  # [batch, 6, 8 (c), 2 (d)] -> contracts c and d
    model = keras.Model(inputs, outputs)
    gmp = GMP(target_sparsity=0.5, end_step=8, frequency=4, block_shape=(1, 2))
    _fit(model, gmp)
    _check_blocks(plain.kernel.numpy(), (2, 1), sparsity=0.5)
    _check_blocks(heads.kernel.numpy(), (2, 1, 1), sparsity=0.5)
    # merge's input is [..., c, d]: d (kernel axis 0) varies fastest in TFLite's flattened input.
    _check_blocks(merge.kernel.numpy(), (2, 1, 1), sparsity=0.5)
    assert blocks.kernel_layout(merge, merge.kernel) == blocks.KernelLayout((0, 1), (2,), in_axis=0, out_axis=2)


@pytest.mark.parametrize("scope", ["global", "erk", "latency"])
def test_pooled_scopes_zero_exactly_their_share_of_whole_blocks(scope):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(8)])
    gmp = GMP(target_sparsity=0.7, end_step=8, frequency=4, block_shape=(1, 4), scope=scope,
              max_layer_sparsity=0.9)
    _fit(model, gmp)
    counts = [_check_blocks(layer.kernel.numpy(), (4, 1)) for layer in model.layers]
    zeros, total = sum(z for z, _ in counts), sum(n for _, n in counts)
    assert zeros == round(0.7 * total)
    assert all(z <= 0.9 * n for z, n in counts)  # the cap counts blocks
    assert len({round(z / n, 6) for z, n in counts}) > 1  # the scope splits the target unevenly
    if scope == "erk":
        from tfsparse import allocation

        expected = allocation.erk([tuple(layer.kernel.shape) for layer in model.layers], 0.7, max_sparsity=0.9,
                                  block_size=4)
        assert [z / n for z, n in counts] == pytest.approx(expected)


def test_blocks_pruned_first_are_the_weakest():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, use_bias=False)])
    model.build()
    strengths = np.array([0.5, 3.0, 0.1, 2.0])  # one per block of 2 input rows
    model.layers[0].kernel.assign(np.repeat(strengths, 2)[:, None] * np.array([[1.0], [-1.0]] * 4))
    gmp = GMP(target_sparsity=0.5, end_step=1, frequency=1, block_shape=(1, 2))
    gmp.attach(model)
    (mask,) = gmp.compute_masks(1, gmp.weights)
    np.testing.assert_array_equal(mask[:, 0], np.repeat([0, 1, 0, 1], 2))


def test_a_block_pruned_before_stays_pruned_against_a_kept_block_of_exact_zeros():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, use_bias=False)])
    kernel = model.layers[0].kernel
    kernel.assign(np.array([[0.0], [0.0], [1.0], [1.0], [2.0], [2.0], [3.0], [3.0]]))  # block 0: pruned before
    gmp = GMP(target_sparsity=0.25, end_step=1, frequency=1, block_shape=(1, 2))
    gmp.attach(model)
    kernel.assign(np.array([[0.0], [0.0], [0.0], [0.0], [2.0], [2.0], [3.0], [3.0]]))  # block 1 trained to zero
    (mask,) = gmp.compute_masks(1, gmp.weights)
    np.testing.assert_array_equal(mask[:, 0], np.repeat([0, 1, 1, 1], 2))  # one zero block: the old one


def test_unstructured_default_is_unchanged():
    model = _mlp()
    model.build()
    default, explicit = GMP(target_sparsity=0.6, end_step=4), GMP(target_sparsity=0.6, end_step=4, block_shape=(1, 1))
    assert default.block_shape == (1, 1)
    default.attach(model)
    explicit.attach(model)
    for a, b in zip(default.compute_masks(4, default.weights), explicit.compute_masks(4, explicit.weights)):
        np.testing.assert_array_equal(a, b)
    assert not all(blocks.is_aligned(m, (4, 1)) for m in default.compute_masks(4, default.weights))


# ------------------------------------------------------------- validation
@pytest.mark.parametrize("block_shape", [(0, 4), (1,), (1, 4, 1), (1.0, 4), (True, 4), "fp16", 4, None, (1, -4)])
def test_bad_block_shapes_are_refused(block_shape):
    with pytest.raises(ValueError, match=r"argument `block_shape`. Expected a pair of positive integers "
                                         r"\(out_block, in_block\) in TFLite's \[out, in\] orientation"):
        GMP(target_sparsity=0.5, end_step=4, block_shape=block_shape)


def test_input_size_the_block_does_not_divide_is_refused_before_any_mask():
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(8, name="odd"), keras.layers.Dense(4)])
    gmp = GMP(target_sparsity=0.5, end_step=4, block_shape=(1, 4))
    message = ("Invalid value received for argument `block_shape`. Expected blocks that divide every selected kernel, "
               "but odd (Dense, sequential/odd/kernel) has input size 30 (kernel axis 0 of shape [30, 8]), not a "
               "multiple of 4. Exclude that layer (exclude=['odd']) or choose another block")
    with pytest.raises(ValueError, match=re.escape(message)):
        _fit(model, gmp)
    assert not any(masks.has_mask(v) for v in model.weights)
    _fit(model, GMP(target_sparsity=0.5, end_step=4, block_shape=(1, 4), exclude="odd"))  # the fix works
    assert blocks.is_aligned(model.layers[1].kernel.numpy(), (4, 1))
    with pytest.raises(ValueError, match=r"output size 4 .*not a multiple of 8"):
        GMP(target_sparsity=0.5, end_step=4, block_shape=(8, 4), layers=[model.layers[1].name]).attach(model)


def _cnn():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu", name="head")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))


def test_convolutions_are_refused_by_name_and_the_head_only_selection_works():
    model = _cnn()
    with pytest.raises(ValueError, match=re.escape(
            "Expected a block shape only on weights TFLite runs as FULLY_CONNECTED filters (Dense, EinsumDense), "
            "where blocks are sparse-encoded, but the selection also holds conv (Conv2D, conv/kernel): a Conv2D "
            "weight is not a FULLY_CONNECTED filter in TFLite. Give the block shape to the fully-connected layers "
            "only, e.g. layers=keras.layers.Dense")) as error:
        _fit(model, GMP(target_sparsity=0.5, end_step=4, block_shape=(1, 4)))
    assert "exclude=['conv']" in str(error.value)
    with pytest.raises(ValueError, match=r"conv \(Conv2D, conv/kernel\)"):
        GMP(target_sparsity=0.5, end_step=4, block_shape=(1, 4)).prepare(model)  # before compiling
    assert not any(masks.has_mask(v) for v in model.weights)
    # The usual fix: blocks on the Dense head, unstructured on the convolution (two strategies, disjoint weights).
    head = GMP(target_sparsity=0.8, end_step=8, frequency=4, block_shape=(1, 4), layers=keras.layers.Dense)
    convs = GMP(target_sparsity=0.5, end_step=8, frequency=4, layers=keras.layers.Conv2D)
    _fit(model, head, extra=[convs])
    for name in ("head", "logits"):
        _check_blocks(model.get_layer(name).kernel.numpy(), (4, 1), sparsity=0.8)
    assert masks.sparsity(model.get_layer("conv").kernel.numpy()) == pytest.approx(0.5, abs=1 / 216)


def test_batch_matmul_einsum_and_xnnpack_policy_are_refused():
    inputs = keras.Input((4, 8))
    layer = keras.layers.EinsumDense("abc,bcd->abd", output_shape=(4, 8), name="per_position")
    model = keras.Model(inputs, layer(inputs))
    with pytest.raises(ValueError, match=r"per_position \(EinsumDense, per_position/kernel\): its equation "
                                         r"'abc,bcd->abd' keeps kernel axis 'b' .*BATCH_MATMUL"):
        GMP(target_sparsity=0.5, end_step=4, block_shape=(1, 4)).attach(model)
    with pytest.raises(ValueError, match=r"argument `block_shape`. Expected \(1, 1\) with policy='xnnpack'"):
        GMP(target_sparsity=0.8, end_step=4, block_shape=(1, 4), policy="xnnpack")


# --------------------------------------------------------- serialization
def test_config_round_trips_through_json():
    gmp = GMP(target_sparsity=0.9, end_step=40, block_shape=(1, 16), scope="erk", layers=keras.layers.Dense)
    config = json.loads(json.dumps(gmp.get_config()))
    assert config["block_shape"] == [1, 16]
    clone = GMP.from_config(config)
    assert clone.block_shape == (1, 16) and clone.get_config() == gmp.get_config()
    assert GMP.from_config(GMP(target_sparsity=0.5, end_step=4, block_shape="fp32").get_config()).block_shape == (1, 4)
    legacy = {k: v for k, v in GMP(target_sparsity=0.5, end_step=4).get_config().items() if k != "block_shape"}
    assert GMP.from_config(legacy).block_shape == (1, 1)  # configs written before block_shape


@pytest.mark.parametrize("text, expected", [("block_shape=(1,4)", (1, 4)), ("block_shape=[1, 16]", (1, 16)),
                                            ("block_shape=int8,scope=global", (1, 16))])
def test_command_line_strategy_args(text, expected):
    gmp = make_strategy("gmp", target_sparsity=0.9, steps={"begin_step": 0, "end_step": 10, "frequency": 2},
                        **parse_strategy_args(text))
    assert gmp.block_shape == expected


@pytest.mark.filterwarnings("ignore:.*schedule ends at step:UserWarning")  # the first fit stops early on purpose
def test_keras_save_load_resume_keeps_whole_blocks(tmp_path):
    model = _mlp()
    config = dict(target_sparsity=0.9, begin_step=0, end_step=24, frequency=4, block_shape=(1, 4))
    x = _fit(model, GMP(**config), epochs=1)  # 16 steps of 24
    path = tmp_path / "blocked.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    old_zero = [layer.kernel.numpy() == 0 for layer in loaded.layers]
    for layer in loaded.layers:
        _check_blocks(layer.kernel.numpy(), (4, 1))
    resumed = GMP.from_config(json.loads(json.dumps(GMP(**config).get_config())))
    _fit(loaded, resumed, x=x)
    assert resumed.history[0][0] == 16
    for layer, zero in zip(loaded.layers, old_zero):
        kernel = layer.kernel.numpy()
        assert (kernel[zero] == 0).all()
        _check_blocks(kernel, (4, 1), sparsity=0.9)


# ------------------------------------------------------------------ MoE
@TFLITE_HERE
def test_moe_expert_input_kernels_take_blocks_and_convert_and_the_output_kernel_is_refused():
    tfsparse_moe = pytest.importorskip("tfsparse_moe")

    class PrunableMoE(tfsparse_moe.MoE):
        def get_prunable_weights(self):
            return [self.expert_kernel_in, self.expert_kernel_gate, self.expert_kernel_out]

    inputs = keras.Input((5, 16))
    moe = PrunableMoE(num_experts=4, hidden_units=8, top_k=2, activation="swiglu", name="moe")
    model = keras.Model(inputs, moe(inputs))
    with pytest.raises(ValueError, match=re.escape(
            "moe (PrunableMoE, moe/expert_kernel_out): expert_kernel_out [E, h, d] multiplies each expert's own "
            "hidden activations, so TFLite runs it as BATCH_MATMUL")) as error:
        _fit(model, GMP(target_sparsity=0.5, end_step=4, block_shape=(1, 4)))
    assert "exclude=['moe/expert_kernel_out']" in str(error.value)
    gmp = GMP(target_sparsity=0.75, end_step=8, frequency=4, block_shape=(1, 4), exclude="moe/expert_kernel_out")
    _fit(model, gmp)
    for kernel in (moe.expert_kernel_in, moe.expert_kernel_gate):  # [E, d, h]: blocks of 4 along d
        _check_blocks(kernel.numpy(), (1, 4, 1), sparsity=0.75)
    assert not masks.has_mask(moe.expert_kernel_out)
    # TFLite runs each as one FULLY_CONNECTED with the filter [E*h, d], stored 1x4 block-sparse.
    from tfsparse.deploy.sparse_format import decode_sparse

    ops, weights = _fully_connected_weights(_tflite(model))
    sparse = [(tensor, data) for tensor, data, _ in weights if tensor.sparsity is not None]
    assert "DENSIFY" not in ops and [_block_size(tensor) for tensor, _ in sparse] == [4, 4]
    filters = [k.numpy().transpose(1, 0, 2).reshape(16, 32).T for k in (moe.expert_kernel_in, moe.expert_kernel_gate)]
    decoded = [decode_sparse(tensor, data) for tensor, data in sparse]
    assert all(any(np.array_equal(d, f) for d in decoded) for f in filters)


# ------------------------------------------------------------- TFLite
def _tflite(model, *, int8=False, data=None):
    """`model` converted through a SavedModel with EXPERIMENTAL_SPARSITY (and full-integer int8 when asked)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        if int8:
            converter.optimizations.append(tf.lite.Optimize.DEFAULT)
            converter.representative_dataset = lambda: ([sample[None]] for sample in data[:64])
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.float32
        return converter.convert()


def _fully_connected_weights(content):
    """(op names, [(weight TensorT, its data, op version) of each FULLY_CONNECTED]) of a `.tflite`."""
    from tensorflow.lite.python import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(content, 0)
    names = {value: name for name, value in vars(fb.BuiltinOperator).items() if not name.startswith("_")}
    graph = model.subgraphs[0]
    ops, weights = [], []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        ops.append(names[max(code.builtinCode, code.deprecatedBuiltinCode)])
        if ops[-1] == "FULLY_CONNECTED":
            tensor = graph.tensors[op.inputs[1]]
            weights.append((tensor, model.buffers[tensor.buffer].data, code.version))
    return ops, weights


def _block_size(tensor):
    """The block size along the input of a sparse FULLY_CONNECTED weight, or `None` without blocks."""
    sparsity = tensor.sparsity
    if sparsity is None or sparsity.blockMap is None or not len(sparsity.blockMap):
        return None
    assert list(sparsity.blockMap) == [1]  # blocks along the input (filter axis 1)
    return int(sparsity.dimMetadata[-1].denseSize)


def _trained_mlp(**gmp_arguments):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(16)])
    x = _fit(model, GMP(target_sparsity=0.9, end_step=16, frequency=4, **gmp_arguments))
    return model, x


@TFLITE_HERE
def test_fp32_tflite_stores_1x4_block_sparse_fully_connected_weights():
    from tfsparse.deploy.sparse_format import decode_sparse

    model, _ = _trained_mlp(block_shape=(1, 4))
    ops, weights = _fully_connected_weights(_tflite(model))
    assert "DENSIFY" not in ops and len(weights) == 3
    for layer, (tensor, data, version) in zip(model.layers, weights):
        assert _block_size(tensor) == 4 and version == 8
        np.testing.assert_array_equal(decode_sparse(tensor, data), layer.kernel.numpy().T)  # filter [out, in]


@TFLITE_HERE
def test_int8_tflite_stores_1x16_block_sparse_fully_connected_weights():
    model, x = _trained_mlp(block_shape="int8")
    ops, weights = _fully_connected_weights(_tflite(model, int8=True, data=x))
    assert "DENSIFY" not in ops and len(weights) == 3
    assert [_block_size(tensor) for tensor, _, _ in weights] == [16, 16, 16]


@TFLITE_HERE
def test_unstructured_masks_of_the_same_sparsity_get_densify():
    model, _ = _trained_mlp()
    ops, weights = _fully_connected_weights(_tflite(model))
    assert ops.count("DENSIFY") == 3
    assert [_block_size(tensor) for tensor, _, _ in weights] == [None, None, None]

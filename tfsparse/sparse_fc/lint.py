"""`lint(path)`: which kernel runs each `FULLY_CONNECTED` of a `.tflite`, and why not the block-sparse one.

The prediction is for a *runtime* (`Runtime`), by default the one tfsparse
runs on ARM: tflite-runtime 2.14 on emulated aarch64 (`tfsparse emulator`),
whose XNNPACK delegate takes no int8 op. Every rule lives in `predict`; the
facts it reads come from the flatbuffer (`tfsparse.xnnpack.tflite_graph`).

What decides the kernel, read in LiteRT's `tflite/kernels/fully_connected.cc`
(`EvalFloat`, `EvalQuantized`, `EvalHybrid`, `Prepare`) and
`kernels/internal/optimized/sparse_ops/fully_connected.h`; tflite-runtime
2.14's binary holds the same error messages, and its 1x16 routine's
signature has no per-channel scale arguments:

- The weight must reach the op *sparse*: stored with TFLite's sparsity
  parameters and read by the op itself. A weight expanded by a `DENSIFY` op
  (or stored dense) is a dense weight to the kernel.
- Its first dimension (output rows) dense and the second compressed (CSR),
  and its index arrays within the input and output sizes; otherwise the op
  fails when invoked ("Unsupported/Invalid sparse fully-connected ...").
- float32 weights and inputs: three dimension levels with an inner block of
  4 along the input run the NEON 1x4 kernel (`builtin-sparse-1x4`); two
  levels (CSR, no blocks) run a scalar random-sparse loop
  (`builtin-random-sparse`); any other block size fails when invoked.
- int8 weights and inputs (full-integer): the weight's zero points must all
  be 0 (symmetric), or the op fails; an inner block of 16 runs the 1x16
  kernel (`builtin-sparse-1x16`); anything else (no blocks, 1x4) fails:
  there is no int8 random-sparse kernel. tflite-runtime 2.14's 1x16 kernel
  takes a single output scale: with per-channel weight scales it runs but
  its outputs are wrong (measured on emulated aarch64: argmax agreement
  with Keras 12%; per-tensor weights agree), so a per-channel weight counts
  as `unsupported` there.
- float inputs with int8 weights (dynamic-range "hybrid" quantization):
  the sparse hybrid kernel assumes 1x16 blocks and at most 255 blocks per
  row; TF 2.21 writes such ops as version 12, which tflite-runtime 2.14
  does not register (the interpreter refuses the file).
- Fused activation: NONE, RELU, RELU_N1_TO_1 or RELU6 (the op's Prepare
  refuses others outside the hybrid path).
- Not conditions: the batch size (the 1x4 kernel splits batches over
  threads, the 1x16 one runs them in one thread), `keep_num_dims`, and
  whether there is a bias.

Around the kernel:

- The converter (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`, TF's
  `dense_to_sparse.cc`) keeps a weight with under 30% zeros dense; above,
  it block-encodes it when more than 90% (float) or 80% (int8) of its zeros
  lie in whole aligned blocks of 4 (float) or 16 (int8) consecutive inputs
  (this module reports that share), else it stores it CSR behind a
  `DENSIFY` op, which runs dense.
- A block-sparse weight raises the `FULLY_CONNECTED` operator code to
  version 8, and the code (so the version) is shared by every
  `FULLY_CONNECTED` of the file. XNNPACK's delegate refuses exactly version
  8 (`xnnpack_delegate.cc`), so in such a file the dense
  `FULLY_CONNECTED`s run the builtin dense kernel too.
- float16 quantization with `EXPERIMENTAL_SPARSITY` can leave a block-sparse
  float16 weight behind a `DEQUANTIZE` op (no `DENSIFY`), which reads it as
  dense: tflite-runtime 2.14 crashes on such a file (measured).
- tflite-runtime 2.14's XNNPACK delegates no int8 op (measured: no
  `DELEGATE` node in int8 files), so int8 dense weights run builtin.

Example:

>>> import os, tempfile, keras, numpy as np
>>> import tfsparse
>>> from tfsparse.sparse_fc import lint
>>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32), keras.layers.Dense(4)])
>>> keep = np.repeat(np.random.default_rng(0).random((16, 32)) < 0.1, 4, axis=0)  # 1x4 blocks, 90% zeros
>>> _ = model.layers[0].kernel.assign(model.layers[0].kernel * keep)
>>> path = os.path.join(tempfile.mkdtemp(), "m.tflite")
>>> _ = tfsparse.export(model, path, target="sparse-fc", verify=False)
>>> report = lint(path)
>>> report.fires, [(v.kernel, v.version, v.encoding) for v in report.ops]
(True, [('builtin-sparse-1x4', 8, 'block-sparse'), ('builtin-dense', 8, 'dense')])
>>> report.ops[1].reasons[0].startswith("below 30% zeros")
True
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfsparse.errors import invalid_argument
from tfsparse.sparse_fc import kernels

MIN_SPARSITY = 0.3
"""The converter stores a weight with fewer zeros than this dense (`kMinSparsityLevel`)."""

BLOCK_RATIO = {"float": 0.9, "int8": 0.8}
"""The converter block-encodes a weight when block sparsity / sparsity exceeds this
(`kBlockOverRandomSparsityRatio`, `...Quant`): the share of its zeros in whole blocks."""

KERNEL_ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")
"""Fused activations the builtin kernel accepts outside the hybrid path (XNNPACK's are the same)."""

PADDING_NOTE = 0.1
"""A sparse weight whose stored blocks are more than this share zeros gets a note (unaligned mask)."""

_ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_HYBRID_MAX_BLOCKS = 255  # the hybrid kernel's ledger holds block counts and indices as uint8
DENSE, DENSIFY, BLOCK_SPARSE, RANDOM_SPARSE, NOT_CONSTANT = "dense", "densify", "block-sparse", "random-sparse", \
    "not constant"
ENCODINGS = (DENSE, DENSIFY, BLOCK_SPARSE, RANDOM_SPARSE, NOT_CONSTANT)
"""How a weight reaches its op: stored dense, expanded by `DENSIFY`, read sparse (blocked or not), computed."""


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What a runtime does with `FULLY_CONNECTED`: the facts `predict` needs.

    Attributes:
        name: The key in `RUNTIMES`.
        label: Its short name in reasons (`"tflite-runtime 2.14"`).
        description: One line for reports.
        max_fc_version: The newest `FULLY_CONNECTED` version its op resolver
            registers (a newer one makes the interpreter refuse the file).
        xnnpack: Whether it applies the XNNPACK delegate by default.
        xnnpack_int8: Whether that delegate takes int8 operators.
        xnnpack_refused_fc_versions: `FULLY_CONNECTED` versions XNNPACK
            refuses (8: block-sparse weights).
        sparse_int8_per_channel: Whether the int8 1x16 kernel honours
            per-channel weight scales.
    """

    name: str
    label: str
    description: str
    max_fc_version: int
    xnnpack: bool = True
    xnnpack_int8: bool = False
    xnnpack_refused_fc_versions: tuple = (8,)
    sparse_int8_per_channel: bool = False


TFLITE_RUNTIME_2_14_AARCH64 = Runtime(
    name="tflite-runtime-2.14-aarch64",
    label="tflite-runtime 2.14",
    description="tflite-runtime 2.14 on aarch64 (tfsparse's emulated ARM target; XNNPACK without int8)",
    max_fc_version=11,  # measured: version 8 loads, version 12 is refused ("Didn't find op for builtin opcode")
    xnnpack=True,
    xnnpack_int8=False,  # measured: no DELEGATE node in full-integer int8 files
    xnnpack_refused_fc_versions=(8,),  # measured: no DELEGATE node at all in a version-8 MLP
    sparse_int8_per_channel=False,  # its 1x16 kernel takes one output multiplier; measured wrong outputs
)
"""tflite-runtime 2.14 (`pip install tflite-runtime==2.14.0`, aarch64), as `tfsparse emulator setup` installs it."""

RUNTIMES = {TFLITE_RUNTIME_2_14_AARCH64.name: TFLITE_RUNTIME_2_14_AARCH64}
"""The known runtimes by name; pass a `Runtime` of your own for others."""

DEFAULT_RUNTIME = TFLITE_RUNTIME_2_14_AARCH64.name


def get_runtime(runtime) -> Runtime:
    """A `Runtime`, or the one of `RUNTIMES` called `runtime`."""
    if isinstance(runtime, Runtime):
        return runtime
    if isinstance(runtime, str) and runtime in RUNTIMES:
        return RUNTIMES[runtime]
    raise invalid_argument("runtime", f"a tfsparse.sparse_fc.Runtime or one of {sorted(RUNTIMES)}", runtime)


@dataclasses.dataclass(frozen=True)
class FcFacts:
    """What the flatbuffer says about one `FULLY_CONNECTED` (the input of `predict`).

    Attributes:
        index: The operator index in the main subgraph.
        weight: The name of the stored weight tensor.
        shape: The weight's shape, `(outputs, inputs)`.
        dtype: The element type of the weight the op reads (`float32`,
            `int8`, ...).
        input_dtype: The element type of the op's input activations.
        version: The op's `FULLY_CONNECTED` version (shared by the file).
        encoding: One of `ENCODINGS`.
        block: The block size along the input for a block-sparse weight.
        block_map: The weight's block map (`[1]`: blocks along the input).
        levels: The sparse weight's dimension formats, outer first
            (`"dense"`/`"csr"`), block levels included.
        sparsity: The weight's share of zeros (of its int8 values when
            quantized), or `None` when it is not a constant.
        needed_block: The block size of the sparse kernel for this weight
            type (4 float, 16 int8).
        zeros_in_blocks: The share of the zeros lying in whole aligned
            blocks of `needed_block` inputs, or `None`.
        stored_zero_share: For a sparse weight, the share of its stored
            values that are zeros (padding of unaligned blocks).
        scales: How many quantization scales the weight has (0: float).
        zero_points_zero: Whether every weight zero point is 0.
        activation: The fused activation's name.
        stored_dtype: The element type of the stored constant, when a
            `DEQUANTIZE` op converts it (e.g. `float16`), else `None`.
    """

    index: int
    weight: str
    shape: tuple
    dtype: str
    input_dtype: str
    version: int
    encoding: str
    block: int | None = None
    block_map: tuple = ()
    levels: tuple = ()
    sparsity: float | None = None
    needed_block: int = 4
    zeros_in_blocks: float | None = None
    stored_zero_share: float | None = None
    scales: int = 0
    zero_points_zero: bool = True
    activation: str = "NONE"
    stored_dtype: str | None = None

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8", "int16", "int4")

    @property
    def hybrid(self) -> bool:
        """Float activations with quantized weights (dynamic-range quantization)."""
        return self.quantized and self.input_dtype in ("float32", "float16")


@dataclasses.dataclass
class FcVerdict:
    """The predicted kernel of one `FULLY_CONNECTED`, with the facts and reasons.

    Attributes:
        index, weight, shape, dtype, input_dtype, version, encoding, block,
            sparsity, zeros_in_blocks: As `FcFacts`.
        kernel: One of `tfsparse.sparse_fc.kernels.KERNELS`.
        reasons: Why the kernel is not a block-sparse one (empty when it is).
        notes: Remarks that do not change the kernel (e.g. padded blocks).
    """

    index: int
    weight: str
    shape: tuple
    dtype: str
    input_dtype: str
    version: int
    encoding: str
    block: int | None
    sparsity: float | None
    zeros_in_blocks: float | None
    kernel: str
    reasons: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    @property
    def sparse(self) -> bool:
        """Whether a block-sparse kernel runs it."""
        return self.kernel in kernels.SPARSE_KERNELS

    @property
    def encoding_label(self) -> str:
        return f"{self.encoding} 1x{self.block}" if self.encoding == BLOCK_SPARSE else self.encoding

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["shape"] = list(self.shape)
        return data


@dataclasses.dataclass
class FcLintReport:
    """The verdicts of every `FULLY_CONNECTED` of a file for one runtime.

    Attributes:
        path: The file (`"<bytes>"` for content).
        runtime: The `Runtime` predicted for.
        ops: One `FcVerdict` per `FULLY_CONNECTED`, in op order.
    """

    path: str
    runtime: Runtime
    ops: list

    @property
    def fires(self) -> bool:
        """Whether at least one `FULLY_CONNECTED` takes a block-sparse kernel."""
        return any(v.sparse for v in self.ops)

    def count(self, kernel) -> int:
        """How many `FULLY_CONNECTED`s run `kernel`."""
        return sum(v.kernel == kernel for v in self.ops)

    @property
    def reasons(self) -> list:
        """`"op N (weight): reason"` for every op not run sparse (a line for a file without any)."""
        if not self.ops:
            return ["no FULLY_CONNECTED operator in the file"]
        return [f"op {v.index} ({v.weight.split(';')[0]}): {reason}" for v in self.ops for reason in v.reasons]

    def to_dict(self) -> dict:
        return {"path": self.path, "runtime": self.runtime.name, "fires": self.fires,
                "kernels": {k: self.count(k) for k in kernels.KERNELS if self.count(k)},
                "reasons": self.reasons, "ops": [v.to_dict() for v in self.ops]}

    def __str__(self) -> str:
        sparse = sum(v.sparse for v in self.ops)
        verdict = (f"FIRES ({sparse} of {len(self.ops)} sparse)" if self.fires else
                   "DOES NOT FIRE (no FULLY_CONNECTED runs a block-sparse kernel)")
        lines = [f"Block-sparse FULLY_CONNECTED kernels for {self.path}: {verdict}",
                 f"  runtime: {self.runtime.description}"]
        if not self.ops:
            return "\n".join(lines + ["  no FULLY_CONNECTED operator in the file"])
        rows = [("op", "weight", "shape", "type", "v", "encoding", "zeros", "in blocks", "kernel")]
        for v in self.ops:
            rows.append((str(v.index), _short(v.weight), "x".join(map(str, v.shape)),
                         v.dtype if v.dtype == v.input_dtype else f"{v.dtype}/{v.input_dtype}", str(v.version),
                         v.encoding_label, _percent(v.sparsity), _percent(v.zeros_in_blocks), v.kernel))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        table = ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(table[0])
        for v, line in zip(self.ops, table[1:]):
            lines.append(line)
            lines += [f"      - {reason}" for reason in v.reasons]
            lines += [f"      note: {note}" for note in v.notes]
        return "\n".join(lines)


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _short(name, width=40) -> str:
    name = name.split(";")[0]
    return name if len(name) <= width else "..." + name[-(width - 3):]


def zeros_in_aligned_blocks(weight, block) -> float | None:
    """The share of `weight`'s zeros lying in whole aligned blocks of `block` consecutive inputs.

    `weight` is `[outputs, inputs]` (TFLite's layout; a Keras Dense kernel
    transposed). A last, partial block counts as a block padded with zeros.
    Returns `None` for a weight without zeros.

    >>> import numpy as np
    >>> w = np.ones((2, 8)); w[0, :4] = 0; w[1, 2:6] = 0
    >>> zeros_in_aligned_blocks(w, 4)  # row 0's zeros fill a block, row 1's straddle two
    0.5
    """
    w = np.asarray(weight)
    w = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(1, -1)
    zeros = w == 0
    total = int(zeros.sum())
    if not total:
        return None
    pad = (-w.shape[1]) % block
    padded = np.pad(zeros, ((0, 0), (0, pad)), constant_values=True)
    whole = padded.reshape(w.shape[0], -1, block).all(axis=2)
    in_blocks = int((np.repeat(whole, block, axis=1)[:, :w.shape[1]] & zeros).sum())
    return in_blocks / total


def predict(facts: FcFacts, runtime: Runtime) -> tuple:
    """The kernel that `runtime` runs for one `FULLY_CONNECTED`: `(kernel, reasons, notes)`.

    Every rule of the linter is here (see the module docstring for where
    each comes from); `reasons` say why the kernel is not a block-sparse one.
    """
    f, notes = facts, []
    if f.version > runtime.max_fc_version:
        kind = (" (dynamic-range \"hybrid\" quantization: float inputs, int8 weights)" if f.hybrid else "")
        return kernels.UNSUPPORTED, [
            f"version {f.version}{kind} is not supported by {runtime.label}: its "
            f"FULLY_CONNECTED goes up to version {runtime.max_fc_version}, so the interpreter refuses the file; "
            "export full-integer int8 (target='sparse-fc-int8', with representative data) or float32 "
            "(target='sparse-fc')"], notes
    if not f.hybrid and f.activation not in KERNEL_ACTIVATIONS:
        return kernels.UNSUPPORTED, [f"fused activation {f.activation}: the builtin kernel accepts only "
                                     f"{', '.join(KERNEL_ACTIVATIONS)}"], notes
    if f.encoding in (BLOCK_SPARSE, RANDOM_SPARSE):
        return _sparse_weight(f, runtime, notes)
    return _dense_weight(f, runtime, notes)


def _fix(block) -> str:
    return f"mask whole blocks of {block} consecutive inputs (GMP(block_shape=(1, {block})))"


def _sparse_weight(f, runtime, notes):
    """A weight the op reads sparse: a sparse kernel, or a failure."""
    if f.stored_dtype is not None:
        return kernels.UNSUPPORTED, [
            f"a DEQUANTIZE op reads the sparse-encoded {f.stored_dtype} weight as if it were dense (TF's float16 "
            "quantization with EXPERIMENTAL_SPARSITY writes this): the interpreter reads past the data (measured: "
            "tflite-runtime 2.14 crashes); convert without float16 quantization (target='sparse-fc')"], notes
    if f.stored_zero_share is not None and f.stored_zero_share > PADDING_NOTE:
        notes.append(f"{f.stored_zero_share:.1%} of the stored values are zeros: the mask is not aligned to the "
                     f"1x{f.block or 1} blocks, which then carry zeros (align it to store and compute less)")
    if len(f.levels) < 2 or f.levels[:2] != ("dense", "csr"):
        return kernels.UNSUPPORTED, [f"sparse format {'/'.join(f.levels)}: the kernel needs dense rows and "
                                     "CSR columns and fails when invoked"], notes
    if f.encoding == BLOCK_SPARSE and tuple(f.block_map) != (1,):
        return kernels.UNSUPPORTED, [f"blocks along dimension {list(f.block_map)}: the kernels assume blocks along "
                                     "the input (block map [1]) and would compute wrong results"], notes
    if f.hybrid:
        if f.encoding == BLOCK_SPARSE and f.block == 16 and f.shape[1] <= 16 * _HYBRID_MAX_BLOCKS:
            return kernels.BUILTIN_SPARSE_1X16, [], notes
        return kernels.UNSUPPORTED, ["the sparse hybrid kernel assumes 1x16 blocks and at most "
                                     f"{_HYBRID_MAX_BLOCKS} blocks per row: this weight would give wrong results"], \
            notes
    if f.dtype == "float32" and f.input_dtype == "float32":
        if f.encoding == RANDOM_SPARSE:
            return kernels.BUILTIN_RANDOM_SPARSE, [
                "stored sparse without blocks: the builtin scalar random-sparse loop runs it, not the 1x4 "
                f"kernel; {_fix(4)}"], notes
        if f.block == 4:
            return kernels.BUILTIN_SPARSE_1X4, [], notes
        return kernels.UNSUPPORTED, [f"float32 1x{f.block} blocks: the float kernel takes 1x4 blocks only and "
                                     "fails when invoked"], notes
    if f.dtype == "int8" and f.input_dtype == "int8":
        if not f.zero_points_zero:
            return kernels.UNSUPPORTED, ["asymmetric int8 weights (a zero point is not 0): the sparse int8 kernel "
                                         "needs symmetric weights and fails when invoked"], notes
        if f.encoding == BLOCK_SPARSE and f.block == 16:
            if f.scales > 1 and not runtime.sparse_int8_per_channel:
                return kernels.UNSUPPORTED, [
                    f"per-channel weight scales ({f.scales}): {runtime.label}'s 1x16 kernel "
                    "applies one scale to every row, so it runs but its outputs are wrong (measured); export "
                    "with target='sparse-fc-int8' (per-tensor weights)"], notes
            return kernels.BUILTIN_SPARSE_1X16, [], notes
        layout = f"1x{f.block} blocks" if f.encoding == BLOCK_SPARSE else "no blocks"
        return kernels.UNSUPPORTED, [f"int8 needs 1x16 blocks (stored with {layout}): there is no other sparse "
                                     "int8 kernel, so the op fails when invoked; " + _fix(16)], notes
    return kernels.UNSUPPORTED, [f"no sparse kernel for {f.dtype} weights with {f.input_dtype} inputs: the op "
                                 "fails or computes wrong results"], notes


def _dense_weight(f, runtime, notes):
    """A weight the op reads dense: why no sparse kernel, and XNNPACK or the builtin dense kernel."""
    reasons = []
    kind = "int8" if f.quantized else "float"
    ratio = BLOCK_RATIO[kind]
    share = ("" if f.zeros_in_blocks is None else
             f"{f.zeros_in_blocks:.0%} of its zeros lie in aligned 1x{f.needed_block} blocks, the converter needs "
             f"more than {ratio:.0%}")
    if f.encoding == NOT_CONSTANT:
        reasons.append("the weight is computed at run time (not a constant): no sparse encoding")
    elif f.stored_dtype is not None:
        reasons.append(f"stored as {f.stored_dtype} and expanded to {f.dtype} by DEQUANTIZE: the op reads a dense "
                       "weight (no sparse kernel sees it)")
    elif f.dtype not in ("float32", "int8"):
        reasons.append(f"{f.dtype} weights: no block-sparse kernel (float32 1x4 or int8 1x16 only)")
    elif f.encoding == DENSIFY:
        reasons.append(f"DENSIFY: the converter did not find aligned 1x{f.needed_block} blocks ({share}); "
                       + ("int8 needs 1x16 blocks; " if kind == "int8" else "") + _fix(f.needed_block))
    elif f.sparsity is not None and f.sparsity < MIN_SPARSITY:
        reasons.append(f"below 30% zeros ({f.sparsity:.1%}): the converter keeps such weights dense; prune it "
                       f"further, in 1x{f.needed_block} blocks")
    elif f.zeros_in_blocks is not None and f.zeros_in_blocks > ratio:
        reasons.append(f"stored dense with {f.sparsity:.1%} zeros in aligned 1x{f.needed_block} blocks: "
                       "converted without tf.lite.Optimize.EXPERIMENTAL_SPARSITY, or re-encoded dense; export "
                       f"with target='{'sparse-fc-int8' if kind == 'int8' else 'sparse-fc'}'")
    else:
        reasons.append(f"stored dense with {f.sparsity:.1%} zeros, not in aligned 1x{f.needed_block} blocks ({share}"
                       "; without blocks the converter uses DENSIFY, which runs dense and which tfsparse stores dense "
                       f"where that is not smaller); {'int8 needs 1x16 blocks; ' if kind == 'int8' else ''}"
                       + _fix(f.needed_block))
    refusals = []
    if not runtime.xnnpack:
        refusals.append("the runtime applies no XNNPACK delegate")
    if f.version in runtime.xnnpack_refused_fc_versions:
        refusals.append(f"dense weight, but the file's FULLY_CONNECTED version {f.version} (the op code is shared "
                        "with its block-sparse ones) makes XNNPACK refuse it")
    if (f.quantized or f.input_dtype in ("int8", "uint8", "int16")) and not runtime.xnnpack_int8:
        refusals.append(f"{runtime.label}'s XNNPACK delegates no int8 op")
    if f.encoding == NOT_CONSTANT:
        refusals.append("XNNPACK needs a constant weight")
    if refusals:
        reasons.append("; ".join(refusals) + ": it runs the builtin dense kernel")
        return kernels.BUILTIN_DENSE, reasons, notes
    return kernels.XNNPACK_DENSE, reasons, notes


def fc_facts(graph, op) -> FcFacts:
    """Reads the `FcFacts` of the `FULLY_CONNECTED` `op` of a `TfliteGraph`."""
    weight_input = op.inputs[1]
    source, encoding, dequantized = weight_input, DENSE, False
    producer = graph.producer.get(source)
    while producer is not None and producer.name in ("DENSIFY", "DEQUANTIZE"):
        if producer.name == "DENSIFY":
            encoding = DENSIFY
        dequantized |= producer.name == "DEQUANTIZE"
        source = producer.inputs[0]
        producer = graph.producer.get(source)
    tensor = graph.tensors[source]
    value = graph.constant(weight_input) if producer is None else None
    if value is None:
        encoding = NOT_CONSTANT
    dtype = graph.dtype(weight_input)
    stored_dtype = graph.dtype(source) if dequantized else None
    input_dtype = graph.dtype(op.inputs[0])
    block, block_map, levels, stored_zero_share = None, (), (), None
    if tensor.sparsity is not None:
        sparsity_params = tensor.sparsity
        levels = tuple("dense" if int(d.format) == 0 else "csr" for d in sparsity_params.dimMetadata or [])
        block_map = tuple(int(b) for b in (sparsity_params.blockMap if sparsity_params.blockMap is not None else ()))
        if encoding == DENSE:
            encoding = BLOCK_SPARSE if block_map else RANDOM_SPARSE
            if block_map:
                block = int(sparsity_params.dimMetadata[-1].denseSize)
            data = graph.model.buffers[tensor.buffer].data
            if data is not None and len(data):
                from tfsparse.deploy.sparse_format import DTYPES

                stored = np.frombuffer(np.asarray(data, np.uint8).tobytes(), DTYPES[tensor.type])
                stored_zero_share = float(np.mean(stored == 0)) if stored.size else None
    quantized = dtype in ("int8", "uint8", "int16", "int4")
    needed = kernels.BLOCK_SHAPES["int8" if quantized else "float32"][1]
    sparsity = zeros_in_blocks = None
    shape = tuple(int(d) for d in tensor.shape) if tensor.shape is not None else ()
    if value is not None:
        value = np.asarray(value)
        shape = tuple(value.shape)
        sparsity = float(np.mean(value == 0)) if value.size else 0.0
        zeros_in_blocks = zeros_in_aligned_blocks(value, needed) if value.ndim >= 1 and value.size else None
    quantization = graph.tensors[weight_input].quantization
    if quantization is None or quantization.scale is None:
        quantization = tensor.quantization
    scales = 0 if quantization is None or quantization.scale is None else len(quantization.scale)
    zero_points = [] if quantization is None or quantization.zeroPoint is None else list(quantization.zeroPoint)
    options = op.options
    activation = _ACTIVATION_NAMES.get(int(getattr(options, "fusedActivationFunction", 0) or 0), "UNKNOWN")
    name = tensor.name.decode("utf-8", "replace") if isinstance(tensor.name, bytes) else str(tensor.name)
    return FcFacts(index=op.index, weight=name, shape=shape, dtype=dtype, input_dtype=input_dtype,
                   version=op.version, encoding=encoding, block=block, block_map=block_map, levels=levels,
                   sparsity=sparsity, needed_block=needed, zeros_in_blocks=zeros_in_blocks,
                   stored_zero_share=stored_zero_share, scales=scales,
                   zero_points_zero=all(int(z) == 0 for z in zero_points), activation=activation,
                   stored_dtype=stored_dtype)


def lint(path_or_bytes, *, runtime=DEFAULT_RUNTIME) -> FcLintReport:
    """Predicts the kernel of every `FULLY_CONNECTED` of a `.tflite` on `runtime`.

    Args:
        path_or_bytes: A `.tflite` path, or the file's bytes.
        runtime: A `Runtime`, or the name of one in `RUNTIMES`. Defaults to
            `"tflite-runtime-2.14-aarch64"`, the runtime of tfsparse's
            emulated ARM target (XNNPACK delegate without int8).

    Returns:
        An `FcLintReport`: a `FcVerdict` per op (`kernel`, `reasons`),
        `fires`, `count(kernel)`, a printable table and `to_dict()`.

    Raises:
        ValueError: if the file is missing, not a flatbuffer or truncated,
            or `runtime` is unknown.
    """
    from tfsparse.xnnpack.tflite_graph import TfliteGraph

    spec = get_runtime(runtime)
    graph = TfliteGraph.load(path_or_bytes)
    where = "<bytes>" if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
    verdicts = []
    for op in graph.ops:
        if op.name != "FULLY_CONNECTED":
            continue
        facts = fc_facts(graph, op)
        kernel, reasons, notes = predict(facts, spec)
        verdicts.append(FcVerdict(index=facts.index, weight=facts.weight, shape=facts.shape, dtype=facts.dtype,
                                  input_dtype=facts.input_dtype, version=facts.version, encoding=facts.encoding,
                                  block=facts.block, sparsity=facts.sparsity, zeros_in_blocks=facts.zeros_in_blocks,
                                  kernel=kernel, reasons=list(reasons), notes=list(notes)))
    return FcLintReport(where, spec, verdicts)

"""Block-sparse FULLY_CONNECTED on emulated aarch64: TFLite's builtin 1x4 / 1x16 kernels against XNNPACK dense.

Writes (or replaces) the "Block-sparse FULLY_CONNECTED on emulated aarch64"
section of BENCHMARKS.md. Run from the repository root:

    python tools/bench_sparse_fc.py [--models=mlp,moe,cnn] [--sparsities=0.7,0.8,0.9] [--threads=1,4] [--runs=20]
    python tools/bench_sparse_fc.py --quick      # small widths, 90% only, 1 thread, 3 runs: a smoke run
    python tools/bench_sparse_fc.py --skip_accuracy --skip_variants --models=cnn   # rerun one speed table
    python tools/bench_sparse_fc.py --render_only   # measure nothing: header and summary from the kept tables

Three parts, each a table with the command that produced it:

1. Speed, per model (an MLP 784-1024-1024-10, the `tfsparse-moe` reference
   text model, a CNN whose Dense head holds most of the MACs) and sparsity s:
   - fp32: GMP (`block_shape=(1, 4)`, `target_sparsity=s`, `begin_step=0`,
     `end_step=K`, `frequency=1`) driven by K + 1 `model.fit` steps on
     synthetic data at batch 2 (latency depends on where the zeros are, not
     on accuracy), `tfsparse.finalize`, exported twice: `target="dense"`
     (XNNPACK dense) and `target="sparse-fc"`.
   - int8: the same from the same initial weights with `block_shape=(1, 16)`,
     exported `target="sparse-fc-int8"`; its dense twin is the same file with
     the weights stored dense and `FULLY_CONNECTED` at the dense version
     (`tfsparse.emulator.densify.densify_all(..., lower_fc_version=True)`,
     what `tfsparse.sparse_fc.observe` compares with).
   - The four files timed interleaved in one emulated process per thread
     count (`tfsparse.emulator.bench_runner.run_emulated`); the kernel each `FULLY_CONNECTED` of the sparse
     files ran (`tfsparse.sparse_fc.observe(...).effective_kernel_names`)
     against the linter's prediction (`tfsparse.sparse_fc.lint`); the share
     f of the file's MACs in the `FULLY_CONNECTED`s that ran a block-sparse
     kernel and the Amdahl bound `1 / (1 - sum_i f_i * s_i)`.
2. The linter against the observation on variants of a small MLP built with
   numpy masks (aligned, shifted, below 30% zeros, unstructured, int8 1x16,
   int8 1x4, per-channel int8, hybrid, mixed dense + sparse).
3. Accuracy on Fashion-MNIST with a short budget (`--epochs` of Adam): the
   MLP dense, GMP 1x4 at 80% and 90%, unstructured GMP 90%, and dense MLPs
   narrowed to about the non-zero weights of the block-sparse ones; their
   files timed interleaved on the emulated target (fp32, 1 thread).

Only this tool's section is rewritten: the tables measured replace theirs
(same heading), the others are kept, and the summary at the top is
re-rendered from the numbers in the tables the section then holds.

Example (the kernel list format):

>>> kernel_list(["builtin-sparse-1x4", "builtin-sparse-1x4", "builtin-dense"])
'2x builtin-sparse-1x4, 1x builtin-dense'
>>> round(amdahl(((0.5, 0.9), (0.25, 0.5))), 3)
2.353
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import platform
import re
import sys
import tempfile
import textwrap
import time
import warnings

import numpy as np

try:  # imported from the repository root (pytest, `python -m tools.bench_sparse_fc`)
    from tools.benchmarks_md import BENCHMARKS, parse_list, read_section, subsections, write_section
except ImportError:  # run as `python tools/bench_sparse_fc.py`: tools/ is on sys.path
    from benchmarks_md import BENCHMARKS, parse_list, read_section, subsections, write_section

SECTION = "Block-sparse FULLY_CONNECTED on emulated aarch64"
EMULATED = "Emulated (qemu) ratios overstate real devices"
SUMMARY = "Where block-sparse FULLY_CONNECTED is faster, and where not"
VARIANTS = "The linter's prediction against the observed kernel"
ACCURACY = "Accuracy on Fashion-MNIST with a short budget"
MODEL_KEYS = ("mlp", "moe", "cnn")
BATCH = 2
DEFAULTS = {"sparsities": "0.7,0.8,0.9", "threads": "1,4", "runs": 20, "warmup": 2, "gmp_steps": 10, "epochs": 5,
            "train_limit": 0, "variant_runs": 20, "accuracy_runs": 20}
QUICK = {"sparsities": "0.9", "threads": "1", "runs": 3, "warmup": 1, "gmp_steps": 4, "epochs": 1,
         "train_limit": 3000, "variant_runs": 3, "accuracy_runs": 3}
#: What each file of a speed-table row is, in notes.
ROLES = {"fp32_sparse": "fp32 block-sparse file", "fp32_dense": "fp32 dense file",
         "int8_sparse": "int8 block-sparse file", "int8_dense": "int8 dense twin"}
#: Speed-table columns (the summary reads the tables back by these names).
SPEED_COLUMNS = ("sparsity", "weights", "threads", "dense ms", "block-sparse ms", "speedup vs its dense",
                 "vs fp32 XNNPACK dense", "block-sparse bytes (vs fp32 dense)", "its dense bytes",
                 "observed kernels (block-sparse file)", "lint = observed", "outputs = twin",
                 "f: MACs in sparse FCs", "Amdahl bound")
VARIANT_COLUMNS = ("variant", "file", "weights in the file", "predicted (lint)", "observed (emulated runtime)", "agree",
                   "speedup vs twin", "outputs = twin")
ACCURACY_COLUMNS = ("model", "non-zero FC weights", "test accuracy", "vs dense", "fp32 file bytes",
                    "emulated ms, 1 thread", "speedup vs dense", "kernels (lint)")


def _log(message):
    print(f"[bench_sparse_fc {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------------------------- formatting
def kernel_list(names) -> str:
    """Run-length list of kernel names in op order: `'2x builtin-sparse-1x4, 1x builtin-dense'`."""
    runs = []
    for name in names:
        name = name or "not observed"
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return ", ".join(f"{count}x {name}" for name, count in runs) or "no FULLY_CONNECTED"


def amdahl(shares) -> float:
    """`1 / (1 - sum f_i * s_i)` for `(f_i, s_i)` pairs: the MAC share and sparsity of each sparse op."""
    saved = sum(f * s for f, s in shares)
    return math.inf if saved >= 1 else 1.0 / (1.0 - saved)


def _ratio(slow, fast):
    return None if slow is None or fast is None else slow.median_ms / fast.median_ms


def _ms(timing) -> str:
    if timing is None:
        return "did not run"
    return f"{_num(timing.median_ms)} ({_num(timing.min_ms)}-{_num(timing.max_ms)})"


def _num(value) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _x(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _yes(value) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def _pct(value) -> str:
    return f"{value:.1%}"


def _cores(value) -> str:
    return "?" if value is None else f"{value:.1f}"


# ----------------------------------------------------------------------------------------------- models
@dataclasses.dataclass
class ModelSpec:
    """One model of the speed tables: how to build it, which kernels take blocks, its inputs."""

    key: str
    title: str
    build: object  # () -> keras.Model
    block_layers: object  # GMP `layers` selector
    data: object  # (n, rng) -> inputs
    representative: object  # () -> calibration inputs for int8
    num_classes: int
    context: object = contextlib.nullcontext  # () -> context manager around pruning and export
    note: str = ""


def _random_float(shape):
    return lambda n, rng: rng.random((n, *shape), dtype=np.float32)


def mlp_model(widths, inputs=784, classes=10, name="mlp"):
    import keras

    layers = [keras.Input((inputs,), name="pixels")]
    layers += [keras.layers.Dense(w, activation="relu", name=f"dense_{i}") for i, w in enumerate(widths)]
    layers.append(keras.layers.Dense(classes, name="logits"))
    return keras.Sequential(layers, name=name)


def cnn_model(filters, widths, classes=10):
    import keras

    x = inputs = keras.Input((28, 28, 1), name="image")
    for i, count in enumerate(filters):
        x = keras.layers.Conv2D(count, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, width in enumerate(widths):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(x), name="cnn")


def moe_sizes(quick) -> dict:
    """`moe_text_classifier` arguments: the plugin's reference defaults, or a small model for `--quick`."""
    return {"sequence_length": 16, "num_experts": 4, "hidden_units": 32} if quick else {}


@contextlib.contextmanager
def moe_prunable():
    """Opts the `MoE` layer's kernels in to pruning (`tfsparse.register_prunable`) for the `with` block only.

    The registry is process-wide; it is restored afterwards so that a caller
    in the same process (a test) sees the plugin's defaults again.
    """
    import tfsparse
    from tfsparse import prunable
    from tfsparse_moe.layer import MoE

    saved = list(prunable._REGISTRY)  # pylint: disable=protected-access
    tfsparse.register_prunable(MoE, weights=["router_kernel", "expert_kernel_in", "expert_kernel_gate",
                                             "expert_kernel_out"])
    try:
        yield
    finally:
        prunable._REGISTRY[:] = saved  # pylint: disable=protected-access


def model_spec(key, quick) -> ModelSpec:
    """The `ModelSpec` of `--models` key `key` (small widths with `quick`)."""
    import keras

    if key == "mlp":
        widths = (128, 128) if quick else (1024, 1024)
        return ModelSpec(key, f"MLP 784-{'-'.join(map(str, widths))}-10 (fp32 input 784)",
                         lambda: mlp_model(widths), keras.layers.Dense, _random_float((784,)),
                         lambda: np.random.default_rng(1).random((64, 784), dtype=np.float32), 10)
    if key == "cnn":
        filters, widths = ((8, 16), (128, 128)) if quick else ((32, 64), (1024, 1024))
        title = (f"CNN 28x28x1: conv {'-'.join(map(str, filters))} (3x3, max-pool), Dense "
                 f"{'-'.join(map(str, widths))}-10")
        return ModelSpec(key, title, lambda: cnn_model(filters, widths), keras.layers.Dense,
                         _random_float((28, 28, 1)),
                         lambda: np.random.default_rng(1).random((64, 28, 28, 1), dtype=np.float32), 10,
                         note="block masks on the Dense head only; the convolutions stay dense (XNNPACK)")
    if key == "moe":
        from tfsparse_moe.layer import MoE
        from tfsparse_moe.text_model import moe_text_classifier

        sizes = moe_sizes(quick)
        vocabulary, ids = _moe_data(sizes.get("sequence_length"))
        length = ids.shape[1]
        config = {"vocab_size": vocabulary, **sizes}
        probe = moe_text_classifier(**config)
        moe = next(layer for layer in probe.layers if isinstance(layer, MoE))
        attention = next(layer for layer in probe.layers if isinstance(layer, keras.layers.MultiHeadAttention))
        title = (f"MoE text classifier ({len([lay for lay in probe.layers if isinstance(lay, MoE)])} blocks of "
                 f"{attention.num_heads}-head attention + MoE, {moe.num_experts} experts top-{moe.top_k}, width "
                 f"{probe.get_layer('embedding').embed_dim}, expert hidden {moe.hidden_units}, "
                 f"{length} tokens, vocabulary {vocabulary})")
        del probe
        return ModelSpec(key, title, lambda: moe_text_classifier(**config),
                         [keras.layers.EinsumDense, MoE],
                         lambda n, rng: rng.integers(1, vocabulary, (n, length)).astype(np.int32),
                         lambda: ids[:64], 2, context=moe_prunable,
                         note=("block masks on the attention projections (EinsumDense) and the MoE router and "
                               "expert input kernels; the embeddings, expert_kernel_out (a BATCH_MATMUL) and the "
                               "logits Dense stay dense (its 32x2 kernel has 4 blocks of 1x16: 90% of them is all "
                               "of it)"))
    raise ValueError(f"unknown model {key!r}")


def _moe_data(sequence_length=None):
    """`(vocabulary size, int32 ids of real training snippets)`: the plugin's data, or random ids without it."""
    from tfsparse_moe.reference import SEQUENCE_LENGTH, encoded_reviews

    length = sequence_length or SEQUENCE_LENGTH
    try:
        vocabulary, (x_train, _), _ = encoded_reviews(sequence_length=length)
        return vocabulary.size, np.asarray(x_train[:256], np.int32)
    except (FileNotFoundError, OSError) as error:
        _log(f"moe: no movie-review data ({error}); vocabulary 8000 and random ids")
        return 8000, np.random.default_rng(1).integers(1, 8000, (256, length)).astype(np.int32)


def block_selection(model, layers, block_shape):
    """`(exclude, refused)`: the weights of `layers` that cannot take `block_shape` (regexes of their paths),
    and `"path: why"` for each."""
    from tfsparse import blocks
    from tfsparse.selection import select_weights

    exclude, refused = [], []
    for weight in select_weights(model, layers=layers):
        try:
            blocks.plan([weight], block_shape)
        except ValueError as error:
            exclude.append(re.escape(weight.path))
            reason = str(error).split(": ", 1)[-1].split(". Give the block shape")[0]
            refused.append(f"{weight.path}: {reason}")
    return exclude, refused


def prune_blocks(spec, block_shape, sparsity, steps, seed=0):
    """Builds `spec`'s model from seed `seed` and runs GMP with `block_shape` for `steps` + 1 fit steps."""
    import keras
    import tfsparse

    keras.utils.set_random_seed(seed)
    model = spec.build()
    exclude, refused = block_selection(model, spec.block_layers, block_shape)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    x = spec.data(BATCH * (steps + 1), rng)
    y = rng.integers(0, spec.num_classes, len(x))
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=sparsity, begin_step=0, end_step=steps, frequency=1,
                                       block_shape=block_shape, layers=spec.block_layers, exclude=exclude or None)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=[gmp])
    return tfsparse.finalize(model), refused


# ----------------------------------------------------------------------------------------------- files
@contextlib.contextmanager
def _recorded(notes, prefix):
    """Turns the warnings of the block into notes (first line each): the tool must not fail on them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            line = str(warning.message).strip().splitlines()[0]
            note = f"{prefix}: {line}"
            if note not in notes:
                notes.append(note)


def export(model, path, target, notes, *, representative_data=None, allow_ineligible=False, label=None):
    """`tfsparse.export`, retried with `allow_ineligible=True` (noted) when a gated target refuses, and with
    `verify=False` (noted) when LiteRT's outputs differ from Keras beyond the export's tolerance; notes start
    with `label` (default: the file name)."""
    import tfsparse
    from tfsparse.deploy.errors import IneligibleError, VerificationError

    name = label or os.path.basename(path)
    kwargs = {"target": target, "representative_data": representative_data, "overwrite": True}
    if allow_ineligible:
        kwargs["allow_ineligible"] = True
    with _recorded(notes, name):
        try:
            return tfsparse.export(model, path, **kwargs)
        except IneligibleError as error:
            notes.append(f"{name}: `{target}` refused it ({error.reasons[0] if error.reasons else error}); "
                         "written with `allow_ineligible=True`")
            kwargs["allow_ineligible"] = True
            return tfsparse.export(model, path, **kwargs)
        except VerificationError as error:
            first = str(error).splitlines()[0].split(" Export with verify=False")[0]
            notes.append(f"{name}: written with `verify=False`: {first}")
            return tfsparse.export(model, path, verify=False, **kwargs)


def dense_twin(path, twin_path) -> str:
    """Writes `path` with its sparse weights stored dense and `FULLY_CONNECTED` at the dense version."""
    from tfsparse.emulator.densify import densify_all

    with open(path, "rb") as handle:
        content = handle.read()
    with open(twin_path, "wb") as handle:
        handle.write(densify_all(content, lower_fc_version=True))
    return twin_path


def _shape(graph, tensor):
    shape = graph.tensors[tensor].shape
    return [max(int(d), 1) for d in (shape if shape is not None else ())]


def op_macs(path) -> dict:
    """`{op index: MACs}` of the multiply-accumulating ops of a `.tflite` (batch 1): `FULLY_CONNECTED`,
    `CONV_2D`, `DEPTHWISE_CONV_2D`, `BATCH_MATMUL`."""
    from tfsparse.xnnpack.tflite_graph import TfliteGraph

    graph = TfliteGraph.load(path)
    macs = {}
    for op in graph.ops:
        if not op.outputs or op.outputs[0] < 0:
            continue
        output = math.prod(_shape(graph, op.outputs[0]))
        if op.name == "FULLY_CONNECTED":
            rows, cols = _shape(graph, op.inputs[1])[:2]
            macs[op.index] = output // max(rows, 1) * rows * cols
        elif op.name == "CONV_2D":
            _, height, width, channels = _shape(graph, op.inputs[1])
            macs[op.index] = output * height * width * channels
        elif op.name == "DEPTHWISE_CONV_2D":
            _, height, width, _ = _shape(graph, op.inputs[1])
            macs[op.index] = output * height * width
        elif op.name == "BATCH_MATMUL":
            left = _shape(graph, op.inputs[0])
            adjoint = bool(getattr(op.options, "adjX", False))
            macs[op.index] = output * (left[-2] if adjoint else left[-1])
    return macs


def sparse_shares(path, observation, report) -> tuple:
    """`((f_i, s_i), ...)` of the ops that ran a block-sparse kernel: MAC share of the file and zero share."""
    from tfsparse.sparse_fc import kernels

    macs = op_macs(path)
    total = sum(macs.values()) or 1
    sparsity = {v.index: v.sparsity or 0.0 for v in report.ops}
    effective = observation.effective_kernel_names
    return tuple((macs.get(k.op, 0) / total, sparsity.get(k.op, 0.0))
                 for k, name in zip(observation.kernels, effective) if name in kernels.SPARSE_KERNELS)


# ----------------------------------------------------------------------------------------------- speed
@dataclasses.dataclass
class Timing:
    """One interleaved run of the four files at `threads`."""

    threads: int
    fp32_sparse: object  # ModelTiming
    fp32_dense: object
    int8_sparse: object
    int8_dense: object
    busy: float | None = None


@dataclasses.dataclass
class FileCheck:
    """The block-sparse file of one precision: sizes, prediction, observation, Amdahl."""

    weights: str  # "fp32 1x4" / "int8 1x16"
    sparse_bytes: int
    dense_bytes: int  # its dense counterpart (fp32 dense file / int8 dense twin)
    fp32_dense_bytes: int
    predicted: tuple
    observed: tuple
    outputs_agree: bool | None
    shares: tuple  # ((f_i, s_i), ...)

    @property
    def agree(self) -> bool:
        return tuple(self.predicted) == tuple(self.observed)

    @property
    def mac_share(self) -> float:
        return sum(f for f, _ in self.shares)

    @property
    def bound(self) -> float:
        return amdahl(self.shares)


@dataclasses.dataclass
class SpeedResult:
    """What one (model, sparsity) measured."""

    sparsity: float
    fp32: FileCheck
    int8: FileCheck
    timings: list
    notes: list
    details: dict


def speed_rows(result) -> list:
    """The speed-table rows of one `SpeedResult`: `{column: text}` per (weights, threads)."""
    rows = []
    pairs = ((result.fp32, "fp32_sparse", "fp32_dense"), (result.int8, "int8_sparse", "int8_dense"))
    for check, sparse, dense in pairs:
        for timing in result.timings:
            mine, theirs, fp32 = getattr(timing, sparse), getattr(timing, dense), timing.fp32_dense
            rows.append({
                "sparsity": f"{result.sparsity:.0%}", "weights": check.weights, "threads": str(timing.threads),
                "dense ms": _ms(theirs), "block-sparse ms": _ms(mine),
                "speedup vs its dense": _x(_ratio(theirs, mine)), "vs fp32 XNNPACK dense": _x(_ratio(fp32, mine)),
                "block-sparse bytes (vs fp32 dense)":
                    f"{check.sparse_bytes} ({check.sparse_bytes / check.fp32_dense_bytes:.1%})",
                "its dense bytes": str(check.dense_bytes),
                "observed kernels (block-sparse file)": kernel_list(check.observed),
                "lint = observed": _yes(check.agree), "outputs = twin": _yes(check.outputs_agree),
                "f: MACs in sparse FCs": _pct(check.mac_share), "Amdahl bound": _x(check.bound)})
    return rows


def markdown_table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def measure_speed(spec, sparsity, args, directory) -> SpeedResult:
    """Prunes, exports, times and observes one (model, sparsity)."""
    from tfsparse.sparse_fc import lint, observe

    tag = f"{spec.key}_{round(100 * sparsity)}"
    notes, files = [], {}
    with spec.context():
        _log(f"{tag}: GMP 1x4 and 1x16 to {sparsity:.0%}, {args.gmp_steps + 1} fit steps each at batch {BATCH}")
        fp32_model, refused = prune_blocks(spec, (1, 4), sparsity, args.gmp_steps)
        notes += [f"not block-masked (1x4): {why}" for why in refused]
        int8_model, refused = prune_blocks(spec, (1, 16), sparsity, args.gmp_steps)
        notes += [f"not block-masked (1x16): {why}" for why in refused]
        path = lambda name: os.path.join(directory, f"{tag}_{name}.tflite")  # noqa: E731
        dense = export(fp32_model, path("fp32_dense"), "dense", notes, label=ROLES["fp32_dense"])
        files["fp32_sparse"] = export(fp32_model, path("fp32_sparse"), "sparse-fc", notes,
                                      label=ROLES["fp32_sparse"]).path
        int8 = export(int8_model, path("int8_sparse"), "sparse-fc-int8", notes,
                      representative_data=spec.representative(), label=ROLES["int8_sparse"])
    files["fp32_dense"], files["int8_sparse"] = dense.path, int8.path
    files["int8_dense"] = dense_twin(int8.path, path("int8_dense_twin"))
    order = ("fp32_sparse", "fp32_dense", "int8_sparse", "int8_dense")
    timings, details = [], {}
    for threads in args.threads:
        _log(f"{tag}: {threads} thread(s), {args.runs} interleaved runs of the 4 files")
        before = _cpu_jiffies()
        measured, details, errors = time_files([files[k] for k in order], threads=threads, runs=args.runs,
                                               warmup=args.warmup)
        timing = Timing(threads, *measured, busy=busy_cores(before, _cpu_jiffies()))
        for key, error in zip(order, errors):
            if error:
                note = f"the {ROLES[key]} did not run on the emulated runtime: {explain_failure(error)}"
                if note not in notes:
                    notes.append(note)
                    _log(f"{tag}: {note}")
        timings.append(timing)
        _log(f"{tag}: {threads} thread(s): fp32 sparse {_median(timing.fp32_sparse)} ms vs dense "
             f"{_median(timing.fp32_dense)} ms; int8 sparse {_median(timing.int8_sparse)} ms vs twin "
             f"{_median(timing.int8_dense)} ms ({_cores(timing.busy)} cores busy)")
    checks = []
    for key, weights in (("fp32_sparse", "fp32 1x4"), ("int8_sparse", "int8 1x16")):
        report = lint(files[key])
        observation = observe(files[key], threads=1, runs=3, warmup=1)
        if observation.error and not any(n.startswith(f"the {ROLES[key]} ") for n in notes):
            notes.append(f"the {ROLES[key]} did not run on the emulated runtime: {explain_failure(observation.error)}")
        dense_bytes = os.path.getsize(files["fp32_dense"] if key == "fp32_sparse" else files["int8_dense"])
        check = FileCheck(weights, os.path.getsize(files[key]), dense_bytes, os.path.getsize(files["fp32_dense"]),
                          tuple(v.kernel for v in report.ops), tuple(observation.effective_kernel_names),
                          observation.outputs_agree, sparse_shares(files[key], observation, report))
        checks.append(check)
        _log(f"{tag}: {weights}: observed {kernel_list(check.observed)}; lint {kernel_list(check.predicted)}; "
             f"f = {check.mac_share:.1%}, bound {check.bound:.2f}x")
    return SpeedResult(sparsity, checks[0], checks[1], timings, notes, details)


def time_files(paths, *, threads, runs, warmup):
    """Times `paths` interleaved on the emulated runtime: `(timings, details, errors)`, a timing `None` and its
    error set for a file that failed to load or run (the others are still timed)."""
    from tfsparse.bench.result import ModelTiming
    from tfsparse.emulator.bench_runner import run_emulated

    report = run_emulated(paths, threads=threads, runs=runs, warmup=warmup, ops=True)
    timings, errors = [], []
    for path, model in zip(paths, report["models"]):
        error = model.get("error")
        timings.append(None if error or not model.get("times_ms") else ModelTiming(path, tuple(model["times_ms"])))
        errors.append(error)
    details = {"runtime": report.get("runtime", "tflite-runtime"), "machine": f"{report.get('machine')} (qemu-user)"}
    return timings, details, errors


def _first_line(text) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return re.sub(r"\.(?=Node number)", ". ", line)[:240]


def explain_failure(error) -> str:
    """The runtime's error in one line, saying when the op that failed is not a `FULLY_CONNECTED` (the
    `sparse-fc*` targets' check covers only those)."""
    from tfsparse.emulator.fc_observation import failed_node

    text = _first_line(error).rstrip(".")
    node = failed_node(error)
    if node is not None and node[1] != "FULLY_CONNECTED":
        text += (f" (op {node[0]}, {node[1]}, is not a FULLY_CONNECTED: the export's check of the runtime covers "
                 "only those)")
    return text


def _median(timing) -> str:
    return "-" if timing is None else f"{timing.median_ms:.3g}"


def _cpu_jiffies():
    """(busy, total) CPU time of the whole machine from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(values) - values[3] - values[4], sum(values)


def busy_cores(before, after):
    """How many cores were busy on average between two `_cpu_jiffies()` samples (None if unknown)."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * os.cpu_count()


def render_speed(spec_title, results, command, args, seconds, note="") -> str:
    """The `### model` subsection of the speed results of one model."""
    busy = {}
    for result in results:
        for timing in result.timings:
            if timing.busy is not None:
                busy.setdefault(timing.threads, []).append(timing.busy)
    loads = "; ".join(f"{min(v):.1f}-{max(v):.1f} of {os.cpu_count()} cores busy during the {t}-thread runs"
                      for t, v in sorted(busy.items())) or "cores busy: unknown"
    details = results[0].details if results else {}
    rows = [row for result in results for row in speed_rows(result)]
    lines = [
        f"### {spec_title}",
        f"Measured with `{command}` on {time.strftime('%Y-%m-%d')} ({seconds / 60:.1f} min): GMP schedule K = "
        f"{args.gmp_steps} steps; {args.runs} timed runs per file after {args.warmup} warm-up, the four files of a "
        f"sparsity interleaved in one emulated process per thread count; {loads}; emulated runtime "
        f"{details.get('runtime', '?')} on {details.get('machine', '?')}. {EMULATED}."
        + (f" {note[0].upper()}{note[1:]}." if note else ""),
        "",
        markdown_table(SPEED_COLUMNS, rows),
    ]
    return "\n".join(lines + ([""] + grouped_notes(results) if any(r.notes for r in results) else [])) + "\n"


def grouped_notes(results) -> list:
    """`- s = 70%/80%: note` lines: each note once, with the sparsities it was made at."""
    where = {}
    for result in results:
        for note in dict.fromkeys(result.notes):
            where.setdefault(note, []).append(f"{result.sparsity:.0%}")
    return [f"- s = {'/'.join(sparsities)}: {note}" for note, sparsities in where.items()]


# ----------------------------------------------------------------------------------------------- variants
@dataclasses.dataclass
class VariantResult:
    name: str
    file: str
    encodings: tuple
    predicted: tuple
    observed: tuple
    speedup: float | None
    outputs_agree: bool | None
    note: str = ""

    @property
    def agree(self) -> bool:
        return tuple(self.predicted) == tuple(self.observed)


def _mask_blocks(model, block, fraction, *, layers, shift=0, seed=0):
    """Zeroes `fraction` of the blocks of `block` consecutive input rows of the kernels of the Dense `layers`
    (rolled by `shift` rows, so that they straddle the aligned blocks)."""
    rng = np.random.default_rng(seed)
    for i in layers:
        kernel = model.layers[i].kernel
        rows, cols = kernel.shape
        keep = np.repeat(rng.random((rows // block, cols)) >= fraction, block, axis=0)
        kernel.assign(kernel.numpy() * np.roll(keep, shift, axis=0))
    return model


def _mask_random(model, fraction, *, layers, seed=0):
    rng = np.random.default_rng(seed)
    for i in layers:
        kernel = model.layers[i].kernel
        kernel.assign(kernel.numpy() * (rng.random(kernel.shape) >= fraction))
    return model


#: Files the TFLite converter writes itself (no tfsparse re-encoding): `{how: description}`.
CONVERTED = {"hybrid": "tf.lite: Optimize.DEFAULT + EXPERIMENTAL_SPARSITY, no data (dynamic range)",
             "converter-int8": "tf.lite: full-integer int8 + EXPERIMENTAL_SPARSITY, float32 input/output"}


def convert_directly(model, path, how, calibration):
    """Writes `model` with the TFLite converter and EXPERIMENTAL_SPARSITY: dynamic-range ("hybrid") or
    full-integer int8 (calibrated on `calibration`), as the converter writes it."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="bench_sparse_fc_saved_") as saved:
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        if how == "converter-int8":
            converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(len(calibration)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.float32
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TF's calibrator uses the deprecated tf.lite.Interpreter
            content = converter.convert()
    with open(path, "wb") as handle:
        handle.write(content)
    return path


VARIANT_SIZES = (256, 256, 256, 10)


def variant_specs():
    """`(name, masking, how it is written)` of the linter variants on an MLP 256-256-256-10 (all three Dense
    layers masked unless said)."""
    every = (0, 1, 2)
    return [
        ("fp32, 1x4 blocks aligned, 80%", lambda m: _mask_blocks(m, 4, 0.8, layers=every), "sparse-fc"),
        ("fp32, 1x4 blocks shifted by 2 inputs (unaligned), 80%",
         lambda m: _mask_blocks(m, 4, 0.8, layers=every, shift=2), "sparse-fc"),
        ("fp32, 1x4 blocks aligned, 25% (below 30% zeros)", lambda m: _mask_blocks(m, 4, 0.25, layers=every),
         "sparse-fc"),
        ("fp32, unstructured 90% (DENSIFY)", lambda m: _mask_random(m, 0.9, layers=every), "sparse-fc"),
        ("int8, 1x16 blocks aligned, 80% (per-tensor weights)", lambda m: _mask_blocks(m, 16, 0.8, layers=every),
         "sparse-fc-int8"),
        ("int8, 1x4 blocks, 80% (DENSIFY, as the converter writes it)",
         lambda m: _mask_blocks(m, 4, 0.8, layers=every), "converter-int8"),
        ("int8, 1x4 blocks, 80% (not the 1x16 int8 block: tfsparse stores the weights dense)",
         lambda m: _mask_blocks(m, 4, 0.8, layers=every), "sparse-fc-int8"),
        ("int8, 1x16 blocks, 80%, per-channel weights (target `int8`)",
         lambda m: _mask_blocks(m, 16, 0.8, layers=every), "int8"),
        ("hybrid: dynamic-range int8 weights, float32 activations, 1x16 blocks, 80%",
         lambda m: _mask_blocks(m, 16, 0.8, layers=every), "hybrid"),
        ("mixed: first Dense fp32 1x4 at 90%, the others dense", lambda m: _mask_blocks(m, 4, 0.9, layers=(0,)),
         "sparse-fc"),
    ]


def measure_variants(args, directory) -> list:
    """Builds, lints and observes every variant of `variant_specs`."""
    import keras
    from tfsparse.sparse_fc import lint, observe

    results = []
    rng = np.random.default_rng(1)
    calibration = rng.random((64, VARIANT_SIZES[0]), dtype=np.float32)
    for index, (name, mask, how) in enumerate(variant_specs()):
        keras.utils.set_random_seed(0)
        model = mask(mlp_model(VARIANT_SIZES[1:-1], inputs=VARIANT_SIZES[0], classes=VARIANT_SIZES[-1]))
        path = os.path.join(directory, f"variant_{index}.tflite")
        notes = []
        if how in CONVERTED:
            convert_directly(model, path, how, calibration)
            written = CONVERTED[how]
        else:
            with _recorded(notes, "export"):
                import tfsparse

                kwargs = {"allow_ineligible": True} if how.startswith("sparse-fc") else {}
                tfsparse.export(model, path, target=how, overwrite=True,
                                representative_data=calibration if "int8" in how else None, **kwargs)
            written = f"`target=\"{how}\"`"
        report = lint(path)
        observation = observe(path, threads=1, runs=args.variant_runs, warmup=1)
        note = ""
        if observation.error:
            note = f"runtime: {_first_line(observation.error).split('. ')[0]}"
        elif any(k.wrong_outputs for k in observation.kernels):
            note = "ran a block-sparse kernel with WRONG outputs: counted as unsupported"
        result = VariantResult(name, written, tuple(v.encoding_label for v in report.ops),
                               tuple(v.kernel for v in report.ops),
                               tuple(observation.effective_kernel_names), observation.speedup,
                               observation.outputs_agree, note)
        results.append(result)
        _log(f"variant {name}: lint {kernel_list(result.predicted)}; observed {kernel_list(result.observed)}; "
             f"speedup {_x(result.speedup)}; outputs agree {_yes(result.outputs_agree)} {note}")
    return results


def render_variants(results, command, args, seconds) -> str:
    rows = [{"variant": r.name, "file": r.file, "weights in the file": kernel_list(r.encodings),
             "predicted (lint)": kernel_list(r.predicted),
             "observed (emulated runtime)": kernel_list(r.observed) + (f" ({r.note})" if r.note else ""),
             "agree": _yes(r.agree), "speedup vs twin": _x(r.speedup), "outputs = twin": _yes(r.outputs_agree)}
            for r in results]
    agree = sum(r.agree for r in results)
    sizes = "-".join(map(str, VARIANT_SIZES))
    return "\n".join([
        f"### {VARIANTS}",
        f"Measured with `{command}` on {time.strftime('%Y-%m-%d')} ({seconds / 60:.1f} min): an MLP {sizes} "
        "(ReLU), its Dense kernels masked with numpy (random blocks, seed 0), written by the target named (export "
        "with `allow_ineligible=True` where the target would refuse it) or by the TFLite converter itself. "
        "Predicted: `tfsparse.sparse_fc.lint(path)`; observed: `tfsparse.sparse_fc.observe(path, threads=1, "
        f"runs={args.variant_runs}).effective_kernel_names` (from the emulated runtime's nodes after delegation; "
        "a block-sparse kernel whose outputs disagree with the twin's counts as unsupported); speedup and "
        "outputs against the file's twin (same weights stored dense, `FULLY_CONNECTED` at the dense version, so "
        f"XNNPACK may take fp32), interleaved in one emulated process. {EMULATED}. "
        f"The prediction equals the observation for {agree} of {len(results)} variants.",
        "",
        markdown_table(VARIANT_COLUMNS, rows),
    ]) + "\n"


# ----------------------------------------------------------------------------------------------- accuracy
@dataclasses.dataclass
class AccuracyResult:
    name: str
    nonzeros: int
    accuracy: float
    file_bytes: int
    timing: object  # ModelTiming
    kernels: tuple


def _fc_nonzeros(model) -> int:
    import keras

    return sum(int(np.count_nonzero(layer.kernel.numpy())) for layer in model.layers
               if isinstance(layer, keras.layers.Dense))


def narrow_width(nonzeros, inputs=784, classes=10, multiple=16) -> int:
    """The hidden width h of an MLP inputs-h-h-classes with about `nonzeros` weights (a multiple of `multiple`).

    >>> narrow_width(0.1 * (784 * 1024 + 1024 * 1024 + 1024 * 10))
    192
    """
    b = inputs + classes
    width = (-b + math.sqrt(b * b + 4 * nonzeros)) / 2
    return max(multiple, int(round(width / multiple)) * multiple)


def pruning_schedule(steps, epochs) -> tuple:
    """`(begin_step, end_step)` of GMP in a run of `epochs` of `steps`: from the end of the first epoch to the
    start of the last (from 0 to 3/4 of the run when it has fewer than 3 epochs), so the masks are fixed before
    the run ends.

    >>> pruning_schedule(469, 5), pruning_schedule(24, 1)
    ((469, 1876), (0, 18))
    """
    total = steps * epochs
    if epochs >= 3:
        return steps, total - steps
    return 0, max(1, int(0.75 * total))


def measure_accuracy(args, directory) -> tuple:
    """Trains the MLP variants on Fashion-MNIST, exports and times them; `(results, facts)`."""
    import keras
    import tfsparse
    from tfsparse import data as datasets
    from tfsparse.emulator.bench_runner import run_arm_emu
    from tfsparse.sparse_fc import lint

    dataset = datasets.load("fashion_mnist", limit=args.train_limit or None)
    x_train = dataset.x_train.reshape(len(dataset.x_train), -1)
    x_test = dataset.x_test.reshape(len(dataset.x_test), -1)
    widths = (128, 128) if args.quick else (1024, 1024)
    batch = 128
    steps = math.ceil(len(x_train) / batch)
    total = steps * args.epochs
    begin, end = pruning_schedule(steps, args.epochs)
    frequency = max(1, (end - begin) // 30)
    facts = {"train": len(x_train), "test": len(x_test), "epochs": args.epochs, "batch": batch, "begin": begin,
             "end": end, "frequency": frequency, "widths": widths}
    plans = [("dense", widths, None, None)]
    plans += [(f"GMP 1x4 blocks, {s:.0%}", widths, s, (1, 4)) for s in args.accuracy_sparsities]
    plans.append((f"GMP unstructured, {max(args.accuracy_sparsities):.0%}", widths, max(args.accuracy_sparsities),
                  (1, 1)))
    trained = []
    for name, hidden, sparsity, block in plans:
        started = time.perf_counter()
        keras.utils.set_random_seed(0)
        model = mlp_model(hidden)
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        callbacks = []
        if sparsity is not None:
            callbacks.append(tfsparse.get_strategy("gmp")(target_sparsity=sparsity, begin_step=begin, end_step=end,
                                                         frequency=frequency, block_shape=block,
                                                         layers=keras.layers.Dense))
        model.fit(x_train, dataset.y_train, batch_size=batch, epochs=args.epochs, verbose=0, shuffle=True,
                  callbacks=callbacks)
        model = tfsparse.finalize(model) if sparsity is not None else model
        trained.append((name, model, "sparse-fc" if block == (1, 4) else "sparse" if block else "dense"))
        _log(f"accuracy: {name} trained in {time.perf_counter() - started:.0f} s")
    for sparsity in args.accuracy_sparsities:  # dense MLPs with about the non-zeros of the block-sparse ones
        nonzeros = _fc_nonzeros(next(m for n, m, _ in trained if n == f"GMP 1x4 blocks, {sparsity:.0%}"))
        width = narrow_width(nonzeros, multiple=4 if args.quick else 16)
        keras.utils.set_random_seed(0)
        model = mlp_model((width, width))
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(x_train, dataset.y_train, batch_size=batch, epochs=args.epochs, verbose=0, shuffle=True)
        trained.append((f"dense, narrower: 784-{width}-{width}-10 (~ non-zeros of {sparsity:.0%})", model, "dense"))
        _log(f"accuracy: narrow {width} trained")
    paths, entries = [], []
    for index, (name, model, target) in enumerate(trained):
        accuracy = float(model.evaluate(x_test, dataset.y_test, batch_size=512, verbose=0)[1])
        notes = []
        result = export(model, os.path.join(directory, f"accuracy_{index}.tflite"), target, notes,
                        representative_data=x_test[:64])
        paths.append(result.path)
        entries.append((name, _fc_nonzeros(model), accuracy, result.size_bytes,
                        tuple(v.kernel for v in lint(result.path).ops)))
        _log(f"accuracy: {name}: {accuracy:.4f}, {result.size_bytes} bytes")
    timings, _ = run_arm_emu(paths, threads=1, runs=args.accuracy_runs, warmup=args.warmup)
    results = [AccuracyResult(*entry[:4], timing, entry[4]) for entry, timing in zip(entries, timings)]
    return results, facts


def render_accuracy(results, facts, command, seconds) -> str:
    dense = results[0]
    rows = [{"model": r.name, "non-zero FC weights": f"{r.nonzeros:,}", "test accuracy": f"{r.accuracy:.2%}",
             "vs dense": "-" if r is dense else f"{100 * (r.accuracy - dense.accuracy):+.2f} pp",
             "fp32 file bytes": str(r.file_bytes), "emulated ms, 1 thread": _ms(r.timing),
             "speedup vs dense": _x(dense.timing.median_ms / r.timing.median_ms),
             "kernels (lint)": kernel_list(r.kernels)}
            for r in results]
    return "\n".join([
        f"### {ACCURACY}",
        f"Measured with `{command}` on {time.strftime('%Y-%m-%d')} ({seconds / 60:.1f} min): Fashion-MNIST, "
        f"{facts['train']} training images (flattened to 784), all {facts['test']} test images; MLP "
        f"784-{'-'.join(map(str, facts['widths']))}-10, {facts['epochs']} epochs of Adam (1e-3), batch "
        f"{facts['batch']}, seed 0 for every model. GMP on every Dense kernel from step {facts['begin']} to "
        f"{facts['end']} (masks updated every {facts['frequency']} steps), then fine-tuning with the masks fixed; "
        "the narrower dense MLPs are trained from scratch for the same epochs. Files: `target=\"sparse-fc\"` for "
        "the 1x4 models, `\"sparse\"` for the unstructured one (its weights stored sparse, expanded by `DENSIFY` "
        "at load, so XNNPACK runs them dense), `\"dense\"` for the dense ones; timed all together, interleaved, "
        "fp32, 1 thread. One seed: differences of about a point may be the seed's. " + EMULATED + ".",
        "",
        markdown_table(ACCURACY_COLUMNS, rows),
    ]) + "\n"


# ----------------------------------------------------------------------------------------------- summary
def parse_tables(text) -> list:
    """The markdown tables of `text`: a list of `[{column: cell}, ...]`."""
    tables, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].startswith("|") and index + 1 < len(lines) and lines[index + 1].startswith("|---"):
            header = [c.strip() for c in lines[index].strip().strip("|").split("|")]
            rows, index = [], index + 2
            while index < len(lines) and lines[index].startswith("|"):
                cells = [c.strip() for c in lines[index].strip().strip("|").split("|")]
                if len(cells) == len(header):
                    rows.append(dict(zip(header, cells)))
                index += 1
            tables.append(rows)
        else:
            index += 1
    return tables


def _value(cell):
    """The leading number of a table cell (`'2.31x'`, `'88.1%'`, `'1597276 (21.4%)'`), or None."""
    match = re.match(r"[+-]?[\d,]*\.?\d+", cell or "")
    return float(match.group(0).replace(",", "")) if match else None


def _span(values, unit="x", digits=2) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def summarise(tables) -> str:
    """A few lines on where block-sparse FC is faster and where not, read from the section's tables
    (`{heading: text}`): speed tables, the variants table and the accuracy table."""
    lines, slower, counted = [], [], 0
    for heading, text in tables.items():
        found = parse_tables(text)
        if not found:
            continue
        rows = found[0]
        if rows and "speedup vs its dense" in rows[0]:
            lines.append(_summarise_model(heading, rows, text))
            for r in rows:
                value = _value(r["speedup vs its dense"])
                counted += value is not None
                if value is not None and value <= 1:
                    slower.append(f"{_model_name(heading)} {r['weights']} {r['sparsity']} {r['threads']}t "
                                  f"({r['speedup vs its dense']})")
        elif heading == VARIANTS and rows:
            agree = sum(r["agree"] == "yes" for r in rows)
            wrong = [r["variant"] for r in rows if r["outputs = twin"] == "NO"]
            line = (f"- Linter vs emulated runtime: the prediction equals the observed kernels for {agree} of "
                    f"{len(rows)} variants.")
            if wrong:
                line += f" Outputs differ from the dense twin's for: {'; '.join(wrong)}."
            lines.append(line)
        elif heading == ACCURACY and rows:
            lines.append(_summarise_accuracy(rows))
    if not lines:
        return ""
    if counted:
        extra = [line for line in (_threads_line(tables), _above_bound(tables)) if line]
        lines[0:0] = [f"- The block-sparse file is no faster than its dense counterpart in {len(slower)} of "
                      f"{counted} timed rows" + (f": {'; '.join(slower)}." if slower else "."), *extra]
    return "\n".join([f"### {SUMMARY}", "Read from the tables below (each measured by the command given with it). "
                      f"{EMULATED}.", "", *lines]) + "\n"


def _model_name(heading) -> str:
    return heading.split(" (")[0].split(":")[0]


def _speedups(rows, column) -> str:
    """`'1.20-2.31x (70/80/90%: faster)'` from speed-table rows: the span and where it is above 1."""
    values = [(r["sparsity"], _value(r[column])) for r in rows]
    ran = [(s, v) for s, v in values if v is not None]
    where = "/".join(s for s, _ in values)
    if not ran:
        return f"did not run ({where})"
    faster, slower = [s for s, v in ran if v > 1], [s for s, v in ran if v <= 1]
    verdict = "faster" if not slower else "slower" if not faster else \
        f"faster at {'/'.join(faster)}, slower at {'/'.join(slower)}"
    missing = [s for s, v in values if v is None]
    return (f"{_span([v for _, v in ran])} ({where}: {verdict}"
            + (f"; did not run at {'/'.join(missing)}" if missing else "") + ")")


def _summarise_model(heading, rows, text_of_table="") -> str:
    name = _model_name(heading)
    parts = []
    for weights, against in (("fp32 1x4", "XNNPACK dense"), ("int8 1x16", "its int8 dense twin")):
        mine = [r for r in rows if r["weights"] == weights]
        if not mine:
            continue
        by_threads = {}
        for r in mine:
            by_threads.setdefault(r["threads"], []).append(r)
        spans = []
        for threads, group in sorted(by_threads.items(), key=lambda item: int(item[0])):
            spans.append(f"{_speedups(group, 'speedup vs its dense')} at {threads} thread{'s' * (threads != '1')}")
        ones = by_threads.get("1", mine)
        bound = _span([_value(r["Amdahl bound"]) for r in ones])
        share = _span([_value(r["f: MACs in sparse FCs"]) for r in ones], unit="%", digits=1)
        size = _span([_value(r["block-sparse bytes (vs fp32 dense)"].split("(")[1]) for r in ones], unit="%", digits=1)
        reached = _span([_value(r["speedup vs its dense"]) / _value(r["Amdahl bound"]) for r in ones
                         if _value(r["speedup vs its dense"]) is not None], unit="")
        text = f"{weights} vs {against}: {'; '.join(spans)}; Amdahl bound {bound} (f = {share})"
        if reached != "-":
            text += f", reached {reached} of it at 1 thread"
        if weights == "int8 1x16":
            text += (f"; vs fp32 XNNPACK dense {_speedups(ones, 'vs fp32 XNNPACK dense')} (1 thread), file {size} "
                     "of the fp32 dense file")
        else:
            text += f", file {size} of the dense one"
        agree = sum(r["lint = observed"] == "yes" for r in ones)
        kernels = sorted({r["observed kernels (block-sparse file)"] for r in ones})
        text += f"; observed {' / '.join(kernels)} (linter agrees {agree}/{len(ones)})"
        parts.append(text)
    failures = re.findall(r"the ([\w\- ]+?) did not run on the emulated runtime: ([^\n]*)", text_of_table)
    line = f"- **{name}**: " + ". ".join(parts) + "."
    roles = list(dict.fromkeys(role for role, _ in failures))
    if failures:
        line += f" The {' and the '.join(roles)} did not run: {failures[0][1].rstrip('.')}."
    return line


def _threads_line(tables) -> str:
    """How the dense and block-sparse medians moved from 1 thread to more threads than the host's cores."""
    dense, sparse, threads, cores = [], [], set(), set()
    for text in tables.values():
        found = parse_tables(text)
        if not found or not found[0] or "speedup vs its dense" not in found[0][0]:
            continue
        cores.update(int(c) for c in re.findall(r"of (\d+) cores busy", text))
        rows = {(r["sparsity"], r["weights"], r["threads"]): r for r in found[0]}
        for (sparsity, weights, count), row in rows.items():
            one = rows.get((sparsity, weights, "1"))
            if count == "1" or one is None:
                continue
            threads.add(int(count))
            for values, column in ((dense, "dense ms"), (sparse, "block-sparse ms")):
                if _value(row[column]) and _value(one[column]):
                    values.append(_value(row[column]) / _value(one[column]))
    if not dense or not cores or max(threads) <= min(cores):
        return ""
    counts = "/".join(map(str, sorted(threads)))
    return (f"- {counts} threads on a {min(cores)}-core host shared with other work: the dense files' medians were "
            f"{_span(dense)} their 1-thread medians, the block-sparse files' {_span(sparse)}; so the {counts}-thread "
            "speedups measure that contention, not "
            f"{counts}-core scaling.")


def _above_bound(tables) -> str:
    """The 1-thread rows whose speedup exceeds their Amdahl bound."""
    above = []
    for heading, text in tables.items():
        found = parse_tables(text)
        if not found or not found[0] or "speedup vs its dense" not in found[0][0]:
            continue
        for r in found[0]:
            speedup, bound = _value(r["speedup vs its dense"]), _value(r["Amdahl bound"])
            if r["threads"] == "1" and speedup is not None and bound is not None and speedup > bound:
                above.append(f"{_model_name(heading)} {r['weights']} {r['sparsity']} ({r['speedup vs its dense']} "
                             f"> {r['Amdahl bound']})")
    if not above:
        return ""
    return (f"- Above the Amdahl bound at 1 thread: {'; '.join(above)}. The bound assumes both files spend the "
            "same time per multiply-accumulate; they run different kernels (XNNPACK's, or TFLite's builtin dense "
            "one for int8, against the builtin sparse one), whose relative cost under emulation need not be a "
            "device's.")


def _summarise_accuracy(rows) -> str:
    dense = rows[0]
    parts = [f"dense {dense['test accuracy']}"]
    for r in rows[1:]:
        parts.append(f"{r['model']} {r['test accuracy']} ({r['vs dense']}, {r['speedup vs dense']} emulated)")
    line = "- Accuracy (Fashion-MNIST, short budget): " + "; ".join(parts) + "."
    for sparse in (r for r in rows if r["model"].startswith("GMP 1x4")):
        share = sparse["model"].split(", ")[-1]
        match = next((r for r in rows if r["model"].startswith("dense, narrower") and f"of {share}" in r["model"]),
                     None)
        if match is None:
            continue
        gap = _value(sparse["test accuracy"]) - _value(match["test accuracy"])
        faster = _value(sparse["speedup vs dense"]) - _value(match["speedup vs dense"])
        line += (f" At the non-zeros of block-sparse {share} the narrower dense MLP is "
                 f"{'less' if gap > 0 else 'more'} accurate by {abs(gap):.2f} pp and "
                 f"{'slower' if faster > 0 else 'faster'} ({match['speedup vs dense']} vs "
                 f"{sparse['speedup vs dense']} against the wide dense file).")
    return line


# ----------------------------------------------------------------------------------------------- section
def header(threads) -> str:
    """The section's method text (wrapped): target, files, latency, threads, kernels, Amdahl bound."""
    import keras
    import tensorflow as tf

    cores = os.cpu_count() or 1
    many = [t for t in threads if t > 1]
    contention = (f" This host has {cores} cores shared with other work, so the {'/'.join(map(str, many))}-thread "
                  f"rows are not a {max(many)}-core device: they show what the emulated runtime did with that "
                  "setting here (its threads contend for the cores), not multi-core scaling."
                  if many and max(many) > cores else "")
    intro = (f"Tables measured on {platform.platform()} ({cores} cores; TF {tf.__version__}, Keras "
             f"{keras.__version__}), each by the command given with it; a run replaces the tables it measured and "
             f"keeps the others, and the summary is read from the tables. {EMULATED}: qemu-user translates NEON "
             "and XNNPACK's kernels differently, so the ratios are evidence of which kernel ran and how the work "
             "shrinks, not device speedups.")
    bullets = [
        "Target: tflite-runtime 2.14 on emulated aarch64 (qemu-user), XNNPACK its default delegate (fp32 only: it "
        "delegates no int8 op in 2.14). A block-sparse weight makes every `FULLY_CONNECTED` of its file version 8, "
        "which XNNPACK refuses, so all of them, dense ones included, run TFLite's builtin kernels; the other ops "
        "keep XNNPACK.",
        "Files per model and sparsity s: `tfsparse.finalize` after GMP with `block_shape=(1, 4)` (fp32) or "
        "`(1, 16)` (int8), then `target=\"dense\"` (XNNPACK dense, the fp32 baseline), `target=\"sparse-fc\"` "
        "(fp32 1x4 block-sparse) and `target=\"sparse-fc-int8\"` (full-integer int8, per-tensor Dense weights, "
        "1x16 block-sparse); the int8 dense twin is the int8 file with its weights stored dense at the dense op "
        "version (TFLite's builtin int8 dense kernel runs it).",
        "Latency: median (min-max) ms of the timed invokes; the four files of a row group interleaved (A B C D A B "
        "C D ...) in one emulated process; speedup = the dense file's median / the block-sparse file's. \"vs fp32 "
        "XNNPACK dense\" puts the int8 block-sparse file against the fp32 dense one: int8 and block sparsity "
        "together, which XNNPACK's sparse path (fp32 1x1 convolutions) cannot give.",
        "Threads: `num_threads` of the interpreter." + contention,
        "Kernels: observed = `tfsparse.sparse_fc.observe(file).effective_kernel_names` (the runtime's own nodes "
        "after delegation), lint = `tfsparse.sparse_fc.lint(file)`; run-length in op order. \"outputs = twin\": "
        "the file's outputs agree with those of its dense twin (`observe`'s tolerance).",
        "Amdahl bound: `1 / (1 - sum f_i s_i)`, f_i = share of the file's MACs (`FULLY_CONNECTED`, convolutions, "
        "`BATCH_MATMUL`, batch 1) in a `FULLY_CONNECTED` observed running a block-sparse kernel, s_i its zero "
        "share; \"f\" is the sum of the f_i. It assumes everything else costs the same, which fails where the "
        "version-8 rule moves the dense `FULLY_CONNECTED`s from XNNPACK to the builtin kernels.",
    ]
    lines = ["", textwrap.fill(intro, 118), ""]
    lines += [textwrap.fill(bullet, 118, initial_indent="- ", subsequent_indent="  ") for bullet in bullets]
    return "\n".join(lines) + "\n"


def render(tables, kept, threads) -> str:
    """The section: header, summary (read from the merged tables), then the tables (`{heading: text}`)."""
    merged = {heading: text for heading, text in kept.items() if heading != SUMMARY and "Measured with `" in text}
    merged.update(tables)
    summary = summarise(merged)
    return "\n".join([header(threads), *([summary] if summary else []), *merged.values()])


# ----------------------------------------------------------------------------------------------- main
def _parse(text, kind, name):
    return parse_list(text, kind, name, DEFAULTS.get(name, "0.9"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=lambda t: _parse(t, str, "models"), default=list(MODEL_KEYS))
    parser.add_argument("--sparsities", type=lambda t: _parse(t, float, "sparsities"),
                        help=f"default {DEFAULTS['sparsities']}")
    parser.add_argument("--threads", type=lambda t: _parse(t, int, "threads"), help=f"default {DEFAULTS['threads']}")
    parser.add_argument("--runs", type=int, help=f"timed runs per file, default {DEFAULTS['runs']}")
    parser.add_argument("--warmup", type=int, help=f"untimed runs per file first, default {DEFAULTS['warmup']}")
    parser.add_argument("--gmp-steps", "--gmp_steps", dest="gmp_steps", type=int,
                        help=f"GMP end_step K, default {DEFAULTS['gmp_steps']}")
    parser.add_argument("--variant-runs", "--variant_runs", dest="variant_runs", type=int,
                        help=f"timed runs per variant and twin, default {DEFAULTS['variant_runs']}")
    parser.add_argument("--epochs", type=int,
                        help=f"training epochs of the accuracy check, default {DEFAULTS['epochs']}")
    parser.add_argument("--train-limit", "--train_limit", dest="train_limit", type=int,
                        help="balanced subset of the training images for the accuracy check (0: all 60000)")
    parser.add_argument("--accuracy-runs", "--accuracy_runs", dest="accuracy_runs", type=int,
                        help=f"timed runs per file of the accuracy check, default {DEFAULTS['accuracy_runs']}")
    parser.add_argument("--accuracy-sparsities", "--accuracy_sparsities", dest="accuracy_sparsities",
                        type=lambda t: _parse(t, float, "accuracy_sparsities"), default=[0.8, 0.9])
    parser.add_argument("--skip-accuracy", "--skip_accuracy", dest="skip_accuracy", action="store_true",
                        help="leave the accuracy check out (its table, if any, is kept)")
    parser.add_argument("--skip-variants", "--skip_variants", dest="skip_variants", action="store_true",
                        help="leave the linter variants out (their table, if any, is kept)")
    parser.add_argument("--render-only", "--render_only", dest="render_only", action="store_true",
                        help="measure nothing: rewrite the section's header and summary from the tables it holds")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small widths, " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--output", default=BENCHMARKS, help="the BENCHMARKS.md to update")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, _parse(value, float if name == "sparsities" else int, name)
                    if name in ("sparsities", "threads") else value)
    unknown = [m for m in args.models if m not in MODEL_KEYS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODEL_KEYS)}")
    if any(not 0 < s < 1 for s in args.sparsities + args.accuracy_sparsities):
        parser.error("--sparsities and --accuracy-sparsities must lie in (0, 1)")
    if min(args.runs, args.variant_runs, args.accuracy_runs, args.gmp_steps, args.epochs, *args.threads) < 1 \
            or args.warmup < 0 or args.train_limit < 0:
        parser.error("--runs, --variant-runs, --accuracy-runs, --gmp-steps, --epochs and --threads must be >= 1, "
                     "--warmup and --train-limit >= 0")
    from tfsparse.outputs import check_output_path

    try:
        check_output_path(args.output, overwrite=True, argument="--output")
    except ValueError as error:
        parser.error(str(error))
    command = " ".join(["python tools/bench_sparse_fc.py", *argv])
    started_all = time.perf_counter()
    tables = {}
    if args.render_only:
        args.models, args.skip_variants, args.skip_accuracy = [], True, True
    with tempfile.TemporaryDirectory(prefix="bench_sparse_fc_") as directory:
        for key in args.models:
            started = time.perf_counter()
            spec = model_spec(key, args.quick)
            results = [measure_speed(spec, s, args, directory) for s in args.sparsities]
            text = render_speed(spec.title, results, command, args, time.perf_counter() - started, spec.note)
            tables[spec.title] = text
            print(text, flush=True)
        if not args.skip_variants:
            started = time.perf_counter()
            text = render_variants(measure_variants(args, directory), command, args, time.perf_counter() - started)
            tables[VARIANTS] = text
            print(text, flush=True)
        if not args.skip_accuracy:
            started = time.perf_counter()
            results, facts = measure_accuracy(args, directory)
            text = render_accuracy(results, facts, command, time.perf_counter() - started)
            tables[ACCURACY] = text
            print(text, flush=True)
    body = render(tables, subsections(read_section(SECTION, args.output)), args.threads)
    write_section(SECTION, body, args.output)
    summary = summarise({**subsections(body)})
    print(summary, flush=True)
    _log(f"wrote the {SECTION!r} section of {args.output} ({(time.perf_counter() - started_all) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

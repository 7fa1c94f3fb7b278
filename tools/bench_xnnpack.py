"""XNNPACK sparse speedup on emulated aarch64: MobileNet-V1/V2-style models, 1x1 convolutions pruned by GMP.

Writes (or replaces) the "XNNPACK sparse speedup on emulated aarch64" section
of BENCHMARKS.md. Run from the repository root:

    python tools/bench_xnnpack.py [--sizes=224] [--sparsities=0,0.7,0.8,0.9] [--models=v1,v2] [--runs=10]
    python tools/bench_xnnpack.py --quick     # 96x96, width 0.5, 3 runs: a smoke run

For each model, input size and sparsity s of the 1x1 convolutions:

1. Masks: tfsparse's GMP (`target_sparsity=s`, `begin_step=0`, `end_step=K`,
   `frequency=1`, on the 1x1 layers) driven by K + 1 `model.fit` steps on
   synthetic random images at batch 2. s = 0 is not pruned (nor fitted).
   Latency depends on how many weights are zero and where, not on accuracy,
   so the masks need no real training.
2. `tfsparse.finalize`, then the same weights exported twice: `target="dense"`
   and `target="xnnpack"` (sparse-encoded, batch 1).
3. Single-thread interleaved latency, xnnpack file vs dense file, on the
   emulated aarch64 target (`tfsparse.bench.bench(..., target="arm-emu")`)
   and with LiteRT on this x86 machine (`target="local"`).
4. Beside it: the Amdahl bound `1 / ((1 - f) + f * (1 - s))`, f = share of
   the MACs in the 1x1 convolutions (`tfsparse.xnnpack.check`); the file
   sizes and the encoding limit (`benchmarks_md.encoding_limit`); the
   predictions of `tfsparse.xnnpack.check` (Keras model) and
   `tfsparse.xnnpack.lint` (file), and the observed verdict
   (`tfsparse.emulator.observe`).

Only this tool's section is rewritten: the tables of the models and sizes
measured replace theirs, the other tables are kept (so `--models=v2` reruns
one model), each with the command that produced it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
import warnings
from importlib import metadata

import keras
import numpy as np
import tensorflow as tf

import tfsparse
from tfsparse.bench import bench
from tfsparse.emulator import observe
from tfsparse.model_source import load_builder, load_model_source
from tfsparse.outputs import check_output_path
from tfsparse.strategies.gmp import GMP

try:  # imported from the repository root (pytest, `python -m tools.bench_xnnpack`)
    from tools.benchmarks_md import BENCHMARKS, parse_list, encoding_limit, read_section, subsections, write_section
except ImportError:  # run as `python tools/bench_xnnpack.py`: tools/ is on sys.path
    from benchmarks_md import BENCHMARKS, parse_list, encoding_limit, read_section, subsections, write_section

SECTION = "XNNPACK sparse speedup on emulated aarch64"
#: --models key -> (builder file, label).
MODELS = {"v1": ("models/mobilenet_v1.py", "MobileNet-V1-style"), "v2": ("models/mobilenet_v2.py", "MobileNet-V2-style")}
QUICK = {"sizes": "96", "width": 0.5, "runs": 3, "local_runs": 10, "gmp_steps": 4}
DEFAULTS = {"sizes": "224", "width": 1.0, "runs": 10, "local_runs": 30, "gmp_steps": 10}
BATCH = 2
EMULATED = "Emulated (qemu) ratios overstate real devices"


@dataclasses.dataclass
class Row:
    """What one (model, size, sparsity) measured."""

    sparsity: float
    measured_sparsity: float
    arm: object  # BenchResult, xnnpack file first
    local: object
    plan: object  # tfsparse.xnnpack.check's PlanReport
    xnnpack_bytes: int
    dense_bytes: int
    limit_bytes: int
    lint_fires: bool
    observation: object
    dense_batch: str
    notes: list
    load: float | None  # cores of this machine busy on average during the arm-emu bench


def _log(message):
    print(f"[bench_xnnpack {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _parse_list(text, kind, name):
    return parse_list(text, kind, name, DEFAULTS.get(name, '0,0.9'))


def build(key, size, width):
    """The model for `--models` key `key` at `size`x`size`x3, 1000 classes, and its 1x1 layer names."""
    source, _ = MODELS[key]
    model = load_model_source(f"{source}:mobilenet_{key}", input_shape=(size, size, 3), num_classes=1000, width=width)
    return model, load_builder(f"{source}:pointwise_layers")(model)


def prune_with_gmp(model, names, sparsity, steps, seed=0):
    """Runs GMP (schedule 0 -> `sparsity` over `steps` steps, updated every step) for `steps` + 1 fit steps."""
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH * (steps + 1), *model.input_shape[1:]), dtype=np.float32)
    y = rng.integers(0, model.output_shape[-1], len(x))
    gmp = GMP(target_sparsity=sparsity, begin_step=0, end_step=steps, frequency=1, layers=list(names))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=[gmp])
    return gmp


def export_pair(model, directory, tag, notes):
    """Exports `model` dense and xnnpack; returns (dense result, xnnpack result)."""
    dense = tfsparse.export(model, os.path.join(directory, f"{tag}_dense.tflite"), target="dense")
    with warnings.catch_warnings():  # the ineligible (s < 2/3) files warn; the note below says it
        warnings.filterwarnings("ignore", message=r"Wrote .* with allow_ineligible=True", category=UserWarning)
        xnnpack = tfsparse.export(model, os.path.join(directory, f"{tag}_xnnpack.tflite"), target="xnnpack",
                                  allow_ineligible=True)
    verdict = xnnpack.xnnpack_lint
    if not verdict["fires"]:
        first = verdict["reasons"][0].split(":")[0] if verdict["reasons"] else "no reason given"
        notes.append(f"the xnnpack file is exported with `allow_ineligible=True` (the export warns that the sparse "
                     f"path will not fire: {first})")
        _log(f"{tag}: {notes[-1]}")
    return dense, xnnpack


def measure(key, size, width, sparsity, args, directory) -> Row:
    """Prunes, exports and times one row."""
    tag = f"{key}_{size}_{round(100 * sparsity)}"
    notes = []
    keras.utils.set_random_seed(0)
    model, names = build(key, size, width)
    if sparsity > 0:
        _log(f"{tag}: GMP to {sparsity:.0%} on {len(names)} 1x1 convolutions, {args.gmp_steps + 1} fit steps at batch {BATCH}")
        prune_with_gmp(model, names, sparsity, args.gmp_steps)
    deployable = tfsparse.finalize(model)
    kernels = [deployable.get_layer(name).kernel.numpy() for name in names]
    measured = 1.0 - sum(np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels)
    plan = tfsparse.xnnpack.check(deployable, sparsity=sparsity)
    if not plan.eligible or sorted(plan.sparse_layers) != sorted(names):
        notes.append(f"`tfsparse.xnnpack.check` runs {len(plan.sparse_layers)} layers sparse, not the "
                     f"{len(names)} pruned 1x1 layers: {'; '.join(plan.reasons)}")
        _log(f"{tag}: {notes[-1]}")
    _log(f"{tag}: 1x1 sparsity {measured:.3f}, f = {plan.sparse_macs_share:.4f}, Amdahl bound "
         f"{plan.amdahl_bound:.2f}x, check fires: {plan.fires}; exporting dense + xnnpack")
    dense, xnnpack = export_pair(deployable, directory, tag, notes)
    limit = encoding_limit(kernels).file_bytes(dense.size_bytes)
    lint_fires = tfsparse.xnnpack.lint(xnnpack.path).fires
    _log(f"{tag}: {xnnpack.size_bytes} vs {dense.size_bytes} bytes (limit {limit}); lint fires: {lint_fires}; "
         f"arm-emu bench, {args.runs} interleaved runs")
    before = _cpu_jiffies()
    arm = bench(xnnpack.path, compare=dense.path, target="arm-emu", threads=1, runs=args.runs, warmup=1)
    load = busy_cores(before, _cpu_jiffies())
    _log(f"{tag}: arm-emu xnnpack {arm.models[0].median_ms:.0f} ms, dense {arm.models[1].median_ms:.0f} ms, "
         f"{arm.speedup:.2f}x ({_cores(load)} cores busy); observing")
    observation = observe(xnnpack.path)
    local = bench(xnnpack.path, compare=dense.path, target="local", threads=1, runs=args.local_runs, warmup=2)
    _log(f"{tag}: observed fired: {observation.fired}; x86 LiteRT {local.speedup:.2f}x")
    batch = list(dense.input_shapes.values())[0][0]
    return Row(sparsity, measured, arm, local, plan, xnnpack.size_bytes, dense.size_bytes, limit, lint_fires,
               observation, "dynamic" if batch < 0 else str(batch), notes, load)


def _cpu_jiffies():
    """(busy, total) CPU time of the whole machine from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]  # guest time is already in user
    except (OSError, ValueError):
        return None
    return sum(values) - values[3] - values[4], sum(values)  # idle and iowait are not busy


def busy_cores(before, after):
    """How many cores were busy on average between two `_cpu_jiffies()` samples (None if unknown)."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * os.cpu_count()


def _yes(value):
    return "yes" if value else "no"


def _cores(value):
    return "?" if value is None else f"{value:.1f}"


def _ms(timing):
    return f"{timing.median_ms:.0f} ({timing.min_ms:.0f}-{timing.max_ms:.0f})"


def table(rows) -> str:
    lines = [
        f"| 1x1 sparsity | dense ms, arm-emu | xnnpack ms, arm-emu | speedup, arm-emu ({EMULATED}) | Amdahl bound "
        "| speedup / bound | speedup, x86 LiteRT | xnnpack bytes | dense fp32 bytes | encoding limit bytes "
        "| check: fires | lint: fires | observed: fired |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        observed = _yes(row.observation.fired) if row.observation.eligible else "no (no sparse weights)"
        lines.append(
            f"| {row.sparsity:.0%} | {_ms(row.arm.models[1])} | {_ms(row.arm.models[0])} | {row.arm.speedup:.2f}x "
            f"| {row.plan.amdahl_bound:.2f}x | {row.arm.speedup / row.plan.amdahl_bound:.2f} | {row.local.speedup:.2f}x "
            f"| {row.xnnpack_bytes} ({row.xnnpack_bytes / row.dense_bytes:.1%}) | {row.dense_bytes} "
            f"| {row.limit_bytes} ({row.limit_bytes / row.dense_bytes:.1%}) | {_yes(row.plan.fires)} | {_yes(row.lint_fires)} "
            f"| {observed} |")
    return "\n".join(lines)


ANCHORS = "Published anchors (context, not measured here)"


def render_table(key, size, rows, command, args, seconds) -> str:
    """The `### model` subsection of one (model, size): how it was measured, the table, the notes."""
    loads = [row.load for row in rows if row.load is not None]
    busy = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    first = rows[0]
    lines = [
        f"### {MODELS[key][1]} {args.width:g}, {size}x{size}x3, 1000 classes",
        f"Measured with `{command}` on {time.strftime('%Y-%m-%d')} ({seconds / 60:.0f} min): GMP schedule K = "
        f"{args.gmp_steps} steps; {args.runs} timed arm-emu runs per file after 1 warm-up, {args.local_runs} after 2 "
        f"on x86; {busy} of the {os.cpu_count()} cores busy during the arm-emu runs; dense file batch "
        f"{first.dense_batch}; emulated runtime {first.arm.details.get('runtime', '?')} on "
        f"{first.arm.details.get('machine', '?')}. f = {first.plan.sparse_macs_share:.1%} of the MACs in the 1x1 "
        "convolutions.",
        "",
        table(rows),
    ]
    notes = [f"- s = {row.sparsity:.0%}: {note}" for row in rows for note in row.notes]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def render(tables, kept) -> str:
    """The section: the method, the tables of this run (`{heading: text}`) merged into the `kept` ones, the anchors."""
    merged = {heading: text for heading, text in kept.items() if heading != ANCHORS and "Measured with `" in text}
    merged.update(tables)
    header = f"""
Tables measured on {platform.platform()} ({os.cpu_count()} cores; TF {tf.__version__}, Keras {keras.__version__}),
each by the command given with it; a run replaces the tables of the models and sizes it measured and keeps the others.

- Targets: emulated aarch64 (tflite-runtime with XNNPACK under qemu-user, the `arm-emu` target), single thread; and
  x86, LiteRT {_litert_version()} on this machine, single thread. {EMULATED}.
- Masks: GMP's magnitude rule, `GMP(target_sparsity=s, begin_step=0, end_step=K, frequency=1,
  layers=<the 1x1 layers>)`, over a K-step schedule driven by K + 1 `model.fit` steps (Adam 1e-3) on synthetic
  random images at batch {BATCH}. They do not come from ImageNet training: latency depends on how many weights are
  zero and where, not on accuracy. The s = 0 rows are the unpruned initial weights.
- Files: `tfsparse.finalize`, then the same weights exported as `target="dense"` (the dense fp32 file; the export
  API has no batch option for it, so its batch dimension stays dynamic and the runners resize it to 1) and
  `target="xnnpack"` (1x1 weights sparse-encoded where smaller, batch fixed to 1).
- Latency: xnnpack and dense file interleaved (A B A B ...); median (min-max) ms. Speedup = dense median / xnnpack
  median. The machine is shared: the emulator takes 1 core, so more busy cores than that mean other work competed
  and spread the times.
- Amdahl bound (`tfsparse.xnnpack.check(model, sparsity=s)`): `1 / ((1 - f) + f * (1 - s))`, f = share of the
  MACs (conv and dense layers) in the 1x1 convolutions of the region XNNPACK can run sparse, s = their sparsity;
  1.0 where the path cannot fire (s = 0).
- Encoding limit: the dense file with every 1x1 kernel at 4 bytes per non-zero value plus its index (uint8 when the
  layer has <= 256 input channels, else uint16), where that is smaller than dense.
- Verdicts: `check: fires` is the planner's prediction on the Keras model, `lint: fires`
  (`tfsparse.xnnpack.lint(path).fires`) the linter's on the xnnpack file; `observed: fired`
  (`tfsparse.emulator.observe(path).fired`) says whether its outputs under emulated XNNPACK differ from those of
  its dense twin, i.e. whether the sparse kernels ran.
- x86: about 1.0x is expected. XNNPACK disables its sparse (NCHW) path on x86 CPUs with AVX on purpose (dense is
  faster there), so here the sparse path can only be observed under ARM emulation.
"""
    anchors = f"""### {ANCHORS}
| source | figure |
|---|---|
| Amdahl bound, MobileNet v1 (1x1 = 94.9% of MACs), s = 70 / 80 / 90% | 2.98x / 4.15x / 6.84x |
| Amdahl bound, MobileNet v2 (1x1 = 89.1% of MACs), s = 70 / 80 / 90% | 2.66x / 3.48x / 5.04x |
| Fast Sparse ConvNets (Elsen et al., CVPR 2020), SD835, MobileNet v1/v2, EfficientNet at 70-95% | 1.3-2.4x vs dense |
| Elsen et al., SD835, MobileNet v1 1.0 at 90% | 31 ms vs dense 86 ms (~2.8x) |
"""
    return "\n".join([header, *merged.values(), anchors])


def _litert_version():
    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        return "?"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda t: _parse_list(t, int, "sizes"), help=f"default {DEFAULTS['sizes']}")
    parser.add_argument("--sparsities", type=lambda t: _parse_list(t, float, "sparsities"),
                        default=[0.0, 0.7, 0.8, 0.9])
    parser.add_argument("--models", type=lambda t: _parse_list(t, str, "models"), default=["v1", "v2"])
    parser.add_argument("--width", type=float, help=f"width multiplier, default {DEFAULTS['width']}")
    parser.add_argument("--runs", type=int, help=f"timed runs per file on arm-emu, default {DEFAULTS['runs']}")
    parser.add_argument("--local-runs", type=int, help=f"timed runs per file on x86, default {DEFAULTS['local_runs']}")
    parser.add_argument("--gmp-steps", type=int, help=f"GMP end_step K, default {DEFAULTS['gmp_steps']}")
    parser.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--output", default=BENCHMARKS, help="the BENCHMARKS.md to update")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, _parse_list(value, int, name) if name == "sizes" else value)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")
    if any(not 0 <= s < 1 for s in args.sparsities):
        parser.error(f"--sparsities must lie in [0, 1); received {args.sparsities}")
    if min(args.runs, args.local_runs, args.gmp_steps) < 1:
        parser.error("--runs, --local-runs and --gmp-steps must be >= 1")
    try:
        check_output_path(args.output, overwrite=True, argument="--output")
    except ValueError as error:
        parser.error(str(error))
    command = " ".join(["python tools/bench_xnnpack.py", *argv])
    tables = {}
    with tempfile.TemporaryDirectory(prefix="bench_xnnpack_") as directory:
        for key in args.models:
            for size in args.sizes:
                started = time.perf_counter()
                rows = [measure(key, size, args.width, s, args, directory) for s in args.sparsities]
                text = render_table(key, size, rows, command, args, time.perf_counter() - started)
                tables[text.splitlines()[0][4:]] = text
                print(text, flush=True)
    body = render(tables, subsections(read_section(SECTION, args.output)))
    write_section(SECTION, body, args.output)
    _log(f"wrote the {SECTION!r} section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

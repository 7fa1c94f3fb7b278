"""Channel pruning (structured): MACs, size and latency of physically smaller models, and their accuracy.

Writes (or replaces) the "Channel pruning (structured)" section of
BENCHMARKS.md. Run from the repository root:

    python tools/bench_channels.py [--models=mobilenet_v2,resnet] [--reductions=0.25,0.5] [--quick]

Protocol, for a MobileNet-V2-style model (`models/mobilenet_v2.py`) and a
CIFAR-style ResNet (`models/resnet.py`), both on 32x32x3 inputs, 10 classes:

1. Data (as `tools/bench_strategies.py`): Fashion-MNIST padded to 32x32x3
   (`tfsparse.data.load`), a balanced training subset of `--train_limit`
   images, the test set (all 10k unless `--test_limit`). Each model is
   trained dense for `--epochs` (Adam, cosine decay from 1e-3).
2. Every run starts from a clone of these dense weights and trains
   `--prune_epochs` more on the same data in the same order (same seed),
   Adam with cosine decay from 5e-4. The baseline "dense + same epochs" is
   the same run without a strategy.
3. Pruning: `ChannelPruning` (`tfsparse.get_strategy("channel")`) on every
   prunable channel group of the model, `scope="layer"` (every group loses
   the same fraction of its channels, kept counts rounded to multiples of
   4), reaching the channel reduction over the first 2/3 of the steps
   (`tfsparse.training.pruning_steps`: about 20 updates), then fine-tuning
   under the frozen masks. `l1` runs at every `--reductions` value; the
   criteria `--criteria` (`l1`, `bn_gamma`, `taylor` on
   `--calibration_batches` training batches, `random`) at the
   `--criteria_at` reductions of the `--criteria_models` models.
4. Deployment, per (model, reduction), from the `l1` run: `tfsparse.flops`
   of `tfsparse.finalize(model)` (physically shrunk) vs the dense model;
   `tfsparse.export(model, path, target="dense")` of the pruned model (the
   export finalizes, so the file holds the smaller layers) and of the
   "dense + same epochs" model; the two files timed interleaved (dense,
   pruned, dense, ...) in one `tfsparse.bench.bench` call on x86 LiteRT
   (`target="local"`) and on emulated aarch64 (`target="arm-emu"`) when its
   runtime is set up (`tfsparse.emulator.status().ready`), single thread.
   With `scope="layer"` the kept channel counts do not depend on the
   criterion, so these figures hold for every criterion (checked: each
   run's finalized MACs are compared with the `l1` run's).

Example (the table's number formats):

>>> _conversion(0.6, 0.5), _ms(0.04428), _ms(34.7368)
('0.80', '0.0443', '34.7')
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time

import keras
import tensorflow as tf

import tfsparse
from tfsparse import data as datasets
from tfsparse.bench import bench
from tfsparse.emulator import status as emulator_status
from tfsparse.graph.cost import _human
from tfsparse.model_source import load_model_source
from tfsparse.strategies.channel import _nearest_multiple
from tfsparse.outputs import check_output_path
from tfsparse.training import pruning_steps

try:  # imported from the repository root (pytest, `python -m tools.bench_channels`)
    from tools.bench_strategies import DENSE_LR, PRUNE_LR, _clone, _epochs, _fit, _pct, _signed_pp
    from tools.bench_xnnpack import EMULATED, _cpu_jiffies, _litert_version, busy_cores
    from tools.benchmarks_md import BENCHMARKS, write_section
except ImportError:  # run as `python tools/bench_channels.py`: tools/ is on sys.path
    from bench_strategies import DENSE_LR, PRUNE_LR, _clone, _epochs, _fit, _pct, _signed_pp
    from bench_xnnpack import EMULATED, _cpu_jiffies, _litert_version, busy_cores
    from benchmarks_md import BENCHMARKS, write_section

SECTION = "Channel pruning (structured)"
#: --models key -> (model source, label, the builder's keyword arguments besides width).
MODELS = {
    "mobilenet_v2": ("models/mobilenet_v2.py:mobilenet_v2", "MobileNet-V2-style", {}),
    "resnet": ("models/resnet.py:resnet", "ResNet-style", {"blocks": (2, 2, 2)}),
}
CRITERIA = ("l1", "bn_gamma", "taylor", "random")
SCOPE, ROUND_TO = "layer", 4
NOT_INSTALLED = "not measured: emulator not installed"
FULL = {"mobilenet_v2_width": 0.5, "resnet_width": 1.0, "train_limit": 6000, "test_limit": 0, "epochs": 3,
        "prune_epochs": 2, "batch_size": 128, "reductions": "0.25,0.5", "criteria_at": "0.5",
        "criteria_models": "mobilenet_v2,resnet", "calibration_batches": 4, "local_runs": 200, "arm_runs": 20}
QUICK = {"mobilenet_v2_width": 0.35, "resnet_width": 0.5, "train_limit": 256, "test_limit": 256, "epochs": 1,
         "prune_epochs": 1, "batch_size": 32, "reductions": "0.5", "criteria_at": "0.5",
         "criteria_models": "resnet", "calibration_batches": 2, "local_runs": 10, "arm_runs": 2}


@dataclasses.dataclass
class Run:
    """One fine-tuning run (criterion None: "dense + same epochs")."""

    model: str
    criterion: str | None
    reduction: float | None
    removed: float | None  # the strategy's fraction of removed channels over the selected groups
    macs: int  # of the finalized (shrunk) model
    params: int
    accuracy: float
    seconds: float
    reachable: float | None = None  # the reduction the kept-count rounding allows (see `_reachable`)
    note: str = ""


@dataclasses.dataclass
class Deployment:
    """Size and latency of one (model, reduction) against its dense model."""

    model: str
    reduction: float
    removed: float
    macs: tuple  # (dense, pruned)
    params: tuple
    tflite: tuple
    local: object  # BenchResult, pruned file first
    arm: object | str  # BenchResult, or why not measured
    arm_load: float | None


# ------------------------------------------------------------------ helpers
def _ms(value):
    return f"{value:.3g}"


def _ratio(pruned, dense):
    return pruned / dense if dense else float("nan")


def _conversion(latency_ratio, macs_ratio):
    """How much of the MACs reduction became time: `(1 - latency ratio) / (1 - MACs ratio)`."""
    return "-" if macs_ratio >= 1 else f"{(1 - latency_ratio) / (1 - macs_ratio):.2f}"


def _label(key, settings):
    return f"{MODELS[key][1]} {settings[key + '_width']:g}"


def _build(key, dataset, settings):
    source, _, kwargs = MODELS[key]
    return load_model_source(source, input_shape=dataset.x_train.shape[1:], num_classes=dataset.num_classes,
                             width=settings[key + "_width"], **kwargs)


def _calibration(dataset, settings):
    """The first `calibration_batches` training batches, for taylor."""
    size = settings["batch_size"]
    return [(dataset.x_train[i * size:(i + 1) * size], dataset.y_train[i * size:(i + 1) * size])
            for i in range(settings["calibration_batches"])]


def _reachable(strategy, reduction):
    """The fraction of channels removed at `reduction` once every group's kept count is rounded (`scope="layer"`).

    Each group keeps its size times (1 - reduction) rounded to the nearest multiple of `round_to`, within
    `[min_keep, size]`, as `ChannelPruning` does at `end_step`.
    """
    total = removed = 0
    for state in strategy.groups:
        size = state.group.size
        keep = min(size, max(state.min_keep, _nearest_multiple(size * (1.0 - reduction), strategy.round_to)))
        total, removed = total + size, removed + size - keep
    return removed / total if total else 0.0


def _strategy(criterion, reduction, steps, dataset, settings):
    extra = {"calibration_data": _calibration(dataset, settings)} if criterion == "taylor" else {}
    return tfsparse.get_strategy("channel")(target_sparsity=reduction, **steps, criterion=criterion, scope=SCOPE,
                                            round_to=ROUND_TO, **extra)


# --------------------------------------------------------------- the phases
def plan_runs(key, settings, reductions, criteria):
    """`[(criterion, reduction)]` of one model: the baseline, l1 at every reduction, the other criteria."""
    plan = [(None, None)]
    for reduction in reductions:
        compare = key in settings["criteria_models"] and reduction in settings["criteria_at"]
        plan += [(criterion, reduction) for criterion in criteria if criterion == "l1" or compare]
    return plan


def model_runs(key, dataset, settings, reductions, criteria, directory, log):
    """Dense training, then every run of one model; returns `(dense accuracy, dense flops, runs, files)`.

    `files` maps a reduction (None: dense) to the exported `.tflite` (`ExportResult`).
    """
    keras.utils.set_random_seed(settings["seed"])
    dense = _build(key, dataset, settings)
    started = time.time()
    dense_accuracy = _fit(dense, dataset, epochs=settings["epochs"], batch_size=settings["batch_size"],
                          learning_rate=DENSE_LR)
    dense_flops = tfsparse.flops(dense)
    log(f"{_label(key, settings)}: dense {_epochs(settings['epochs'])}, {dense_flops}, test accuracy "
        f"{dense_accuracy:.4f} ({time.time() - started:.0f} s)")
    steps = pruning_steps(num_samples=len(dataset.x_train), batch_size=settings["batch_size"],
                          epochs=settings["prune_epochs"])
    plan = plan_runs(key, settings, reductions, criteria)
    runs, files = [], {}
    for index, (criterion, reduction) in enumerate(plan, start=1):
        started = time.time()
        keras.utils.set_random_seed(settings["seed"] + 1)  # the same shuffling for every run
        model = _clone(dense)
        strategy = None if criterion is None else _strategy(criterion, reduction, steps, dataset, settings)
        if strategy is not None:
            model = strategy.prepare(model)
        accuracy = _fit(model, dataset, epochs=settings["prune_epochs"], batch_size=settings["batch_size"],
                        learning_rate=PRUNE_LR, callbacks=[strategy] if strategy else [])
        report = tfsparse.flops(tfsparse.finalize(model) if strategy else model)
        run = Run(key, criterion, reduction, strategy.current_sparsity() if strategy else None, report.macs,
                  report.params, accuracy, time.time() - started,
                  reachable=_reachable(strategy, reduction) if strategy else None)
        if criterion in (None, "l1"):
            tag = f"{key}_{'dense' if reduction is None else round(100 * reduction)}"
            files[reduction] = tfsparse.export(model, os.path.join(directory, f"{tag}.tflite"), target="dense")
        runs.append(run)
        label = "dense + same epochs" if criterion is None else f"{criterion} {_pct(reduction)}"
        removed = "" if run.removed is None else f"removed channels {_pct(run.removed)}, "
        log(f"{_label(key, settings)} [{index}/{len(plan)}] {label}: {removed}{_human(run.macs)} MACs, "
            f"{_human(run.params)} params, test accuracy {accuracy:.4f} ({run.seconds:.0f} s)")
        del model
    _check_structure(runs)
    return dense_accuracy, dense_flops, runs, files


def _check_structure(runs):
    """Notes the runs whose finalized MACs differ from the l1 run's at the same reduction (scope="layer": none)."""
    reference = {run.reduction: run.macs for run in runs if run.criterion == "l1"}
    for run in runs:
        if run.criterion not in (None, "l1") and run.macs != reference.get(run.reduction, run.macs):
            run.note = (f"finalized MACs {run.macs} differ from the l1 run's {reference[run.reduction]}: the "
                        "deployment figures of this reduction do not apply to it")


def deploy(key, runs, files, dense_flops, settings, arm_ready, log) -> list:
    """Times the pruned files against the dense file of one model; one `Deployment` per reduction."""
    rows = []
    dense = files[None]
    for run in (r for r in runs if r.criterion == "l1"):
        pruned = files[run.reduction]
        local = bench(pruned.path, compare=dense.path, target="local", threads=1, runs=settings["local_runs"],
                      warmup=5)
        arm, load = arm_ready, None
        if arm_ready is True:
            before = _cpu_jiffies()
            arm = bench(pruned.path, compare=dense.path, target="arm-emu", threads=1, runs=settings["arm_runs"],
                        warmup=1, observe=False)
            load = busy_cores(before, _cpu_jiffies())
        row = Deployment(key, run.reduction, run.removed, (dense_flops.macs, run.macs),
                         (dense_flops.params, run.params), (dense.size_bytes, pruned.size_bytes), local, arm, load)
        rows.append(row)
        arm_text = arm if isinstance(arm, str) else (
            f"arm-emu {_ms(arm.models[0].median_ms)} vs {_ms(arm.models[1].median_ms)} ms, latency ratio "
            f"{1 / arm.speedup:.3f}")
        log(f"{_label(key, settings)} {_pct(run.reduction)}: MACs ratio {_ratio(run.macs, dense_flops.macs):.3f}, "
            f".tflite {pruned.size_bytes} vs {dense.size_bytes} bytes; x86 {_ms(local.models[0].median_ms)} vs "
            f"{_ms(local.models[1].median_ms)} ms, latency ratio {1 / local.speedup:.3f}; {arm_text}")
    return rows


# ------------------------------------------------------------------ outputs
ARM_COLUMNS = ("arm-emu ms, pruned / dense", "arm-emu latency ratio", "arm-emu time / MACs reduction")


def deployment_table(rows, settings) -> list:
    lines = [
        "| model | channel reduction | removed channels | MACs | MACs ratio | params | params ratio | .tflite bytes "
        "| .tflite ratio | x86 ms, pruned / dense | x86 latency ratio | x86 time / MACs reduction | "
        + " | ".join(ARM_COLUMNS) + " |",
        "|" + "---|" * 15,
    ]
    for key in dict.fromkeys(row.model for row in rows):
        first = next(row for row in rows if row.model == key)
        arm = [first.arm] * 3 if isinstance(first.arm, str) else ["-", "1.000", "-"]
        lines.append(f"| {_label(key, settings)} | 0% (dense) | 0.0% | {_human(first.macs[0])} | 1.000 | "
                     f"{_human(first.params[0])} | 1.000 | {first.tflite[0]} | 1.000 | - | 1.000 | - | "
                     + " | ".join(arm) + " |")
        for row in (r for r in rows if r.model == key):
            macs_ratio = _ratio(row.macs[1], row.macs[0])
            local_ratio = 1 / row.local.speedup
            cells = [_label(key, settings), _pct(row.reduction), _pct(row.removed), _human(row.macs[1]),
                     f"{macs_ratio:.3f}", _human(row.params[1]), f"{_ratio(row.params[1], row.params[0]):.3f}",
                     str(row.tflite[1]), f"{_ratio(row.tflite[1], row.tflite[0]):.3f}",
                     f"{_ms(row.local.models[0].median_ms)} / {_ms(row.local.models[1].median_ms)}",
                     f"{local_ratio:.3f}", _conversion(local_ratio, macs_ratio)]
            if isinstance(row.arm, str):
                cells += [row.arm] * 3
            else:
                arm_ratio = 1 / row.arm.speedup
                cells += [f"{_ms(row.arm.models[0].median_ms)} / {_ms(row.arm.models[1].median_ms)}",
                          f"{arm_ratio:.3f}", _conversion(arm_ratio, macs_ratio)]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def accuracy_table(results, settings) -> list:
    lines = ["| model | criterion | channel reduction | removed channels | MACs ratio | test accuracy | "
             "Δ vs dense + same epochs | run time |",
             "|---|---|---|---|---|---|---|---|"]
    for key, (dense_accuracy, dense_flops, runs) in results.items():
        baseline = next(run for run in runs if run.criterion is None)
        label = _label(key, settings)
        lines.append(f"| {label} | dense (start of every run) | - | - | 1.000 | {100 * dense_accuracy:.2f}% | "
                     f"{_signed_pp(dense_accuracy - baseline.accuracy)} | - |")
        for run in runs:
            lines.append(
                f"| {label} | {'dense + same epochs' if run.criterion is None else run.criterion} | "
                f"{'-' if run.reduction is None else _pct(run.reduction)} | {_pct(run.removed)} | "
                f"{_ratio(run.macs, dense_flops.macs):.3f} | {100 * run.accuracy:.2f}% | "
                f"{_signed_pp(run.accuracy - baseline.accuracy)} | {run.seconds:.0f} s |")
    return lines


def render(*, command, settings, dataset, results, deployments, steps, arm_ready, minutes) -> str:
    test = "all 10000" if len(dataset.x_test) == 10000 else f"the first {len(dataset.x_test)}"
    total_steps = -(-len(dataset.x_train) // settings["batch_size"]) * settings["prune_epochs"]
    measured_arm = [row.arm for row in deployments if not isinstance(row.arm, str)]
    loads = [row.arm_load for row in deployments if row.arm_load is not None]
    if measured_arm:
        details = measured_arm[0].details
        arm_text = (f"emulated aarch64 (`target=\"arm-emu\"`: {details.get('runtime', '?')} with XNNPACK on "
                    f"{details.get('machine', '?')}), {settings['arm_runs']} timed runs per file after 1 warm-up, "
                    + (f"{min(loads):.1f}-{max(loads):.1f} of the {os.cpu_count()} cores busy during them. "
                       if loads else "") + f"{EMULATED}.")
    else:
        arm_text = f"emulated aarch64: {arm_ready}."
    models = ", ".join(
        f"{_label(key, settings)} (`{MODELS[key][0]}`, width {settings[key + '_width']:g}"
        + ("".join(f", {k}={v}" for k, v in MODELS[key][2].items())) + ")" for key in results)
    lines = [
        "",
        f"Measured with `{command}` ({minutes:.0f} min in all) on {platform.platform()} "
        f"({os.cpu_count()} cores; TF {tf.__version__}, Keras {keras.__version__}, LiteRT {_litert_version()}).",
        "",
        f"- Models: {models}; 32x32x3 inputs, 10 classes.",
        f"- Data: Fashion-MNIST padded to 32x32x3, a balanced subset of {len(dataset.x_train)} training images; "
        f"test accuracy on {test} test images; batch {settings['batch_size']}.",
        f"- Dense: each model trained {_epochs(settings['epochs'])} (Adam, cosine decay from {DENSE_LR:g}). Every "
        f"run below starts from these weights and trains {_epochs(settings['prune_epochs'])} more ({total_steps} "
        f"steps) on the same data in the same order, Adam with cosine decay from {PRUNE_LR:g}. The fair baseline is "
        "\"dense + same epochs\": the same training without a strategy; Δ is against it.",
        f"- Pruning: `ChannelPruning(target_sparsity=r, begin_step=0, end_step={steps['end_step']}, "
        f"frequency={steps['frequency']}, criterion=..., scope=\"{SCOPE}\", round_to={ROUND_TO})` "
        "(`tfsparse.get_strategy(\"channel\")`; steps from `tfsparse.training.pruning_steps`) on every prunable "
        "channel group (channels tied by a residual `Add` go together; the stem's input channels and the "
        f"classifier's outputs are never pruned). `scope=\"{SCOPE}\"`: every group loses the fraction r of its "
        f"channels (kept counts rounded to multiples of {ROUND_TO}), so the kept counts do not depend on the "
        "criterion. Channel reduction = r; \"removed channels\" is what the strategy measured over the groups at "
        "the end. Criteria: `l1` (L1 norm of each channel's weights), `bn_gamma` (|gamma| of its "
        f"BatchNormalization), `taylor` (first-order Taylor estimate on {settings['calibration_batches']} "
        f"calibration batches of {settings['batch_size']} training images, scored again at every update), "
        "`random`.",
        "- MACs and parameters: `tfsparse.flops` (multiply-accumulates of the convolutions and dense layers, batch "
        "1) of `tfsparse.finalize(model)`, in which the removed channels are physically gone; MACs ratio = pruned "
        "MACs / dense MACs.",
        "- Files: `tfsparse.export(model, path, target=\"dense\")` (fp32; the export finalizes, so the pruned file "
        "holds the smaller layers) of the `l1` run and of the \"dense + same epochs\" model. Latency is the same "
        "for every criterion (same kept counts; checked: every run's finalized MACs equal the `l1` run's).",
        f"- Latency: the pruned and the dense file timed interleaved (A B A B ...) in one `tfsparse.bench.bench` "
        f"call, single thread, median ms; latency ratio = pruned median / dense median. x86: LiteRT on this "
        f"machine (`target=\"local\"`), {settings['local_runs']} timed runs per file after 5 warm-up. {arm_text}",
        "- Time / MACs reduction = (1 - latency ratio) / (1 - MACs ratio): the share of the MACs reduction that "
        "became time (1.00: time fell as much as MACs; 0: not at all; fixed per-op costs such as tensor "
        "allocation, the pooling and the interpreter's dispatch do not shrink with channels).",
        "",
        "### Size and latency",
        "",
        *deployment_table(deployments, settings),
        "",
        "### Accuracy on Fashion-MNIST",
        "",
        *accuracy_table(results, settings),
    ]
    notes = [f"- {_label(run.model, settings)}, {run.criterion} {_pct(run.reduction)}: {run.note}"
             for _, _, runs in results.values() for run in runs if run.note]
    rounded = [f"- {_label(run.model, settings)}, {_pct(run.reduction)}: with kept counts rounded to multiples "
               f"of {ROUND_TO} (small groups keep more, e.g. 8 channels at 25% keep 8), {_pct(run.reachable)} of "
               "the channels can go, not the full reduction." for _, _, runs in results.values() for run in runs
               if run.criterion == "l1" and abs(run.reachable - run.reduction) > 0.005]
    short = [f"- {_label(run.model, settings)}, {run.criterion} {_pct(run.reduction)}: the step cap "
             f"(`max_step_fraction`) held some groups above their count until training ended (removed "
             f"{_pct(run.removed)} of a reachable {_pct(run.reachable)})." for _, _, runs in results.values()
             for run in runs if run.removed is not None and run.removed < run.reachable - 1e-6]
    if notes or rounded or short:
        lines += ["", *notes, *rounded, *short]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- main
def _floats(text, name, parser):
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v < 1 for v in values):
        parser.error(f"--{name}: expected comma-separated values in (0, 1); received {text!r}")
    return values


def _names(text, known, name, parser):
    values = [v.strip() for v in str(text).split(",") if v.strip()]
    unknown = [v for v in values if v not in known]
    if unknown or not values:
        parser.error(f"--{name}: expected names from {','.join(known)}; received {text!r}")
    return values


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="default mobilenet_v2,resnet")
    parser.add_argument("--mobilenet_v2_width", type=float, help=f"default {FULL['mobilenet_v2_width']}")
    parser.add_argument("--resnet_width", type=float, help=f"default {FULL['resnet_width']}")
    parser.add_argument("--reductions", help=f"channel reductions, l1 at each (default {FULL['reductions']})")
    parser.add_argument("--criteria", default=",".join(CRITERIA), help="default l1,bn_gamma,taylor,random")
    parser.add_argument("--criteria_at", help=f"reductions at which every criterion runs (default "
                                              f"{FULL['criteria_at']})")
    parser.add_argument("--criteria_models", help=f"models on which every criterion runs (default "
                                                  f"{FULL['criteria_models']})")
    parser.add_argument("--calibration_batches", type=int, help=f"taylor (default {FULL['calibration_batches']})")
    parser.add_argument("--train_limit", type=int, help=f"training images (default {FULL['train_limit']})")
    parser.add_argument("--test_limit", type=int, help="test images, 0 for all 10000 (default 0)")
    parser.add_argument("--epochs", type=int, help=f"dense epochs (default {FULL['epochs']})")
    parser.add_argument("--prune_epochs", type=int,
                        help=f"epochs of every run after dense (default {FULL['prune_epochs']})")
    parser.add_argument("--batch_size", type=int, help=f"default {FULL['batch_size']}")
    parser.add_argument("--local_runs", type=int, help=f"timed x86 runs per file (default {FULL['local_runs']})")
    parser.add_argument("--arm_runs", type=int, help=f"timed arm-emu runs per file (default {FULL['arm_runs']})")
    parser.add_argument("--skip_arm", action="store_true", help="do not time on the emulated aarch64 target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {', '.join(f'{k}={v}' for k, v in QUICK.items())}")
    parser.add_argument("--output", default=BENCHMARKS, help="the BENCHMARKS.md to update")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    settings["seed"] = args.seed
    models = _names(args.models, tuple(MODELS), "models", parser)
    criteria = _names(args.criteria, CRITERIA, "criteria", parser)
    if "l1" not in criteria:
        parser.error("--criteria must include l1 (its runs give the size and latency figures)")
    reductions = _floats(settings["reductions"], "reductions", parser)
    settings["criteria_at"] = _floats(settings["criteria_at"], "criteria_at", parser)
    settings["criteria_models"] = _names(settings["criteria_models"], tuple(MODELS), "criteria_models", parser)
    for name in ("mobilenet_v2_width", "resnet_width"):
        if not settings[name] > 0:
            parser.error(f"--{name} must be positive; received {settings[name]}")
    for name in ("train_limit", "epochs", "prune_epochs", "batch_size", "local_runs", "arm_runs",
                 "calibration_batches"):
        if settings[name] < 1:
            parser.error(f"--{name} must be >= 1; received {settings[name]}")
    try:
        check_output_path(args.output, overwrite=True, argument="--output")
    except ValueError as error:
        parser.error(str(error))
    return args, settings, models, criteria, reductions


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, settings, models, criteria, reductions = _parse(argv)
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:6.0f} s] {message}", flush=True)

    if args.skip_arm:
        arm_ready = "not measured: skipped (--skip_arm)"
    else:
        state = emulator_status()
        arm_ready = True if state.ready else NOT_INSTALLED
        if not state.ready:
            log(f"arm-emu: {NOT_INSTALLED} ({state.reason})")
    dataset = datasets.load("fashion_mnist", image_size=32, channels=3, limit=settings["train_limit"],
                            seed=settings["seed"])
    if settings["test_limit"]:
        dataset = dataclasses.replace(dataset, x_test=dataset.x_test[: settings["test_limit"]],
                                      y_test=dataset.y_test[: settings["test_limit"]])
    log(f"data: {len(dataset.x_train)} training, {len(dataset.x_test)} test images; models {', '.join(models)}")
    results, deployments = {}, []
    with tempfile.TemporaryDirectory(prefix="bench_channels_") as directory:
        for key in models:
            dense_accuracy, dense_flops, runs, files = model_runs(key, dataset, settings, reductions, criteria,
                                                                  directory, log)
            results[key] = (dense_accuracy, dense_flops, runs)
            deployments += deploy(key, runs, files, dense_flops, settings, arm_ready, log)
    steps = pruning_steps(num_samples=len(dataset.x_train), batch_size=settings["batch_size"],
                          epochs=settings["prune_epochs"])
    minutes = (time.time() - started) / 60
    body = render(command=shlex.join(["python", "tools/bench_channels.py", *argv]), settings=settings,
                  dataset=dataset, results=results, deployments=deployments, steps=steps, arm_ready=arm_ready,
                  minutes=minutes)
    write_section(SECTION, body, args.output)
    print(body)
    log(f"done: wrote the {SECTION!r} section of {args.output}; total {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Strategies on Fashion-MNIST: test accuracy vs sparsity of gmp, l1, l0 and nm 2:4, and their step time.

Writes (or replaces) the "Strategies on Fashion-MNIST" section of BENCHMARKS.md
and an accuracy-vs-sparsity plot (PNG). Run from the repository root:

    python tools/bench_strategies.py [--strategies=gmp,l1,l0,nm] [--sparsities=0.5,0.75,0.9] [--quick]

Protocol (the demo's data and model, `tfsparse/demo.py`):

1. Fashion-MNIST padded to 32x32x3 (`tfsparse.data.load`), a balanced training
   subset of `--train_limit` images, the test set (all 10k unless
   `--test_limit`). The MobileNet-V1-style model (`models/mobilenet_v1.py`),
   width `--width`, trained dense for `--epochs` (Adam, cosine decay from 1e-3).
2. Every strategy run starts from a clone of these dense weights and trains
   `--prune_epochs` more on the same data in the same order (same seed), with
   the same optimizer (Adam, cosine decay from 5e-4). The baseline
   "dense + same epochs" is the same run without a strategy.
3. Every strategy acts on the same weights: the kernels of the 13 1x1
   (pointwise) convolutions, `layers=".*_pw"` (over 90% of the weights; the
   stem, the depthwise convolutions and the classifier stay dense).
   gmp, l1 and l0 use their target mode, reaching the target over the first
   2/3 of the steps (`tfsparse.training.pruning_steps`: about 20 updates),
   then fine-tune; nm 2:4 switches every weight at step 0 (one shot, from
   the dense magnitudes) and fine-tunes.
4. Step time: after the accuracy runs, each strategy's model (fresh clone,
   its schedule active: updates every `frequency` steps as in the pruning
   phase) and the dense model train in interleaved segments of `--steps`
   steps, D S1 D S2 ... D Sk D, for `--rounds` rounds after one warm-up
   round; a strategy's ratio in a round is its mean step time (update steps
   included, first step of a segment dropped) over the mean of the two dense
   segments around it; the table gives the median and the min-max over rounds.

Example (the table's number formats):

>>> _pct(0.7512), _signed_pp(-0.0123), _ratio([1.04, 1.1, 0.98])
('75.1%', '-1.23 pp', '1.040x (0.980x-1.100x)')
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import statistics
import warnings
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from tfsparse import data as datasets
from tfsparse import registry
from tfsparse.model_source import load_model_source
from tfsparse.strategies.l0 import auto_log_alpha_scale
from tfsparse.outputs import atomic_output
from tfsparse.training import compile_classifier, make_strategy, pruning_steps

try:  # imported from the repository root (pytest, `python -m tools.bench_strategies`)
    from tools.benchmarks_md import BENCHMARKS, write_section
    from tools.step_timer import StepTimer
except ImportError:  # run as `python tools/bench_strategies.py`: tools/ is on sys.path
    from benchmarks_md import BENCHMARKS, write_section
    from step_timer import StepTimer

SECTION = "Strategies on Fashion-MNIST"
MODEL_SPEC = "models/mobilenet_v1.py:mobilenet_v1"
LAYERS = ".*_pw"  # the 1x1 convolutions
STRATEGIES = ("gmp", "l1", "l0", "nm")
PLOT = os.path.join(os.path.dirname(BENCHMARKS), "docs", "strategies_accuracy.png")
DENSE_LR, PRUNE_LR = 1e-3, 5e-4
MEASURES = {
    "gmp": "zero 1x1 weights",
    "l1": "zero 1x1 weights",
    "nm": "zero 1x1 weights",
    "l0": "closed 1x1 channels",
}
FULL = {"width": 0.5, "train_limit": 20000, "test_limit": 0, "epochs": 2, "prune_epochs": 2, "batch_size": 128,
        "sparsities": "0.5,0.75,0.9", "rounds": 5, "steps": 20}
QUICK = {"width": 0.25, "train_limit": 1024, "test_limit": 1000, "epochs": 1, "prune_epochs": 1, "batch_size": 64,
         "sparsities": "0.75", "rounds": 2, "steps": 5}


@dataclasses.dataclass
class Row:
    """One accuracy run."""

    strategy: str  # "dense", "dense + same epochs" or a strategy name
    target: float | None
    sparsity: float | None  # what the strategy measures (see MEASURES)
    reached: float | None  # l1 / l0 target mode: where the controller ended at end_step
    zero_1x1: float | None  # zero 1x1 kernel values of the deployable (finalized) model
    accuracy: float
    seconds: float


# ------------------------------------------------------------------ helpers
def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}%"


def _signed_pp(value):
    return f"{100 * value:+.2f} pp"


def _epochs(count):
    return f"{count} epoch" + ("" if count == 1 else "s")


def _ratio(values):
    if not values:
        return "-"
    return f"{statistics.median(values):.3f}x ({min(values):.3f}x-{max(values):.3f}x)"


def _available(names):
    """`(usable, {name: why not})`: the strategies that can be imported."""
    usable, missing = [], {}
    for name in names:
        try:
            registry.get_strategy(name)
        except Exception as error:  # noqa: BLE001 - reported in the section, not hidden
            missing[name] = f"{type(error).__name__}: {error}"
        else:
            usable.append(name)
    return usable, missing


def _clone(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _compile(model, steps):
    schedule = keras.optimizers.schedules.CosineDecay(PRUNE_LR, decay_steps=max(1, steps), alpha=0.05)
    return compile_classifier(model, optimizer=keras.optimizers.Adam(schedule))


def _fit(model, dataset, *, epochs, batch_size, learning_rate, callbacks=()):
    steps = -(-len(dataset.x_train) // batch_size) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.05)
    compile_classifier(model, optimizer=keras.optimizers.Adam(schedule))
    model.fit(dataset.x_train, dataset.y_train, batch_size=batch_size, epochs=epochs, callbacks=list(callbacks),
              verbose=0)
    scores = model.evaluate(dataset.x_test, dataset.y_test, batch_size=256, verbose=0, return_dict=True)
    return float(scores["accuracy"])


def _make(name, target, steps):
    """The strategy `name` on the 1x1 convolutions (`steps`: begin_step, end_step, frequency)."""
    if name == "nm":
        return make_strategy("nm", steps={"begin_step": 0}, n=2, m=4, layers=LAYERS)
    return make_strategy(name, target_sparsity=target, steps=steps, layers=LAYERS)


def _zero_1x1(model, strategy):
    """Fraction of zero values in the 1x1 kernels of the deployable model (L0 gates folded in)."""
    final = type(strategy).finalize(model) if strategy is not None else model
    kernels = [np.asarray(layer.kernel) for layer in final.layers if layer.name.endswith("_pw")]
    return float(sum(k.size - np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels))


# --------------------------------------------------------------- the phases
def accuracy_runs(dense, dataset, settings, names, sparsities, log):
    """The baseline and one run per (strategy, target); returns `(rows, steps)`."""
    prune_steps = pruning_steps(num_samples=len(dataset.x_train), batch_size=settings["batch_size"],
                                epochs=settings["prune_epochs"])
    plan = [("dense + same epochs", None)]
    for name in names:
        plan += [(name, None)] if name == "nm" else [(name, s) for s in sparsities]
    rows = []
    for index, (name, target) in enumerate(plan, start=1):
        started = time.time()
        keras.utils.set_random_seed(settings["seed"] + 1)  # the same shuffling for every run
        model = _clone(dense)
        strategy = None if name.startswith("dense") else _make(name, target, prune_steps)
        if strategy is not None:
            model = strategy.prepare(model)
        accuracy = _fit(model, dataset, epochs=settings["prune_epochs"], batch_size=settings["batch_size"],
                        learning_rate=PRUNE_LR, callbacks=[strategy] if strategy else [])
        row = Row(strategy=name, target=target if name != "nm" else 0.5,
                  sparsity=strategy.current_sparsity() if strategy else None,
                  reached=getattr(strategy, "reached_sparsity", None),
                  zero_1x1=_zero_1x1(model, strategy), accuracy=accuracy, seconds=time.time() - started)
        rows.append(row)
        label = name if target is None else f"{name} {target:g}"
        extra = f", controller reached {row.reached:.4f}" if row.reached is not None else ""
        log(f"[{index}/{len(plan)}] {label}: sparsity {_pct(row.sparsity)} ({MEASURES.get(name, 'none')}{extra}), "
            f"zero 1x1 weights {_pct(row.zero_1x1)}, test accuracy {accuracy:.4f} ({row.seconds:.0f} s)")
        del model
    return rows, prune_steps


def step_times(dense, dataset, settings, names, timing_target, frequency, log):
    """Interleaved step times: `{name: [ratio per round]}` and the dense step means (s)."""
    batch, steps, rounds = settings["batch_size"], settings["steps"], settings["rounds"]
    x, y = dataset.x_train[: batch * steps], dataset.y_train[: batch * steps]
    total = (rounds + 1) * steps
    schedule = {"begin_step": 0, "end_step": total + 1, "frequency": frequency}  # active in every timed step
    keras.utils.set_random_seed(settings["seed"] + 2)
    models = {"dense": (_compile(_clone(dense), total), [])}
    for name in names:
        strategy = _make(name, timing_target, schedule)
        models[name] = (_compile(strategy.prepare(_clone(dense)), total), [strategy])

    def segment(name):
        model, callbacks = models[name]
        timer = StepTimer()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[timer, *callbacks])
        return statistics.fmean(timer.times[1:])  # mean: includes the update steps

    ratios, dense_means, strategy_means = {n: [] for n in names}, [], {n: [] for n in names}
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # each segment "ends training before end_step": expected here
    try:
        with warnings.catch_warnings():  # and stops before the schedule ends, on purpose
            warnings.filterwarnings("ignore", ".*schedule ends at step", UserWarning)
            for round_index in range(rounds + 1):  # round 0 warms up (tracing) and is dropped
                _round(round_index, names, segment, ratios, dense_means, strategy_means, rounds, log)
    finally:
        absl_logging.set_verbosity(verbosity)
    return ratios, dense_means, strategy_means


def _round(round_index, names, segment, ratios, dense_means, strategy_means, rounds, log):
    before = segment("dense")
    for name in names:
        mean = segment(name)
        after = segment("dense")
        if round_index:
            ratios[name].append(mean / ((before + after) / 2))
            strategy_means[name].append(mean)
            dense_means.append(before)
        before = after
    log(f"timing round {round_index}/{rounds}" + (" (warm-up, dropped)" if not round_index else ": " + ", ".join(
        f"{n} {ratios[n][-1]:.3f}x" for n in names)))


# ------------------------------------------------------------------ outputs
def plot(rows, path, *, title, dense_accuracy=None):
    """Accuracy vs sparsity, one line per strategy, the dense baseline as a horizontal line."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.8))
    axes = figure.subplots()
    baseline = next(r for r in rows if r.strategy == "dense + same epochs")
    axes.axhline(100 * baseline.accuracy, color="black", linestyle="--", label="dense + same epochs")
    if dense_accuracy is not None:
        axes.axhline(100 * dense_accuracy, color="gray", linestyle=":", label="dense (start of every run)")
    markers = {"gmp": "o", "l1": "s", "l0": "^", "nm": "D"}
    for name in dict.fromkeys(r.strategy for r in rows if not r.strategy.startswith("dense")):
        points = sorted((r.sparsity, r.accuracy) for r in rows if r.strategy == name)
        label = f"{name} 2:4" if name == "nm" else name
        if name == "l0":
            label += " (x: closed channels)"
        axes.plot([100 * s for s, _ in points], [100 * a for _, a in points], marker=markers.get(name, "x"),
                  label=label)
    axes.set_xlabel("sparsity of the 1x1 convolutions (%): zero weights; l0: closed channels")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def render(*, command, settings, dataset, dense_accuracy, dense_zero, rows, prune_steps, ratios, dense_means,
           strategy_means, timing_target, missing, plot_link, minutes):
    test = "all 10000" if len(dataset.x_test) == 10000 else f"the first {len(dataset.x_test)}"
    baseline = next(r for r in rows if r.strategy == "dense + same epochs")
    total_steps = -(-len(dataset.x_train) // settings["batch_size"]) * settings["prune_epochs"]
    lines = [
        "",
        f"Measured with `{command}` ({minutes:.0f} min in all) on {platform.platform()} "
        f"({os.cpu_count()} cores; TF {tf.__version__}, Keras {keras.__version__}).",
        "",
        f"- Data and model: Fashion-MNIST padded to 32x32x3, a balanced subset of {len(dataset.x_train)} training "
        f"images; test accuracy on {test} test images. The demo's MobileNet-V1-style model, width "
        f"{settings['width']:g}; batch {settings['batch_size']}.",
        f"- Dense: trained {_epochs(settings['epochs'])} (Adam, cosine decay from {DENSE_LR:g}); test accuracy "
        f"{100 * dense_accuracy:.2f}%. Every run below starts from these weights and trains "
        f"{_epochs(settings['prune_epochs'])} more ({total_steps} steps) on the same data in the "
        f"same order, Adam with cosine decay from {PRUNE_LR:g}. The fair baseline is \"dense + same epochs\": the "
        "same training without a strategy; Δ is against it.",
        "- Pruned weights, for every strategy: the kernels of the 13 1x1 (pointwise) convolutions, "
        f"`layers=\"{LAYERS}\"`; the stem, the depthwise convolutions and the classifier stay dense. "
        f"gmp, l1 and l0 in target mode: `begin_step=0, end_step={prune_steps['end_step']}, "
        f"frequency={prune_steps['frequency']}` (`tfsparse.training.pruning_steps`), then fine-tuning under the "
        "frozen masks / gates. gmp: per-weight magnitude (`scope=\"layer\"`). l1: proximal soft-thresholding, "
        "`lambda` adapted toward a linear ramp, then the mask set to the target by magnitude at `end_step`. "
        "l0: hard-concrete gates after the BatchNormalization of each 1x1 convolution (one per output channel), "
        f"`lambda` adapted, `log_alpha_scale=\"auto\"` (here "
        f"{auto_log_alpha_scale(PRUNE_LR, prune_steps['end_step']):g}: gates move that many times faster under Adam "
        "than in the paper's parametrization), the gates frozen at `end_step` with exactly the target closed. nm: 2:4 along the input "
        "channels at step 0 (one shot from the dense magnitudes), then fine-tuning.",
        "- Measured sparsity: gmp, l1, nm: zero values of the selected 1x1 kernels. l0: the fraction of closed "
        "channels (gates) of the 1x1 convolutions. \"controller reached\": for l1 and l0, where the adaptive "
        "`lambda` had taken the sparsity at `end_step`, before the mask / gates were set to the target. "
        "\"zero 1x1 weights\": zero values of the 1x1 kernels of the deployable model (`finalize`; for l0 the "
        "closed gates folded into the kernels, whose closed output channels become zero columns; the inputs of the "
        "next layer that they feed are not counted).",
        f"- Step time: the training-step time of each strategy relative to dense training, measured after the "
        f"accuracy runs in one interleaved sequence D S1 D S2 ... D Sk D of {settings['steps']}-step segments "
        f"(batch {settings['batch_size']}), {settings['rounds']} rounds after a dropped warm-up round; each "
        f"strategy on a fresh clone of the dense model with its schedule active throughout (target "
        f"{timing_target:g}; nm 2:4; updates every {prune_steps['frequency']} steps, as in the pruning phase, so "
        "the update steps are included; after `end_step` gmp and nm do less). A round's ratio is the strategy's mean "
        "step time over the mean of the two dense segments around it; median (min-max) over the rounds. Dense "
        f"step: {1000 * statistics.median(dense_means):.1f} ms (median)." if dense_means else
        "- Step time: not measured (no strategy).",
        "",
        "| strategy | target | measured sparsity | controller reached | zero 1x1 weights | test accuracy | "
        "Δ vs dense + same epochs | train step vs dense |",
        "|---|---|---|---|---|---|---|---|",
        f"| dense (start of every run) | - | - | - | {_pct(dense_zero)} | {100 * dense_accuracy:.2f}% | "
        f"{_signed_pp(dense_accuracy - baseline.accuracy)} | - |",
    ]
    for row in rows:
        dense_row = row.strategy.startswith("dense")
        name = "nm 2:4" if row.strategy == "nm" else row.strategy
        measure = "" if dense_row else f" ({MEASURES[row.strategy].split(' 1x1 ')[-1]})"
        lines.append(
            f"| {name} | {'-' if row.target is None else _pct(row.target)} | "
            f"{'-' if row.sparsity is None else _pct(row.sparsity) + measure} | {_pct(row.reached)} | "
            f"{_pct(row.zero_1x1)} | {100 * row.accuracy:.2f}% | {_signed_pp(row.accuracy - baseline.accuracy)} | "
            f"{'1x (reference)' if dense_row else _ratio(ratios.get(row.strategy, []))} |")
    if strategy_means:
        lines += ["", "| strategy (timed config) | mean step, median over rounds | ratio to dense, median (min-max) |",
                  "|---|---|---|",
                  f"| dense | {1000 * statistics.median(dense_means):.1f} ms | 1x |"]
        for name, means in strategy_means.items():
            config = "2:4" if name == "nm" else f"target {timing_target:g}"
            lines.append(f"| {name} ({config}) | {1000 * statistics.median(means):.1f} ms | {_ratio(ratios[name])} |")
    lines += [""] + _notes(rows)
    for name, why in missing.items():
        lines += ["", f"- {name}: not measured, the strategy could not be loaded ({why}); rerun the command once it "
                      "exists."]
    lines += ["", f"![Test accuracy vs sparsity]({plot_link})", ""]
    return "\n".join(lines)


def _notes(rows):
    """Caveats read from the results: controllers that ended short of their target, and the layer allocation."""
    notes = []
    for row in rows:
        if row.reached is not None and row.target is not None and row.reached < row.target - 0.01:
            rest = "zeroed by magnitude over all the 1x1 weights" if row.strategy == "l1" else \
                "closed (lowest `log_alpha` over all the gates)"
            notes.append(f"- {row.strategy} {_pct(row.target)}: the adaptive `lambda` had reached {_pct(row.reached)} "
                         f"at `end_step`; the other {100 * (row.target - row.reached):.1f} points were {rest} in one "
                         "step at `end_step`, so this row measures that top-up as much as the regularizer.")
    names = {row.strategy for row in rows}
    if "gmp" in names and names & {"l1", "l0"}:
        notes.append("- Allocation: gmp prunes every 1x1 kernel to the target (`scope=\"layer\"`, its default); the "
                     "end-step mask of l1 and the gates closed by l0 use one ranking across all the 1x1 weights / "
                     "gates, so they spread the sparsity over the layers differently.")
    return notes


# --------------------------------------------------------------------- main
def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, help=f"model width (default {FULL['width']})")
    parser.add_argument("--train_limit", type=int, help=f"training images (default {FULL['train_limit']})")
    parser.add_argument("--test_limit", type=int, help="test images, 0 for all 10000 (default 0)")
    parser.add_argument("--epochs", type=int, help=f"dense epochs (default {FULL['epochs']})")
    parser.add_argument("--prune_epochs", type=int,
                        help=f"epochs of every run after dense (default {FULL['prune_epochs']})")
    parser.add_argument("--batch_size", type=int, help=f"default {FULL['batch_size']}")
    parser.add_argument("--sparsities", help=f"targets of gmp, l1, l0 (default {FULL['sparsities']})")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="default gmp,l1,l0,nm")
    parser.add_argument("--rounds", type=int, help=f"timed rounds (default {FULL['rounds']})")
    parser.add_argument("--steps", type=int, help=f"steps per timed segment (default {FULL['steps']})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {', '.join(f'{k}={v}' for k, v in QUICK.items())}")
    parser.add_argument("--output", default=BENCHMARKS, help="the BENCHMARKS.md to update")
    parser.add_argument("--plot", default=PLOT, help="the PNG to write (default docs/strategies_accuracy.png)")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    settings["seed"] = args.seed
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        parser.error(f"--strategies: expected names from {','.join(STRATEGIES)}; received {args.strategies!r}")
    sparsities = [float(s) for s in str(settings["sparsities"]).split(",") if s.strip()]
    if not sparsities or not all(0 < s < 1 for s in sparsities):
        parser.error(f"--sparsities: expected values in (0, 1); received {settings['sparsities']!r}")
    return args, settings, names, sparsities


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, settings, names, sparsities = _parse(argv)
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:6.0f} s] {message}", flush=True)

    names, missing = _available(names)
    for name, why in missing.items():
        log(f"skipping {name}: {why}")
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    keras.utils.set_random_seed(settings["seed"])
    dataset = datasets.load("fashion_mnist", image_size=32, channels=3, limit=settings["train_limit"],
                            seed=settings["seed"])
    if settings["test_limit"]:
        dataset = dataclasses.replace(dataset, x_test=dataset.x_test[: settings["test_limit"]],
                                      y_test=dataset.y_test[: settings["test_limit"]])
    dense = load_model_source(MODEL_SPEC, input_shape=dataset.x_train.shape[1:], num_classes=dataset.num_classes,
                              width=settings["width"])
    log(f"dense training: {_epochs(settings['epochs'])} on {len(dataset.x_train)} images, width {settings['width']:g}")
    dense_accuracy = _fit(dense, dataset, epochs=settings["epochs"], batch_size=settings["batch_size"],
                          learning_rate=DENSE_LR)
    log(f"dense test accuracy {dense_accuracy:.4f}")
    rows, prune_steps = accuracy_runs(dense, dataset, settings, names, sparsities, log)
    timing_target = max(sparsities)
    ratios, dense_means, strategy_means = ({}, [], {})
    if names:
        ratios, dense_means, strategy_means = step_times(dense, dataset, settings, names, timing_target,
                                                         prune_steps["frequency"], log)
    plot(rows, args.plot, title=f"Fashion-MNIST, MobileNet-V1-style {settings['width']:g}",
         dense_accuracy=dense_accuracy)
    minutes = (time.time() - started) / 60
    body = render(command=shlex.join(["python", "tools/bench_strategies.py", *argv]), settings=settings,
                  dataset=dataset, dense_accuracy=dense_accuracy, dense_zero=_zero_1x1(dense, None), rows=rows,
                  prune_steps=prune_steps, ratios=ratios, dense_means=dense_means, strategy_means=strategy_means,
                  timing_target=timing_target, missing=missing, plot_link=os.path.relpath(os.path.abspath(args.plot),
                                                             os.path.dirname(os.path.abspath(args.output))),
                  minutes=minutes)
    write_section(SECTION, body, args.output)
    print(body)
    log(f"done: wrote {args.output} and {args.plot}; total {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

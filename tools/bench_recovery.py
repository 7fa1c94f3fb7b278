"""Accuracy recovery benchmark: pruned MobileNet-V1-style models on full Fashion-MNIST.

Writes (or replaces) the "Accuracy recovery" section of BENCHMARKS.md. Run from
the repository root:

    python tools/bench_recovery.py [--workdir=DIR] [--quick]

Protocol (every run resumable: results and dense weights are kept in --workdir):

1. Dense: the MobileNet-V1-style model (`models/mobilenet_v1.py`), width 1, trained
   `--dense_epochs` on all 60,000 Fashion-MNIST training images (32x32x3), test
   accuracy after every epoch (to show where it converged).
2. Every pruned run starts from those weights and gets `--finetune_epochs` more
   (the stated budget); "dense + same epochs" is the same training without
   pruning. Seeds 0, 1, 2 (data order and dropout) for every row.
3. Ablation at 90% of the 1x1 weights: GMP as before (uniform, cosine learning
   rate), then each technique alone and all together.
4. Channel pruning to half the MACs, plain and with growing regularization.
5. Frontier: dense widths trained from scratch for dense + finetune epochs
   (equal total training) against the pruned width-1 models, at emulated
   aarch64 latency relative to the dense width-1 file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time

import dataclasses

import numpy as np

try:  # imported from the repository root (pytest, `python -m tools.bench_recovery`)
    from tools.benchmarks_md import BENCHMARKS, write_section
except ImportError:  # run as `python tools/bench_recovery.py`: tools/ is on sys.path
    from benchmarks_md import BENCHMARKS, write_section

MODEL_SPEC = "models/mobilenet_v1.py:mobilenet_v1"
SECTION = "Accuracy recovery"
BATCH = 128


class Bench:
    """Data, models and a JSON store of finished results in `workdir`."""

    def __init__(self, workdir, *, limit=None, test_limit=None, log=print):
        from tfsparse import data as datasets

        self.workdir, self.log = workdir, log
        os.makedirs(workdir, exist_ok=True)
        self.data = datasets.load("fashion_mnist", image_size=32, channels=3, limit=limit, seed=0)
        if test_limit:
            self.data = dataclasses.replace(self.data, x_test=self.data.x_test[:test_limit],
                                            y_test=self.data.y_test[:test_limit])
        self.store_path = os.path.join(workdir, "results.json")
        self.results = {}
        if os.path.exists(self.store_path):
            with open(self.store_path, encoding="utf-8") as handle:
                self.results = json.load(handle)

    def save(self, key, value):
        self.results[key] = value
        tmp = self.store_path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(self.results, handle, indent=1)
        os.replace(tmp, self.store_path)

    def build(self, width):
        from tfsparse.model_source import load_model_source

        return load_model_source(MODEL_SPEC, input_shape=(32, 32, 3), num_classes=10, width=width)

    def steps_per_epoch(self):
        return math.ceil(len(self.data.x_train) / BATCH)

    def evaluate(self, model):
        scores = model.evaluate(self.data.x_test, self.data.y_test, batch_size=256, verbose=0, return_dict=True)
        return float(scores["accuracy"])

    def order(self, seed, epochs):
        return [np.random.default_rng([seed, epoch]).permutation(len(self.data.x_train)) for epoch in range(epochs)]

    def train_dense(self, width, epochs, seed=0, learning_rate=1e-3):
        """Trains a dense model from scratch; caches weights and per-epoch test accuracy."""
        import keras

        from tfsparse.training import compile_classifier

        key = f"dense/w{width}/e{epochs}/s{seed}"
        path = os.path.join(self.workdir, key.replace("/", "_") + ".weights.h5")
        model = self.build(width)
        if key in self.results and os.path.exists(path):
            model.load_weights(path)
            return model, self.results[key]
        keras.utils.set_random_seed(seed)
        model = self.build(width)
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, self.steps_per_epoch() * epochs, alpha=0.01)
        compile_classifier(model, optimizer=keras.optimizers.Adam(schedule))
        curve, start = [], time.time()
        for epoch, order in enumerate(self.order(seed, epochs)):
            model.fit(self.data.x_train[order], self.data.y_train[order], batch_size=BATCH, epochs=1, shuffle=False,
                      verbose=0)
            curve.append(self.evaluate(model))
            self.log(f"dense width {width} epoch {epoch + 1}/{epochs}: {curve[-1]:.4f} ({time.time() - start:.0f} s)")
        model.save_weights(path)
        result = {"accuracy": curve[-1], "curve": curve, "seconds": time.time() - start}
        self.save(key, result)
        return model, result



@dataclasses.dataclass(frozen=True)
class Recipe:
    """One row of the tables: how a pruned (or dense) run trains.

    Attributes:
        name: Row label.
        kind: "dense" (no pruning), "gmp" or "channel".
        target: 1x1 weight sparsity (gmp) or fraction of MACs kept (channel).
        distill: Train through `tfsparse.Distiller` with the dense model as teacher.
        rewind: `tfsparse.RecoverySchedule` instead of a cosine from the start.
        scope: GMP allocation ("layer" = uniform, "global", "erk", "latency").
        oneshot: "sparsegpt" or "magnitude" one-shot pruning before fine-tuning (then fixed masks).
        regularize: Channel pruning's `regularize` ("growing") or None.
    """

    name: str
    kind: str = "gmp"
    target: float = 0.9
    distill: bool = False
    rewind: bool = False
    scope: str = "layer"
    oneshot: str | None = None
    regularize: str | None = None

    @property
    def key(self):
        return "/".join(f"{k}={v}" for k, v in dataclasses.asdict(self).items() if k != "name")


DENSE = Recipe("dense + same epochs", kind="dense", target=0.0)
GMP = Recipe("GMP, uniform, cosine learning rate (as before)")
ALL = Recipe("all: distillation + rewinding (+ recalibration)", distill=True, rewind=True)
ABLATION = (
    DENSE, GMP,
    Recipe("+ distillation", distill=True),
    Recipe("+ learning-rate rewinding", rewind=True),
    Recipe("+ ERK allocation", scope="erk"),
    Recipe("+ latency-aware allocation", scope="latency"),
    ALL,
    Recipe("all + ERK", distill=True, rewind=True, scope="erk"),
    Recipe("one-shot SparseGPT, then all", distill=True, rewind=True, oneshot="sparsegpt"),
    Recipe("one-shot magnitude, then all", distill=True, rewind=True, oneshot="magnitude"),
)
CHANNEL = (
    Recipe("channel l1, abrupt, cosine (as before)", kind="channel", target=0.5),
    Recipe("channel l1, abrupt + distillation + rewinding", kind="channel", target=0.5, distill=True, rewind=True),
    Recipe("channel l1, growing regularization + distillation + rewinding", kind="channel", target=0.5,
           distill=True, rewind=True, regularize="growing"),
)
FRONTIER = (*(Recipe(f"all at {s:.0%}", target=s, distill=True, rewind=True) for s in (0.8, 0.95)),
            *(Recipe(f"all + ERK at {s:.0%}", target=s, distill=True, rewind=True, scope="erk") for s in (0.8, 0.95)))


class Runner(Bench):
    """Fine-tuning runs from the dense width-1 model."""

    def __init__(self, workdir, *, finetune_epochs=1, dense_epochs=10, width=1.0, **kwargs):
        super().__init__(workdir, **kwargs)
        self.finetune_epochs, self.dense_epochs, self.width = finetune_epochs, dense_epochs, width
        self.dense, self.dense_result = self.train_dense(width, dense_epochs)
        self.total = self.steps_per_epoch() * finetune_epochs

    def clone_dense(self):
        import keras

        model = keras.models.clone_model(self.dense)
        model.set_weights(self.dense.get_weights())
        for layer in model.layers:  # the dense model is frozen once it has been a Distiller's teacher
            layer.trainable = True
        return model

    def steps(self):
        from tfsparse.training import pruning_steps

        return pruning_steps(num_samples=len(self.data.x_train), batch_size=BATCH, epochs=self.finetune_epochs)

    def learning_rate(self, recipe):
        import keras

        import tfsparse

        if recipe.rewind:  # one-shot pruning ends at step 0: the rewind comes at once
            steps = {"end_step": 0} if recipe.oneshot else self.steps()
            return tfsparse.RecoverySchedule.fit_to(steps, total_steps=self.total, peak_rate=1e-3)
        return keras.optimizers.schedules.CosineDecay(5e-4, self.total, alpha=0.05)

    def strategy(self, recipe, model):
        import tfsparse

        steps = self.steps()
        if recipe.kind == "channel":
            return tfsparse.get_strategy("channel")(target_macs=recipe.target, criterion="l1",
                                                    regularize=recipe.regularize, **steps)
        if recipe.oneshot:
            tfsparse.oneshot.prune(model, self.data.x_train[:1024], recipe.target, method=recipe.oneshot,
                                   policy="xnnpack", batch_size=BATCH)
            return None  # the one-shot masks stay attached through fit
        return tfsparse.get_strategy("gmp")(target_sparsity=recipe.target, policy="xnnpack", scope=recipe.scope,
                                            **steps)

    def run(self, recipe, seed):
        """Fine-tunes once; returns (result dict, model). Cached in the store (weights of seed 0 kept)."""
        import keras

        import tfsparse
        from tfsparse.training import compile_classifier

        key = f"run/w{self.width}/{recipe.key}/e{self.finetune_epochs}/s{seed}"
        path = os.path.join(self.workdir, hashlib.sha1(key.encode()).hexdigest()[:16] + ".weights.h5")
        if key in self.results and os.path.exists(path):
            model = self.clone_dense()
            model.load_weights(path)
            return self.results[key], model
        keras.utils.set_random_seed(seed)
        start = time.time()
        model = self.clone_dense()
        strategy = None if recipe.kind == "dense" else self.strategy(recipe, model)
        if strategy is not None:
            model = strategy.prepare(model)
        optimizer = keras.optimizers.Adam(self.learning_rate(recipe))
        trainer = tfsparse.Distiller(model, self.dense) if recipe.distill else model
        compile_classifier(trainer, optimizer=optimizer)
        for order in self.order(seed + 100, self.finetune_epochs):
            trainer.fit(self.data.x_train[order], self.data.y_train[order], batch_size=BATCH, epochs=1,
                        shuffle=False, verbose=0, callbacks=[strategy] if strategy else [])
        final = tfsparse.finalize(model)
        compile_classifier(final)
        result = {"accuracy": self.evaluate(final), "seconds": time.time() - start}
        if recipe.kind != "dense":
            tfsparse.recalibrate(final, self.data.x_train[:2048], batch_size=BATCH)
            result["accuracy_recalibrated"] = self.evaluate(final)
        report = tfsparse.sparsity_report(model)
        result["sparsity"] = float(report.sparsity)
        result["pw_sparsity"] = {row.layer: row.sparsity for row in report.rows
                                 if row.layer.endswith("_pw") and row.weight == "kernel"}
        result["macs"] = int(tfsparse.flops(final).macs)
        if recipe.kind != "channel":  # the same architecture as the dense model: kept for the latency stage
            model.save_weights(path)
        self.save(key, result)
        self.log(f"{recipe.name} seed {seed}: {result['accuracy']:.4f} / recalibrated "
                 f"{result.get('accuracy_recalibrated', float('nan')):.4f}, {result['seconds']:.0f} s")
        return result, model


def latency(runner, runs=5):
    """Emulated aarch64 latency of every frontier model relative to the dense width-1 file (interleaved)."""
    import warnings

    import tfsparse
    from tfsparse.bench import bench

    directory = os.path.join(runner.workdir, "files")
    os.makedirs(directory, exist_ok=True)
    sample = runner.data.x_test[:8]

    def export(model, name, target):
        path = os.path.join(directory, name)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Wrote .* with allow_ineligible=True", category=UserWarning)
            tfsparse.export(model, path, target=target, overwrite=True, representative_data=sample,
                            **({"allow_ineligible": True} if target == "xnnpack" else {}))
        return path

    reference = export(runner.dense, "dense_w1.tflite", "dense")
    models = {f"dense width {w:g}": (runner.train_dense(w, runner.dense_epochs + runner.finetune_epochs)[0], "dense")
              for w in FRONTIER_WIDTHS}
    for recipe in LATENCY_RECIPES:
        models[recipe.name] = (runner.run(recipe, 0)[1], "xnnpack")
    for name, (model, target) in models.items():
        key = f"latency/{name}/e{runner.finetune_epochs}"
        if key in runner.results:
            continue
        path = export(model, hashlib.sha1(name.encode()).hexdigest()[:12] + ".tflite", target)
        result = bench(path, compare=reference, target="arm-emu", threads=1, runs=runs, warmup=1,
                       observe=target == "xnnpack")
        fired = result.observations[0].fired if result.observations else None
        value = {"ratio": 1.0 / result.speedup, "ms": result.models[0].median_ms,
                 "reference_ms": result.models[1].median_ms, "fired": fired, "bytes": os.path.getsize(path),
                 "lint_fires": bool(tfsparse.xnnpack.lint(path).fires) if target == "xnnpack" else None}
        runner.save(key, value)
        runner.log(f"latency {name}: {value}")


FRONTIER_WIDTHS = (0.75, 0.5, 0.35)
ALL_ERK = next(recipe for recipe in ABLATION if recipe.name == "all + ERK")
LATENCY_RECIPES = (ALL, *FRONTIER, ALL_ERK,
                   *(recipe for recipe in ABLATION if recipe.scope in ("erk", "latency") and not recipe.distill))
BUDGETS = (3,)  # fine-tuning epochs of the budget stage (seed 0 only)
BUDGET_RECIPES = (DENSE, GMP, ALL)


def budget_runners(runner):
    """Runners with the same dense start and data, and the longer fine-tuning budgets."""
    result = []
    for epochs in BUDGETS:
        other = Runner.__new__(Runner)
        other.__dict__.update(runner.__dict__)
        other.finetune_epochs, other.total = epochs, runner.steps_per_epoch() * epochs
        result.append(other)
    return result


def _budget_lines(runner):
    lines = ["", "### Longer fine-tuning (seed 0 only: no claim of a difference)", "",
             "The same recipes with more fine-tuning epochs (pruning still over the first 2/3 of the steps).", "",
             "| fine-tuning epochs | dense + same epochs | GMP as before | Δ | all (after recalibration) | Δ |",
             "|---|---|---|---|---|---|"]
    rows = 0
    for other in [runner, *budget_runners(runner)]:
        found = [_seeds(other, recipe, 1) for recipe in BUDGET_RECIPES]
        if not all(found):
            continue
        dense, gmp, best = found[0][0]["accuracy"], found[1][0]["accuracy"], found[2][0]["accuracy_recalibrated"]
        lines.append(f"| {other.finetune_epochs} | {dense:.2%} | {gmp:.2%} | {(gmp - dense) * 100:+.2f} pp | "
                     f"{best:.2%} | {(best - dense) * 100:+.2f} pp |")
        rows += 1
    return lines if rows > 1 else []


def _seeds(runner, recipe, seeds):
    """The stored results of seeds 0, 1, ... (at most `seeds`, stopping at the first missing one)."""
    found = []
    for seed in range(seeds):
        result = runner.results.get(f"run/w{runner.width}/{recipe.key}/e{runner.finetune_epochs}/s{seed}")
        if result is None:
            break
        found.append(result)
    return found


def _stat(values, digits=2):
    values = [v * 100 for v in values]
    mean = sum(values) / len(values)
    return mean, f"{mean:.{digits}f}% ({min(values):.{digits}f}-{max(values):.{digits}f})"


def render(runner, seeds, command, minutes):
    """The markdown section body from the stored results."""
    import keras
    import tensorflow as tf

    dense = runner.dense_result
    epochs, fine = runner.dense_epochs, runner.finetune_epochs
    base = _seeds(runner, DENSE, seeds)
    base_mean = _stat([r["accuracy"] for r in base])[0] if base else float("nan")
    lines = [
        f"Measured with {command} ({minutes:.0f} min of training in all, exports and emulated timing not counted) "
        f"on {platform.platform()} "
        f"({os.cpu_count()} cores; TF {tf.__version__}, Keras {keras.__version__}).",
        "",
        f"- Protocol: the MobileNet-V1-style model (`{MODEL_SPEC}`, width {runner.width:g}, 32x32x3, dropout 0.1) "
        "trained dense on "
        f"all {len(runner.data.x_train):,} Fashion-MNIST training images for {_count(epochs, 'epoch')} (Adam, cosine from "
        f"0.001, batch {BATCH}); test accuracy on all {len(runner.data.x_test):,} test images. Every run below starts "
        f"from those weights and gets {_count(fine, 'epoch')} more ({runner.total} steps, the stated fine-tuning budget) in "
        f"the seed's data order; seeds 0-{seeds - 1}, mean (min-max). \"dense + same epochs\" is that training "
        "without pruning; Δ is against its mean.",
        f"- Dense convergence (test accuracy after each epoch): "
        + ", ".join(f"{a:.2%}" for a in dense["curve"]) + ".",
        "- Pruning: GMP (`policy=\"xnnpack\"`: the 13 1x1 convolutions), polynomial schedule over the first 2/3 "
        "of the steps (`tfsparse.training.pruning_steps`), then fine-tuning under the frozen masks. "
        "Cosine learning rate: 0.0005 decaying to 5% (as in the earlier sections). Rewinding: "
        "`tfsparse.RecoverySchedule.fit_to(steps, peak_rate=0.001)` (0.0005 while pruning, 0.001 at `end_step`, "
        "cosine to 1%). Distillation: `tfsparse.Distiller(student, dense, alpha=0.5, temperature=4)`. "
        "Allocation: `scope=` of GMP (uniform = every layer at the target; `erk`, `latency`: pooled 1x1 "
        "sparsity still exactly the target, each layer capped at 98%). One-shot: `tfsparse.oneshot.prune` on "
        "1,024 training images, masks then fixed (its rewind is at step 0: cosine from 0.001 over all steps). Recalibration: `tfsparse.recalibrate` on 2,048 training "
        "images after training (both accuracies shown for every run).",
        "",
        "### GMP at 90% of the 1x1 weights: ablation",
        "",
        "| recipe | seeds | test accuracy | Δ vs dense + same epochs | after BN recalibration | "
        "Δ after recalibration | 1x1 sparsity | MACs in 1x1 layers left | run time |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| dense (start of every run) | - | {dense['accuracy']:.2%} | {dense['accuracy'] * 100 - base_mean:+.2f} pp "
        "| - | - | 0% | 100% | - |",
    ]
    dense_pw_macs = _pw_macs(runner, {})
    for recipe in ABLATION:
        rows = _seeds(runner, recipe, seeds)
        if not rows:
            continue
        mean, text = _stat([r["accuracy"] for r in rows])
        if recipe.kind == "dense":
            lines.append(f"| {recipe.name} | {len(rows)} | {text} | +0.00 pp | - | - | 0% | 100% | "
                         f"{_mean(r['seconds'] for r in rows):.0f} s |")
            continue
        recal, recal_text = _stat([r["accuracy_recalibrated"] for r in rows])
        left = _pw_macs(runner, rows[0]["pw_sparsity"]) / dense_pw_macs
        sparsity = _mean(_pooled(r["pw_sparsity"], runner) for r in rows)
        lines.append(f"| {recipe.name} | {len(rows)} | {text} | {mean - base_mean:+.2f} pp | {recal_text} | "
                     f"{recal - base_mean:+.2f} pp | {sparsity:.1%} | {left:.1%} | "
                     f"{_mean(r['seconds'] for r in rows):.0f} s |")
    lines += ["", "### Channel pruning to half the MACs", "",
              "`ChannelPruning(target_macs=0.5, criterion=\"l1\", **steps)` on every prunable channel group (the "
              "same schedule); growing regularization: `regularize=\"growing\"` (the chosen channels fade before "
              "removal). MACs of `tfsparse.finalize(model)` (channels physically removed) over the dense model's.",
              "", "| recipe | seeds | test accuracy | Δ vs dense + same epochs | after BN recalibration | Δ after "
              "recalibration | MACs ratio | run time |", "|---|---|---|---|---|---|---|---|"]
    dense_macs = base[0]["macs"] if base else 1
    for recipe in CHANNEL:
        rows = _seeds(runner, recipe, seeds)
        if not rows:
            continue
        mean, text = _stat([r["accuracy"] for r in rows])
        recal, recal_text = _stat([r["accuracy_recalibrated"] for r in rows])
        lines.append(f"| {recipe.name} | {len(rows)} | {text} | {mean - base_mean:+.2f} pp | {recal_text} | "
                     f"{recal - base_mean:+.2f} pp | {_mean(r['macs'] for r in rows) / dense_macs:.3f} | "
                     f"{_mean(r['seconds'] for r in rows):.0f} s |")
    lines += _frontier_lines(runner, seeds, base_mean)
    lines += _budget_lines(runner)
    return "\n".join(lines) + "\n"


def _count(number, noun):
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _mean(values):
    values = list(values)
    return sum(values) / len(values)


def _pw_layers(runner):
    return [layer for layer in runner.dense.layers if layer.name.endswith("_pw")]


def _pw_macs(runner, sparsities):
    """MACs of the 1x1 convolutions with each layer's kernel at its sparsity (dense where not given)."""
    total = 0
    for layer in _pw_layers(runner):
        h, w = layer.output.shape[1:3]
        total += h * w * int(np.prod(layer.kernel.shape)) * (1 - sparsities.get(layer.name, 0.0))
    return total


def _pooled(sparsities, runner):
    sizes = {layer.name: int(np.prod(layer.kernel.shape)) for layer in _pw_layers(runner)}
    return sum(sizes[name] * value for name, value in sparsities.items()) / sum(sizes[name] for name in sparsities)


def _frontier_lines(runner, seeds, base_mean):
    fine = runner.finetune_epochs
    points = []
    for w in FRONTIER_WIDTHS:
        key = f"dense/w{w}/e{runner.dense_epochs + fine}/s0"
        lat = runner.results.get(f"latency/dense width {w:g}/e{fine}")
        if key in runner.results and lat:
            points.append((f"dense width {w:g} ({runner.dense_epochs + fine} epochs from scratch)", w, 0.0,
                           runner.results[key]["accuracy"], None, lat))
    for recipe in LATENCY_RECIPES:
        rows = _seeds(runner, recipe, seeds)
        lat = runner.results.get(f"latency/{recipe.name}/e{fine}")
        if rows and lat:
            points.append((f"width 1, {recipe.name}", 1.0, recipe.target,
                           _mean(r["accuracy_recalibrated"] for r in rows),
                           [r["accuracy_recalibrated"] for r in rows], lat))
    if not points:
        return []
    lines = ["", "### Frontier: pruned width 1 against dense narrower models at matched emulated latency", "",
             f"Equal total training: {runner.dense_epochs + fine} epochs for each (dense widths from scratch; the "
             f"pruned models {runner.dense_epochs} dense + {fine} pruning). Latency: `tfsparse.bench(..., "
             "target=\"arm-emu\", threads=1)`, each file interleaved with the dense width-1 file (xnnpack files for "
             "the pruned models, dense files for the widths), median ratio; emulated (qemu) ratios overstate real "
             "devices. \"dense curve at that latency\": the dense widths' accuracy interpolated linearly in latency "
             "(width 1 = 1.0x, its accuracy the dense + same epochs mean).",
             "", "| model | seeds | 1x1 sparsity | test accuracy | emulated latency vs dense width 1 | `.tflite` bytes "
             "| sparse path observed | dense curve at that latency | pruned − dense curve |",
             "|---|---|---|---|---|---|---|---|---|"]
    curve = sorted([(p[5]["ratio"], p[3]) for p in points if p[4] is None] + [(1.0, base_mean / 100)])
    for name, _, sparsity, accuracy, per_seed, lat in points:
        text = f"{accuracy:.2%}" if per_seed is None else _stat(per_seed)[1]
        compare = gap = "-"
        if per_seed is not None and curve[0][0] <= lat["ratio"] <= curve[-1][0]:
            matched = float(np.interp(lat["ratio"], [c[0] for c in curve], [c[1] for c in curve]))
            compare, gap = f"{matched:.2%}", f"{(accuracy - matched) * 100:+.2f} pp"
        observed = "-" if lat["fired"] is None else ("yes" if lat["fired"] else "no")
        count = "1" if per_seed is None else str(len(per_seed))
        lines.append(f"| {name} | {count} | {sparsity:.0%} | {text} | {lat['ratio']:.3f}x | {lat['bytes']:,} | "
                     f"{observed} | {compare} | {gap} |")
    return lines


QUICK = {"limit": 1024, "test_limit": 500, "dense_epochs": 1, "finetune_epochs": 1, "seeds": 1, "width": 0.25,
         "stages": "ablation,write", "only": "as before,+ distillation"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/tfsparse_bench_recovery")
    parser.add_argument("--stages", default="dense,ablation,channel,frontier,latency,write",
                        help="comma-separated: dense (also trains the --widths), ablation, channel, frontier, "
                             "latency (emulated aarch64), budget (longer fine-tuning, seed 0), write (the "
                             "BENCHMARKS.md section)")
    parser.add_argument("--dense_epochs", type=int, default=10)
    parser.add_argument("--finetune_epochs", type=int, default=1)
    parser.add_argument("--width", type=float, default=1.0, help="width of the pruned model")
    parser.add_argument("--widths", default="1.0", help="dense widths the dense stage trains")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated substrings of the recipes to run")
    parser.add_argument("--limit", type=int, default=None, help="training images (default: all)")
    parser.add_argument("--test_limit", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--output", default=BENCHMARKS, help="the markdown file to write")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}")
    parser.add_argument("--as_run", default=None,
                        help="markdown saying how the stored results were produced (several invocations), for the text")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    log = lambda m: print(m, flush=True)  # noqa: E731
    stages = [stage for stage in args.stages.split(",") if stage]
    recipes = {"dense": (), "ablation": ABLATION, "channel": CHANNEL, "frontier": FRONTIER, "latency": (), "write": (),
               "budget": ()}
    for stage in stages:
        if stage not in recipes:
            parser.error(f"--stages: unknown stage {stage!r}; expected some of {', '.join(recipes)}")
    if stages == ["dense"]:
        bench = Bench(args.workdir, limit=args.limit, test_limit=args.test_limit, log=log)
        for width in [float(w) for w in args.widths.split(",")]:
            bench.train_dense(width, args.dense_epochs)
        return 0
    runner = Runner(args.workdir, finetune_epochs=args.finetune_epochs, dense_epochs=args.dense_epochs,
                    width=args.width, limit=args.limit, test_limit=args.test_limit, log=log)
    for stage in stages:
        if stage == "latency":
            latency(runner)
        if stage == "budget":
            for other in budget_runners(runner):
                for recipe in BUDGET_RECIPES:
                    other.run(recipe, 0)
        if stage == "write":
            command = args.as_run or "`" + " ".join(["python tools/bench_recovery.py", *(argv or [])]) + "`"
            minutes = sum(r.get("seconds", 0) for r in runner.results.values() if isinstance(r, dict)) / 60
            write_section(SECTION, render(runner, args.seeds, command, minutes), path=args.output)
            runner.log(f"wrote the {SECTION!r} section of {args.output}")
        for recipe in recipes[stage]:
            if args.only and recipe is not DENSE and not any(part in recipe.name for part in args.only.split(",")):
                continue
            for seed in range(args.seeds):
                runner.run(recipe, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Side by side with TF Model Optimization: GMP for XNNPACK in tfsparse (Keras 3) and in tfmot (tf_keras).

Writes (or replaces) the "Side by side with TF Model Optimization" section of
BENCHMARKS.md and an accuracy-vs-emulated-latency plot (PNG). Needs the
`compare` extra (`tools/setup.sh` installs it). Run from the repository root:

    python tools/compare_tfmot.py              # the full protocol: widths 1.0 and 0.5, 3 seeds (hours on 2 cores)
    python tools/compare_tfmot.py --widths=1.0 --seeds=1 --sparsities=0.75,0.9 --train_limit=8000 \\
        --frontier_widths=0.25,0.5 --calibration=0.7,0.8,0.9,0.95,0.98 --rounds=3   # reduced: 17 min on 2 cores
    python tools/compare_tfmot.py --quick      # smoke run: width 0.25, 1 seed, 1024 images (3-4 minutes)

tfmot runs in its own process (`tools/tfmot_worker.py`, `TF_USE_LEGACY_KERAS=1`);
this tool, like tfsparse, never imports `tf_keras` or tfmot. Protocol, per width:

1. Fashion-MNIST padded to 32x32x3 (`tfsparse.data.load`), a balanced subset
   of `--train_limit` training images, the test set (all 10k unless
   `--test_limit`). The demo's MobileNet-V1-style model (XNNPACK form,
   `models/mobilenet_v1.py`) trained dense once, in Keras 3, for `--epochs`
   (Adam, cosine decay from 1e-3). Its weights go to the worker by layer order.
2. Per seed, both sides start from these weights and train `--prune_epochs`
   more with Adam, cosine decay from 5e-4 to 5% of it, batch `--batch_size`,
   on the same data in the same order (one numpy permutation per seed and
   epoch, no shuffling by the frameworks; dropout and the frameworks' own
   randomness are seeded with the same seed, but their random streams
   differ): "dense + same epochs" (no pruning), and GMP to each target with
   the polynomial schedule (power 3) from 0 at step 0 to the target at
   `end_step` (about 2/3 of the steps, a multiple of `frequency`, so both
   update the masks at exactly the same steps), then fine-tuning.
   tfsparse: `get_strategy("gmp")(..., policy="xnnpack")`; tfmot:
   `prune_low_magnitude(..., pruning_policy=PruneForLatencyOnXNNPack())`.
3. Exports: tfsparse `export(target="xnnpack")` (batch 1; `allow_ineligible`
   for targets <= 2/3); tfmot: `strip_pruning`, a batch-1 copy converted with
   `Optimize.EXPERIMENTAL_SPARSITY`. This tool lints (`tfsparse.xnnpack.lint`)
   and times both sides' files on emulated aarch64 against the dense file of
   the same width (`tfsparse.bench.bench(..., target="arm-emu")`, interleaved).
4. Train-step time: each side against its own dense training, in interleaved
   segments D P D P ... D (as `tools/bench_strategies.py` does).
5. Frontier: dense models at `--frontier_widths` (same recipe, no pruning)
   against the pruned widest model at the sparsities whose emulated latency
   matches theirs (interpolated from one-shot magnitude masks at the
   `--calibration` sparsities, then trained with tfsparse, first seed).

Example (the table's number formats and the schedule):

>>> _mean_spread([0.87, 0.86, 0.88]), _ratio([1.04, 1.1, 0.98])
('87.00% (86.00-88.00)', '1.040x (0.980x-1.100x)')
>>> schedule_steps(20000, 128, 2)
(314, {'begin_step': 0, 'end_step': 200, 'frequency': 10})
>>> match_sparsity([(0.7, 0.5), (0.9, 0.3)], 0.4), match_sparsity([(0.7, 0.5), (0.9, 0.3)], 0.9)
((0.8, False), (0.7, True))
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

try:  # imported from the repository root (pytest, `python -m tools.compare_tfmot`)
    from tools.benchmarks_md import BENCHMARKS, write_section
except ImportError:  # run as `python tools/compare_tfmot.py`: tools/ is on sys.path
    from benchmarks_md import BENCHMARKS, write_section

SECTION = "Side by side with TF Model Optimization"
MODEL_SPEC = "models/mobilenet_v1.py:mobilenet_v1"
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tfmot_worker.py")
PLOT = os.path.join(os.path.dirname(BENCHMARKS), "docs", "compare_tfmot_frontier.png")
DENSE_LR, PRUNE_LR, LR_ALPHA = 1e-3, 5e-4, 0.05
SIDES = ("tfsparse", "tfmot")
FULL = {"widths": "1.0,0.5", "seeds": 3, "sparsities": "0.5,0.75,0.9", "frontier_widths": "0.25,0.35,0.5,0.75",
        "calibration": "0.7,0.8,0.85,0.9,0.95,0.98", "train_limit": 20000, "test_limit": 0, "epochs": 2,
        "prune_epochs": 2, "batch_size": 128, "rounds": 5, "steps": 20, "runs": 5}
QUICK = {"widths": "0.25", "seeds": 1, "sparsities": "0.75", "frontier_widths": "0.125", "calibration": "0.8,0.95",
         "train_limit": 1024, "test_limit": 500, "epochs": 1, "prune_epochs": 1, "batch_size": 32, "rounds": 1,
         "steps": 4, "runs": 2}


@dataclasses.dataclass
class Run:
    """One pruned model of one side."""

    side: str  # "tfsparse" or "tfmot"
    width: float
    seed: int
    target: float
    accuracy: float
    layers: dict  # {layer name: zero fraction of its kernel}
    tflite: str = ""
    size_bytes: int | None = None
    lint_fires: bool | None = None
    pooled: float | None = None  # the linter's pooled sparsity of the region's 1x1 convolutions
    latency: float | None = None  # emulated aarch64 median, relative to the dense file of the same width
    fired: bool | None = None  # observed on emulated aarch64


# ------------------------------------------------------------------ helpers
def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}%"


def _mean_spread(values, digits=2):
    """`mean% (min-max)` of fractions; just the value for one."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = f"{100 * statistics.fmean(values):.{digits}f}%"
    return mean if len(values) == 1 else f"{mean} ({100 * min(values):.{digits}f}-{100 * max(values):.{digits}f})"


def _ratio(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}x"
    return f"{statistics.median(values):.3f}x ({min(values):.3f}x-{max(values):.3f}x)"


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _yes(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return "yes" if all(values) else "no" if not any(values) else f"{sum(map(bool, values))}/{len(values)}"


def _count(number, noun):
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _pp(value):
    return "-" if value is None else f"{100 * value:+.2f} pp"


def schedule_steps(num_samples, batch_size, epochs):
    """`(total steps, {begin_step, end_step, frequency})`: prune over about 2/3 of the steps, about 20 updates.

    `end_step` is a multiple of `frequency`, so tfmot (which updates only on multiples) and tfsparse (which
    also updates at `end_step`) update the masks at the same steps.
    """
    total = math.ceil(num_samples / batch_size) * epochs
    prune = max(1, int(total * 2 / 3))
    frequency = max(1, prune // 20)
    return total, {"begin_step": 0, "end_step": max(frequency, prune // frequency * frequency), "frequency": frequency}


def match_sparsity(calibration, ratio):
    """The sparsity whose latency ratio is `ratio`, interpolated in `[(sparsity, ratio), ...]`; `(s, clipped)`.

    Ratios are made non-increasing in sparsity first (timing noise); outside the calibrated range the nearest
    end is returned with `clipped=True`.
    """
    points = sorted(calibration)
    sparsities = np.array([s for s, _ in points])
    ratios = np.minimum.accumulate(np.array([r for _, r in points]))
    if ratio >= ratios[0] or ratio <= ratios[-1]:
        return float(sparsities[0] if ratio >= ratios[0] else sparsities[-1]), True
    return round(float(np.interp(ratio, ratios[::-1], sparsities[::-1])), 4), False


def kernel_sparsity(model):
    """`{layer name: fraction of zero kernel values}` of every conv and dense layer of a Keras 3 model."""
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    result = {}
    for layer in model.layers:
        if isinstance(layer, kinds):
            kernel = np.asarray(layer.get_weights()[0])
            result[layer.name] = float(1.0 - np.count_nonzero(kernel) / kernel.size)
    return result


def pooled_pw(layers):
    """Mean zero fraction over the `_pw` layers of a `kernel_sparsity` dict (unweighted)."""
    values = [v for k, v in layers.items() if k.endswith("_pw")]
    return statistics.fmean(values) if values else None


# ------------------------------------------------------------ Keras 3 side
class Side:
    """The Keras 3 work: data, dense training, tfsparse runs, exports and emulated timing."""

    def __init__(self, settings, workdir, log):
        import keras

        from tfsparse import data as datasets

        self.keras, self.settings, self.workdir, self.log = keras, settings, workdir, log
        keras.utils.set_random_seed(settings["seed"])
        dataset = datasets.load("fashion_mnist", image_size=32, channels=3, limit=settings["train_limit"],
                                seed=settings["seed"])
        if settings["test_limit"]:
            dataset = dataclasses.replace(dataset, x_test=dataset.x_test[: settings["test_limit"]],
                                          y_test=dataset.y_test[: settings["test_limit"]])
        self.dataset = dataset
        self.total, self.steps = schedule_steps(len(dataset.x_train), settings["batch_size"], settings["prune_epochs"])
        self.orders = {str(seed): np.stack([np.random.default_rng([seed, epoch]).permutation(len(dataset.x_train))
                                            for epoch in range(settings["prune_epochs"])])
                       for seed in settings["seed_values"]}

    def build(self, width):
        from tfsparse.model_source import load_model_source

        return load_model_source(MODEL_SPEC, input_shape=self.dataset.x_train.shape[1:],
                                 num_classes=self.dataset.num_classes, width=width)

    def compile(self, model, learning_rate, steps):
        from tfsparse.training import compile_classifier

        schedule = self.keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps),
                                                               alpha=LR_ALPHA)
        return compile_classifier(model, optimizer=self.keras.optimizers.Adam(schedule))

    def evaluate(self, model):
        scores = model.evaluate(self.dataset.x_test, self.dataset.y_test, batch_size=256, verbose=0,
                                return_dict=True)
        return float(scores["accuracy"])

    def train_dense(self, width):
        """A dense model of `width` trained `epochs` (the start of every run); returns it and its accuracy."""
        settings, data = self.settings, self.dataset
        self.keras.utils.set_random_seed(settings["seed"])
        model = self.build(width)
        steps = math.ceil(len(data.x_train) / settings["batch_size"]) * settings["epochs"]
        self.compile(model, DENSE_LR, steps)
        model.fit(data.x_train, data.y_train, batch_size=settings["batch_size"], epochs=settings["epochs"], verbose=0)
        return model, self.evaluate(model)

    def clone(self, model):
        copy = self.keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return copy

    def gmp(self, target, steps):
        import tfsparse

        with warnings.catch_warnings():  # targets <= 2/3 warn that XNNPACK will run dense; the table says so
            warnings.filterwarnings("ignore", message=r"policy='xnnpack' with a final sparsity", category=UserWarning)
            return tfsparse.get_strategy("gmp")(target_sparsity=target, policy="xnnpack", **steps)

    def finetune(self, dense, seed, target=None):
        """`prune_epochs` from `dense`'s weights in the seed's data order; GMP to `target` unless None."""
        self.keras.utils.set_random_seed(seed)
        model = self.clone(dense)
        strategy = None if target is None else self.gmp(target, self.steps)
        self.compile(model, PRUNE_LR, self.total)
        for order in self.orders[str(seed)]:
            model.fit(self.dataset.x_train[order], self.dataset.y_train[order], batch_size=self.settings["batch_size"],
                      epochs=1, shuffle=False, verbose=0, callbacks=[strategy] if strategy else [])
        return model, self.evaluate(model)

    def export(self, model, name, target):
        import tfsparse

        path = os.path.join(self.workdir, name)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Wrote .* with allow_ineligible=True", category=UserWarning)
            result = tfsparse.export(model, path, target=target, overwrite=True,
                                     representative_data=self.dataset.x_test[:8],
                                     **({"allow_ineligible": True} if target == "xnnpack" else {}))
        return result

    def step_times(self, dense, target):
        """Interleaved D P D ... D segments of tfsparse GMP vs dense Keras 3 training (see `tools/step_timer.py`)."""
        from absl import logging as absl_logging

        try:
            from tools.step_timer import StepTimer
        except ImportError:
            from step_timer import StepTimer
        settings = self.settings
        batch, steps, rounds = settings["batch_size"], settings["steps"], settings["rounds"]
        x, y = self.dataset.x_train[: batch * steps], self.dataset.y_train[: batch * steps]
        total = (rounds + 1) * steps
        schedule = {"begin_step": 0, "end_step": total + 1, "frequency": self.steps["frequency"]}
        self.keras.utils.set_random_seed(settings["seed"] + 2)
        dense_model = self.compile(self.clone(dense), PRUNE_LR, total)
        pruned = self.compile(self.clone(dense), PRUNE_LR, total)
        strategy = self.gmp(target, schedule)

        def segment(model, callbacks):
            timer = StepTimer()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[timer, *callbacks])
            return statistics.fmean(timer.times[1:] or timer.times)

        ratios, dense_ms, pruned_ms = [], [], []
        verbosity = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.ERROR)  # "ends training before end_step": expected here
        try:
            with warnings.catch_warnings():  # each segment stops before the schedule ends, on purpose
                warnings.filterwarnings("ignore", ".*schedule ends at step", UserWarning)
                before = segment(dense_model, [])
                for index in range(rounds + 1):  # round 0 warms up (tracing) and is dropped
                    mean = segment(pruned, [strategy])
                    after = segment(dense_model, [])
                    if index:
                        ratios.append(mean / ((before + after) / 2))
                        dense_ms.append(1000 * before)
                        pruned_ms.append(1000 * mean)
                        self.log(f"timing round {index}/{rounds}: tfsparse {ratios[-1]:.3f}x dense Keras 3")
                    before = after
        finally:
            absl_logging.set_verbosity(verbosity)
        return {"ratios": ratios, "dense_ms": dense_ms, "pruned_ms": pruned_ms}

    def save_for_worker(self, dense, width, seeds, sparsities, timing_target):
        """Writes the data, the data order, the dense weights and the job; returns the job's path."""
        data = {}
        for name in ("x_train", "y_train", "x_test", "y_test"):
            data[name] = os.path.join(self.workdir, f"{name}.npy")
            if not os.path.exists(data[name]):
                np.save(data[name], getattr(self.dataset, name))
        orders = os.path.join(self.workdir, "orders.npz")
        np.savez(orders, **self.orders)
        weights = os.path.join(self.workdir, f"dense_w{width:g}.npz")
        names = save_weights(dense, weights)
        settings = self.settings
        job = {"width": width, "input_shape": list(self.dataset.x_train.shape[1:]),
               "num_classes": int(self.dataset.num_classes), "dense_weights": weights,
               "layer_names": names, "data": data, "orders": orders,
               "seeds": list(seeds), "sparsities": list(sparsities), "batch_size": settings["batch_size"],
               "learning_rate": PRUNE_LR, "lr_alpha": LR_ALPHA, "total_steps": self.total, "steps": self.steps,
               "timing": {"target": timing_target, "steps": settings["steps"], "rounds": settings["rounds"],
                          "frequency": self.steps["frequency"]},
               "output_dir": self.workdir, "result": os.path.join(self.workdir, f"tfmot_w{width:g}.json")}
        path = os.path.join(self.workdir, f"job_w{width:g}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(job, handle, indent=1)
        return path, job["result"]


def save_weights(model, path):
    """Saves the weights of `model`'s weighted layers in layer order (`"LLL_W"` keys); returns the layer names.

    `tools/tfmot_worker.py` loads them into its `tf_keras` copy of the model (`load_weights`).
    """
    weighted = [layer for layer in model.layers if layer.weights]
    np.savez(path, **{f"{i:03d}_{j}": np.asarray(w) for i, layer in enumerate(weighted)
                      for j, w in enumerate(layer.get_weights())})
    return [layer.name for layer in weighted]


def run_worker(job_path, result_path, log):
    """Runs `tools/tfmot_worker.py` with `TF_USE_LEGACY_KERAS=1`; returns its result dict."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    log(f"tfmot worker: {os.path.relpath(WORKER)} {job_path}")
    completed = subprocess.run([sys.executable, WORKER, job_path], env=env, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"the tfmot worker failed with exit status {completed.returncode}; its output is above")
    with open(result_path, encoding="utf-8") as handle:
        return json.load(handle)


def time_file(path, reference, settings, observe=True):
    """`(latency relative to reference, fired)` on emulated aarch64, interleaved with the reference."""
    from tfsparse.bench import bench

    result = bench(path, compare=reference, target="arm-emu", threads=1, runs=settings["runs"], warmup=1,
                   observe=observe)
    fired = result.observations[0].fired if result.observations else None
    return 1.0 / result.speedup, fired, result.models[1].median_ms


def finish(run, settings, emulated, reference, log):
    """Lints and times one run's file in place."""
    import tfsparse

    run.size_bytes = os.path.getsize(run.tflite)
    report = tfsparse.xnnpack.lint(run.tflite)
    run.lint_fires, run.pooled = bool(report.fires), report.pooled_sparsity
    reference_ms = None
    if emulated:
        run.latency, run.fired, reference_ms = time_file(run.tflite, reference, settings)
    log(f"{run.side} w{run.width:g} seed {run.seed} {run.target:g}: accuracy {run.accuracy:.4f}, "
        f"{run.size_bytes} bytes, lint fires: {run.lint_fires}, emulated latency vs dense: "
        f"{'-' if run.latency is None else f'{run.latency:.3f}'}, fired: {run.fired}")
    return reference_ms


# --------------------------------------------------------------- the phases
def measure_width(side, width, settings, emulated, log):
    """Everything for one width: returns `(summary dict, [Run, ...], dense model)`."""
    dense, dense_accuracy = side.train_dense(width)
    log(f"width {width:g}: dense test accuracy {dense_accuracy:.4f}")
    reference = side.export(dense, f"dense_w{width:g}.tflite", "dense")
    summary = {"dense_accuracy": dense_accuracy, "dense_bytes": reference.size_bytes, "reference": reference.path,
               "baseline": {"tfsparse": [], "tfmot": []}}
    runs = []
    for seed in settings["seed_values"]:
        started = time.time()
        _, accuracy = side.finetune(dense, seed)
        summary["baseline"]["tfsparse"].append(accuracy)
        log(f"width {width:g} seed {seed}: dense + same epochs (Keras 3) {accuracy:.4f} "
            f"({time.time() - started:.0f} s)")
        for target in settings["sparsity_values"]:
            started = time.time()
            model, accuracy = side.finetune(dense, seed, target)
            name = f"tfsparse_w{width:g}_s{seed}_{round(1000 * target)}.tflite"
            run = Run("tfsparse", width, seed, target, accuracy, kernel_sparsity(model),
                      side.export(model, name, "xnnpack").path)
            runs.append(run)
            log(f"width {width:g} seed {seed}: tfsparse {target:g} trained ({time.time() - started:.0f} s)")
    timing_target = max(settings["sparsity_values"])
    summary["timing"] = {"tfsparse": side.step_times(dense, timing_target) if settings["rounds"] else {}}
    job, result_path = side.save_for_worker(dense, width, settings["seed_values"], settings["sparsity_values"],
                                            timing_target)
    result = run_worker(job, result_path, log)
    summary["timing"]["tfmot"] = result["timing"]
    summary["baseline"]["tfmot"] = [b["accuracy"] for b in result["dense_same_epochs"]]
    summary["tfmot_start_accuracy"] = result["dense_start_accuracy"]
    summary["versions"] = result["versions"]
    summary["max_abs_error"] = {"tfmot": max((r["max_abs_error"] or 0.0) for r in result["runs"]) if result["runs"]
                                else None}
    runs += [Run("tfmot", width, r["seed"], r["target"], r["accuracy"], r["layers"], r["tflite"])
             for r in result["runs"]]
    reference_ms = [finish(run, settings, emulated, reference.path, log) for run in runs]
    summary["dense_ms"] = _mean(reference_ms)
    return summary, runs, dense


def frontier(side, dense_wide, wide, summaries, runs, settings, log):
    """Dense narrow models vs the pruned widest model at matching emulated latency; returns the frontier dict."""
    from tfsparse.strategies.gmp import keep_largest

    reference = summaries[wide]["reference"]
    calibration = []
    for sparsity in settings["calibration_values"]:
        model = side.clone(dense_wide)
        strategy = side.gmp(sparsity, {"begin_step": 0, "end_step": 1, "frequency": 1})
        for weight in strategy.select(model):  # one-shot magnitude masks: latency depends on the zeros only
            value = np.asarray(weight.variable.value)
            weight.variable.assign(value * keep_largest(value, value.size - round(sparsity * value.size)))
        path = side.export(model, f"calibration_{round(1000 * sparsity)}.tflite", "xnnpack").path
        ratio, _, _ = time_file(path, reference, settings, observe=False)
        calibration.append((sparsity, ratio))
        log(f"calibration: width {wide:g} at {sparsity:g} runs at {ratio:.3f}x the dense latency (emulated)")
    points = []
    for width in settings["frontier_values"]:
        if width in summaries:
            accuracy = _mean(summaries[width]["baseline"]["tfsparse"])
            path = summaries[width]["reference"]
        else:
            dense, _ = side.train_dense(width)
            model, accuracy = side.finetune(dense, settings["seed"])
            path = side.export(model, f"frontier_dense_w{width:g}.tflite", "dense").path
        ratio, _, _ = time_file(path, reference, settings, observe=False)
        matched, clipped = match_sparsity(calibration, ratio)
        points.append({"family": "dense", "width": width, "sparsity": None, "accuracy": accuracy, "latency": ratio,
                       "matched": matched, "clipped": clipped})
        log(f"frontier: dense width {width:g}: accuracy {accuracy:.4f}, {ratio:.3f}x the dense {wide:g} latency; "
            f"matching sparsity {matched:.3f}{' (clipped to the calibrated range)' if clipped else ''}")
    points.append({"family": "dense", "width": wide, "sparsity": None,
                   "accuracy": _mean(summaries[wide]["baseline"]["tfsparse"]), "latency": 1.0})
    for name in SIDES:
        for target in settings["sparsity_values"]:
            chosen = [r for r in runs if r.side == name and r.width == wide and r.target == target]
            points.append({"family": name, "width": wide, "sparsity": _mean([pooled_pw(r.layers) for r in chosen]),
                           "accuracy": _mean([r.accuracy for r in chosen]),
                           "latency": _mean([r.latency for r in chosen]), "target": target})
    done = set(settings["sparsity_values"])
    for target in sorted({p["matched"] for p in points if "matched" in p}):
        if any(abs(target - d) < 0.005 for d in done):
            continue
        done.add(target)
        model, accuracy = side.finetune(dense_wide, settings["seed"], target)
        path = side.export(model, f"frontier_tfsparse_{round(1000 * target)}.tflite", "xnnpack").path
        ratio, fired, _ = time_file(path, reference, settings)
        points.append({"family": "tfsparse", "width": wide, "sparsity": pooled_pw(kernel_sparsity(model)),
                       "accuracy": accuracy, "latency": ratio, "target": target, "matched_run": True, "fired": fired})
        log(f"frontier: tfsparse width {wide:g} at {target:g}: accuracy {accuracy:.4f}, {ratio:.3f}x (emulated)")
    return {"wide": wide, "calibration": calibration, "points": points}


# ------------------------------------------------------------------ outputs
def plot(front, path, title):
    """Accuracy vs emulated latency: the dense family (widths) and the pruned widest model of each side."""
    from matplotlib.figure import Figure

    from tfsparse.outputs import atomic_output

    figure = Figure(figsize=(7.5, 5))
    axes = figure.subplots()
    styles = {"dense": ("black", "o", "dense, by width"), "tfsparse": ("tab:blue", "s", f"tfsparse GMP, width "
                                                                                       f"{front['wide']:g}"),
              "tfmot": ("tab:orange", "^", f"tfmot GMP, width {front['wide']:g}")}
    for family, (color, marker, label) in styles.items():
        chosen = sorted((p for p in front["points"] if p["family"] == family and p["latency"] is not None),
                        key=lambda p: p["latency"])
        if not chosen:
            continue
        axes.plot([p["latency"] for p in chosen], [100 * p["accuracy"] for p in chosen], marker=marker, color=color,
                  label=label, linestyle="-" if family != "tfmot" else ":")
        for p in chosen:
            text = f"{p['width']:g}" if family == "dense" else f"{100 * p['target']:.0f}%"
            axes.annotate(text, (p["latency"], 100 * p["accuracy"]), textcoords="offset points", xytext=(4, 4),
                          fontsize=8, color=color)
    axes.set_xlabel(f"emulated aarch64 latency relative to dense width {front['wide']:g} (1 thread, XNNPACK)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def _group(runs, side, width, target):
    return [r for r in runs if r.side == side and r.width == width and r.target == target]


def _main_table(summaries, runs, settings):
    lines = ["| width | run | test accuracy, mean (min-max) | Δ vs dense + same epochs (same side) | "
             "1x1 sparsity reached | `.tflite` bytes | linter: fires (pooled 1x1 zeros) | emulated aarch64 latency "
             "vs dense | sparse path observed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for width, summary in summaries.items():
        base = {name: _mean(summary["baseline"][name]) for name in SIDES}
        lines.append(f"| {width:g} | dense (start of every run) | {_mean_spread([summary['dense_accuracy']])} | - "
                     f"| 0.0% | {summary['dense_bytes']:,} | - | 1x (reference) | - |")
        for name in SIDES:
            lines.append(f"| {width:g} | {name}: dense + same epochs | {_mean_spread(summary['baseline'][name])} | "
                         "+0.00 pp | - | - | - | - | - |")
        for target in settings["sparsity_values"]:
            for name in SIDES:
                group = _group(runs, name, width, target)
                if not group:
                    continue
                accuracy = _mean([r.accuracy for r in group])
                sizes = [r.size_bytes for r in group if r.size_bytes]
                latency = [r.latency for r in group]
                pooled = _mean([r.pooled for r in group])
                lines.append(
                    f"| {width:g} | {name} GMP {_pct(target)} | {_mean_spread([r.accuracy for r in group])} | "
                    f"{_pp(None if base[name] is None else accuracy - base[name])} | "
                    f"{_pct(_mean([pooled_pw(r.layers) for r in group]))} | "
                    f"{f'{round(statistics.fmean(sizes)):,}' if sizes else '-'} | "
                    f"{_yes([r.lint_fires for r in group])} ({_pct(pooled)}) | "
                    f"{_ratio(latency) if any(v is not None for v in latency) else '-'} | "
                    f"{_yes([r.fired for r in group])} |")
    return lines


def _timing_table(summaries):
    lines = ["| width | side | dense step (own framework), median | pruned step, median | "
             "ratio to own dense, median (min-max) |", "|---|---|---|---|---|"]
    for width, summary in summaries.items():
        for name in SIDES:
            timing = summary["timing"].get(name) or {}
            if not timing.get("ratios"):
                continue
            framework = "Keras 3" if name == "tfsparse" else "tf_keras"
            lines.append(f"| {width:g} | {name} | {statistics.median(timing['dense_ms']):.1f} ms ({framework}) | "
                         f"{statistics.median(timing['pruned_ms']):.1f} ms | {_ratio(timing['ratios'])} |")
    return lines


def _layer_table(runs, width, target):
    per_side = {name: _group(runs, name, width, target) for name in SIDES}
    names = list(dict.fromkeys(k for group in per_side.values() for r in group for k in r.layers))
    rows, rest = [], []
    for layer in names:
        values = {name: _mean([r.layers.get(layer) for r in per_side[name]]) for name in SIDES}
        if any(v for v in values.values()):
            rows.append(f"| {layer} | {_pct(values['tfsparse'])} | {_pct(values['tfmot'])} |")
        else:
            rest.append(layer)
    lines = [f"Per-layer kernel zeros at width {width:g}, target {_pct(target)} (mean over seeds):", "",
             "| layer | tfsparse | tfmot |", "|---|---|---|", *rows]
    if rest:
        lines += ["", f"All {len(rest)} other kernels (stem, depthwise, classifier) are dense on both sides."]
    return lines


def _frontier_lines(front, plot_link):
    wide = front["wide"]
    calibration = ", ".join(f"{100 * s:.0f}%: {r:.3f}x" for s, r in front["calibration"])
    lines = [f"### Frontier: dense narrow models vs pruned width {wide:g} at matching emulated latency", "",
             f"Calibration (one-shot magnitude masks on the dense width-{wide:g} weights, latency relative to its "
             f"dense file): {calibration}. Each dense width's latency gives the matching sparsity by interpolation; "
             "tfsparse then trains that sparsity with the protocol above (first seed). Emulated ratios overstate "
             "real devices.", "",
             "| family | width | 1x1 sparsity | test accuracy | emulated latency vs dense "
             f"{wide:g} | matching sparsity |", "|---|---|---|---|---|---|"]
    for p in sorted(front["points"], key=lambda p: (p["family"] != "dense", p["family"], -(p["latency"] or 0))):
        matched = "-" if "matched" not in p else f"{_pct(p['matched'])}" + (" (clipped)" if p.get("clipped") else "")
        latency = "-" if p["latency"] is None else f"{p['latency']:.3f}x"
        label = p["family"] + (" (latency-matched run)" if p.get("matched_run") else "")
        lines.append(f"| {label} | {p['width']:g} | {_pct(p['sparsity']) if p['sparsity'] is not None else '0%'} | "
                     f"{_mean_spread([p['accuracy']])} | {latency} | {matched} |")
    lines += ["", f"![Accuracy vs emulated latency]({plot_link})"]
    return lines


def render(*, command, settings, summaries, runs, front, emulated, minutes, plot_link, num_train, num_test,
           total_steps, steps, versions):
    """The section body (markdown)."""
    test = "all 10000" if num_test == 10000 else f"the first {num_test}"
    seeds = settings["seed_values"]
    lines = [
        "",
        f"Measured with `{command}` ({minutes:.0f} min in all) on {platform.platform()} ({os.cpu_count()} cores; "
        + ", ".join(f"{k} {v}" for k, v in versions.items()) + ").",
        "",
        f"- Setup, identical on both sides: Fashion-MNIST padded to 32x32x3, a balanced subset of {num_train} "
        f"training images, test accuracy on {test} test images; the demo's MobileNet-V1-style model in XNNPACK "
        f"form (`{MODEL_SPEC}`), widths {', '.join(f'{w:g}' for w in summaries)}. Dense weights trained once per "
        f"width in Keras 3 ({_count(settings['epochs'], 'epoch')}, Adam, cosine decay from {DENSE_LR:g}) and copied to "
        "tf_keras by layer order. Every run then trains "
        f"{_count(settings['prune_epochs'], 'epoch')} ({total_steps} steps, batch {settings['batch_size']}), Adam with "
        f"cosine decay from {PRUNE_LR:g} to {LR_ALPHA:g} of it, the same data order per seed "
        f"({_count(len(seeds), 'seed')}: {', '.join(map(str, seeds))}).",
        f"- Pruning: GMP, polynomial schedule (power 3) from 0% at step 0 to the target at step {steps['end_step']}, "
        f"masks updated every {_count(steps['frequency'], 'step')}, then fine-tuning. "
        "tfsparse: `get_strategy(\"gmp\")(..., "
        "policy=\"xnnpack\")`; tfmot: `prune_low_magnitude(..., pruning_policy=PruneForLatencyOnXNNPack())`, "
        "`strip_pruning`. Both prune exactly the 13 1x1 convolutions.",
        "- Files: tfsparse `export(target=\"xnnpack\")` (batch 1, sparse-encoded where smaller, verified against "
        "Keras); tfmot: a batch-1 copy converted with `Optimize.EXPERIMENTAL_SPARSITY` (tfmot's XNNPACK recipe). "
        "\"dense\" is `export(target=\"dense\")` of the dense start. Linter: `tfsparse.xnnpack.lint`. Latency: "
        + (f"single thread, emulated aarch64 (tflite-runtime XNNPACK under qemu), each file interleaved with the "
           f"dense file of its width, {settings['runs']} timed runs after 1 warm-up; median ratio, min-max over "
           "seeds; \"observed\": `tfsparse.emulator.observe` (outputs differ from the dense twin's). Emulated "
           "ratios overstate real devices." if emulated else
           "not measured (the emulated aarch64 runtime is not set up: `tfsparse emulator setup`)."),
        f"- Train step: each side against its own dense training in the same framework, interleaved D P D ... D "
        f"segments of {settings['steps']} steps, {_count(settings['rounds'], 'round')} after a dropped warm-up round, "
        "GMP "
        f"active (target {max(settings['sparsity_values']):g}, updates every {_count(steps['frequency'], 'step')}).",
        "- Δ is against \"dense + same epochs\" of the same side (the same fine-tuning without pruning).",
        "",
        *_main_table(summaries, runs, settings),
        "",
        *_timing_table(summaries),
        "",
        *_layer_table(runs, max(summaries), max(settings["sparsity_values"])),
    ]
    checks = []
    for width, summary in summaries.items():
        start = summary.get("tfmot_start_accuracy")
        if start is not None:
            error = summary.get("max_abs_error", {}).get("tfmot")
            checks.append(f"width {width:g}: the copied dense weights score {100 * start:.2f}% in tf_keras vs "
                          f"{100 * summary['dense_accuracy']:.2f}% in Keras 3"
                          + ("" if error is None else f"; tfmot's files match tf_keras within {error:.1e} (8 images)"))
    if checks:
        lines += ["", "- Weight copy check: " + "; ".join(checks) + "."]
    if any(t <= 2 / 3 for t in settings["sparsity_values"]):
        lines.append("- At a target of 2/3 or less XNNPACK runs dense (it needs more than 2/3 zeros pooled over the "
                     "1x1 convolutions): those files are smaller, not faster, on both sides.")
    if front is not None:
        lines += ["", *_frontier_lines(front, plot_link)]
    elif settings["frontier_values"]:
        lines += ["", "Frontier: not measured (it needs the emulated aarch64 runtime)."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- main
def _floats(parser, name, text, low, high, allow_empty=False):
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = None
    if values is None or (not values and not allow_empty) or not all(low < v < high for v in values):
        parser.error(f"--{name}: expected comma-separated numbers in ({low:g}, {high:g}); received {text!r}")
    return sorted(set(values), reverse=True)


def parse(argv):
    """`(args, settings)` from the command line; clear errors for bad values."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", help=f"width multipliers of the pruned models (default {FULL['widths']})")
    parser.add_argument("--seeds", type=int, help=f"seeds per run: 0, 1, ... (default {FULL['seeds']})")
    parser.add_argument("--sparsities", help=f"GMP targets (default {FULL['sparsities']})")
    parser.add_argument("--frontier_widths", help=f"dense widths of the frontier, '' for none "
                                                  f"(default {FULL['frontier_widths']})")
    parser.add_argument("--calibration", help=f"sparsities timed to match latencies (default {FULL['calibration']})")
    parser.add_argument("--train_limit", type=int, help=f"training images (default {FULL['train_limit']})")
    parser.add_argument("--test_limit", type=int, help="test images, 0 for all 10000 (default 0)")
    parser.add_argument("--epochs", type=int, help=f"dense epochs (default {FULL['epochs']})")
    parser.add_argument("--prune_epochs", type=int, help=f"epochs of every run (default {FULL['prune_epochs']})")
    parser.add_argument("--batch_size", type=int, help=f"default {FULL['batch_size']}")
    parser.add_argument("--rounds", type=int, help=f"timed step rounds, 0 to skip (default {FULL['rounds']})")
    parser.add_argument("--steps", type=int, help=f"steps per timed segment (default {FULL['steps']})")
    parser.add_argument("--runs", type=int, help=f"timed emulated runs per file (default {FULL['runs']})")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--output", default=BENCHMARKS, help="the BENCHMARKS.md to update")
    parser.add_argument("--plot", default=PLOT, help="the PNG to write (default docs/compare_tfmot_frontier.png)")
    parser.add_argument("--workdir", help="keep the models, files and worker results here (default: a temporary "
                                          "folder, removed at the end)")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    for name in ("seeds", "train_limit", "epochs", "prune_epochs", "batch_size", "steps", "runs"):
        if settings[name] < 1:
            parser.error(f"--{name}: expected an integer >= 1; received {settings[name]}")
    for name in ("test_limit", "rounds"):
        if settings[name] < 0:
            parser.error(f"--{name}: expected an integer >= 0; received {settings[name]}")
    settings["seed"] = args.seed
    settings["seed_values"] = [args.seed + i for i in range(settings["seeds"])]
    settings["width_values"] = _floats(parser, "widths", settings["widths"], 0, 4)
    settings["sparsity_values"] = sorted(_floats(parser, "sparsities", settings["sparsities"], 0, 1))
    settings["calibration_values"] = sorted(_floats(parser, "calibration", settings["calibration"], 2 / 3, 1))
    frontier_values = _floats(parser, "frontier_widths", settings["frontier_widths"], 0, 4, allow_empty=True)
    wide = max(settings["width_values"])
    if any(w >= wide for w in frontier_values):
        parser.error(f"--frontier_widths: expected widths below the widest pruned width {wide:g}; "
                     f"received {settings['frontier_widths']!r}")
    if frontier_values and len(settings["calibration_values"]) < 2:
        parser.error("--calibration: the frontier needs at least 2 sparsities to interpolate")
    settings["frontier_values"] = sorted(frontier_values)
    missing = [name for name in ("tf_keras", "tensorflow_model_optimization") if importlib.util.find_spec(name) is None]
    if missing:
        parser.error(f"{', '.join(missing)} not installed: install the compare extra (`bash tools/setup.sh`, or "
                     "`pip install -e '.[compare]'` then `pip install --no-deps tensorflow-model-optimization`)")
    return args, settings


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, settings = parse(argv)
    started = time.time()

    def log(message):
        print(f"[compare_tfmot {time.strftime('%H:%M:%S')} {time.time() - started:6.0f} s] {message}", flush=True)

    from tfsparse.emulator import status

    emulated = status().ready
    if not emulated:
        log("the emulated aarch64 runtime is not set up: no latencies, no frontier (`tfsparse emulator setup`)")
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compare_tfmot_") as temporary:
        workdir = args.workdir or temporary
        os.makedirs(workdir, exist_ok=True)
        side = Side(settings, workdir, log)
        summaries, runs, versions, dense_models = {}, [], {}, {}
        for width in settings["width_values"]:
            summaries[width], width_runs, dense_models[width] = measure_width(side, width, settings, emulated, log)
            runs += width_runs
            versions = summaries[width].pop("versions")
        wide = max(settings["width_values"])
        front = None
        if emulated and settings["frontier_values"]:
            front = frontier(side, dense_models[wide], wide, summaries, runs, settings, log)
            plot(front, args.plot, title=f"Fashion-MNIST 32x32: pruned MobileNet-V1-style {wide:g} vs dense narrower")
    import keras
    import tensorflow as tf

    versions = {"TF": tf.__version__, "Keras": keras.__version__, **versions}
    minutes = (time.time() - started) / 60
    body = render(command=shlex.join(["python", "tools/compare_tfmot.py", *argv]), settings=settings,
                  summaries=summaries, runs=runs, front=front, emulated=emulated, minutes=minutes,
                  plot_link=os.path.relpath(os.path.abspath(args.plot), os.path.dirname(os.path.abspath(args.output))),
                  num_train=len(side.dataset.x_train), num_test=len(side.dataset.x_test), total_steps=side.total,
                  steps=side.steps, versions=versions)
    write_section(SECTION, body, args.output)
    print(body)
    log(f"done: wrote {args.output}" + (f" and {args.plot}" if front else "") + f"; total {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Expert pruning (MoE): accuracy, parameters, `.tflite` size and latency of models with fewer experts.

Writes (or replaces) the "Expert pruning (MoE)" section of BENCHMARKS.md.
Needs the `tfsparse-moe` plugin and its data (`bash tools/setup.sh`). Run
from the repository root:

    python tools/bench_moe.py [--targets=6,4] [--criteria=frequency,gate,reap,weight_l1] [--quick]

Protocol:

1. Data: the 10,605 movie-review snippets of the vaderSentiment archive
   (`tfsparse_moe.vader`, valence > 0 is positive), the seeded 80/20 split,
   the training split's vocabulary, 48 token ids per snippet
   (`models/moe_text.py:load_data`).
2. Dense: the reference model (`models/moe_text.py:moe_text`: E = 8
   experts, top-2 routing, two MoE layers) trained `--epochs` (AdamW, 1e-3,
   weight decay 0.05, batch 64); the bag-of-words baseline
   (`tfsparse_moe.train_bow_baseline`) on the same split.
3. Every run starts from the dense weights and trains `--prune_epochs` more
   on the same data in the same order (AdamW, `--prune_lr`). "dense + same
   epochs" is the same run without a strategy. The others run
   `moe_expert(target_experts=t, criterion=c, merge=m)` on both MoE layers
   for every target `t`, criterion `c` and `m` in (False, True): statistics
   over a window of 20 batches (a fifth of the steps if fewer), pruning
   from the end of the first window to 60% of the run's steps (at most
   20% of a layer's remaining experts per update), then fine-tuning with
   the pruned experts masked.
4. Deployment: `tfsparse.finalize` (pruned experts physically removed; its
   largest test-logit difference from the masked model is reported),
   parameters, `tfsparse.export(target="dense")` `.tflite` size, and the
   latency ratio against the dense file: both timed interleaved in one
   `tfsparse.bench.bench` call on local LiteRT, single thread (once per
   target: the finalized shapes do not depend on the criterion).

Example (the table's number formats):

>>> _merge_label(True), _ms(0.1234)
('merged', '0.123')
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import tfsparse
from tfsparse.bench import bench
from tfsparse.model_source import load_builder
from tfsparse.outputs import check_output_path

try:  # imported from the repository root (pytest, `python -m tools.bench_moe`)
    from tools.bench_strategies import _epochs, _signed_pp
    from tools.bench_xnnpack import _litert_version
    from tools.benchmarks_md import BENCHMARKS, write_section
except ImportError:  # run as `python tools/bench_moe.py`: tools/ is on sys.path
    from bench_strategies import _epochs, _signed_pp
    from bench_xnnpack import _litert_version
    from benchmarks_md import BENCHMARKS, write_section

SECTION = "Expert pruning (MoE)"
MODEL_SOURCE = "models/moe_text.py"
CRITERIA = ("frequency", "gate", "reap", "weight_l1")
WINDOW = 20
FULL = {"epochs": 5, "prune_epochs": 2, "prune_lr": 5e-4, "batch_size": 64, "targets": "6,4", "limit": 0,
        "local_runs": 100, "num_experts": 8, "top_k": 2}
QUICK = {"epochs": 1, "prune_epochs": 1, "prune_lr": 5e-4, "batch_size": 64, "targets": "4", "limit": 1500,
         "local_runs": 10, "num_experts": 8, "top_k": 2}


@dataclasses.dataclass
class Run:
    """One fine-tuning run (criterion None: "dense + same epochs")."""

    criterion: str | None
    target: int | None
    merge: bool
    accuracy: float  # of the finalized model
    params: int
    moe_params: int  # of the MoE layers (routers and experts)
    experts_kept: dict
    max_difference: float  # |finalized - masked| logits on the test split
    tflite_bytes: int
    seconds: float


def _ms(value):
    return f"{value:.3g}"


def _merge_label(merge):
    return "merged" if merge else "dropped"


def _accuracy(model, x, y):
    logits = model.predict(x, batch_size=256, verbose=0)
    return logits, float(np.mean(np.argmax(logits, axis=-1) == y))


def _compile(model, learning_rate):
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _clone(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def pruning_schedule(steps):
    """`(window, begin_step, end_step, frequency)` of a run of `steps` steps (see the module docstring).

    >>> pruning_schedule(266), pruning_schedule(24)
    ((20, 20, 159, 13), (4, 4, 14, 1))
    """
    window = max(1, min(WINDOW, steps // 5))  # short (--quick) runs need the steps for pruning
    end = max(window + 1, int(0.6 * steps))
    return window, window, end, max(1, (end - window) // 10)


def _strategy(criterion, target, merge, steps):
    from tfsparse_moe import MoEExpertPruning

    window, begin, end, frequency = pruning_schedule(steps)
    return MoEExpertPruning(target, criterion=criterion, merge=merge, begin_step=begin, end_step=end,
                            frequency=frequency, window=window)


def plan_runs(targets, criteria):
    """`[(criterion, target, merge)]`: the baseline, then every target x criterion x (dropped, merged)."""
    return [(None, None, False)] + [(c, t, m) for t in targets for c in criteria for m in (False, True)]


def run_all(settings, targets, criteria, directory, log):
    """Dense training, the baseline and every pruning run; returns `(dense, baseline_bow, runs, files)`."""
    from tfsparse_moe import find_moe_layers, train_bow_baseline

    load_data = load_builder(f"{MODEL_SOURCE}:load_data")
    vocabulary, (x_train, y_train), (x_test, y_test) = load_data()
    if settings["limit"]:
        x_train, y_train = x_train[: settings["limit"]], y_train[: settings["limit"]]
    keras.utils.set_random_seed(settings["seed"])
    dense = load_builder(f"{MODEL_SOURCE}:moe_text")(vocab_size=vocabulary.size, num_experts=settings["num_experts"],
                                                     top_k=settings["top_k"], seed=settings["seed"])
    started = time.time()
    _compile(dense, 1e-3).fit(x_train, y_train, epochs=settings["epochs"], batch_size=settings["batch_size"],
                              verbose=0)
    _, dense_accuracy = _accuracy(dense, x_test, y_test)
    log(f"dense: {settings['epochs']} epochs, {dense.count_params()} params, test accuracy {dense_accuracy:.4f} "
        f"({time.time() - started:.0f} s)")
    bow = train_bow_baseline(seed=settings["seed"])
    log(f"bag-of-words baseline: test accuracy {bow.test_accuracy:.4f}")
    steps = -(-len(x_train) // settings["batch_size"]) * settings["prune_epochs"]
    settings["schedule"] = pruning_schedule(steps)
    runs, files = [], {}
    plan = plan_runs(targets, criteria)
    for index, (criterion, target, merge) in enumerate(plan, start=1):
        started = time.time()
        keras.utils.set_random_seed(settings["seed"] + 1)
        model = _compile(_clone(dense), settings["prune_lr"])
        strategy = None if criterion is None else _strategy(criterion, target, merge, steps)
        model.fit(x_train, y_train, epochs=settings["prune_epochs"], batch_size=settings["batch_size"], verbose=0,
                  callbacks=[strategy] if strategy else [])
        final = tfsparse.finalize(model)
        masked_logits, _ = _accuracy(model, x_test, y_test)
        logits, accuracy = _accuracy(final, x_test, y_test)
        path = os.path.join(directory, f"run{index}.tflite")
        exported = tfsparse.export(final, path, target="dense", representative_data=x_test[:32])
        run = Run(criterion, target, merge, accuracy, int(final.count_params()),
                  sum(layer.count_params() for layer in find_moe_layers(final)),
                  {layer.name: layer.num_experts for layer in find_moe_layers(final)},
                  float(np.max(np.abs(logits - masked_logits))), exported.size_bytes, time.time() - started)
        files.setdefault(target, path)
        runs.append(run)
        label = "dense + same epochs" if criterion is None else f"{criterion} -> {target}, {_merge_label(merge)}"
        log(f"[{index}/{len(plan)}] {label}: experts {run.experts_kept}, {run.params} params, test accuracy "
            f"{accuracy:.4f}, finalized vs masked {run.max_difference:.2g} ({run.seconds:.0f} s)")
    return dense_accuracy, bow, runs, files


def latencies(files, settings, log) -> dict:
    """`{target: BenchResult}` of each target's file against the dense one (interleaved, local LiteRT)."""
    results = {}
    for target, path in files.items():
        if target is None:
            continue
        results[target] = bench(path, compare=files[None], target="local", threads=1, runs=settings["local_runs"],
                                warmup=5)
        log(f"{target} experts: {_ms(results[target].models[0].median_ms)} vs "
            f"{_ms(results[target].models[1].median_ms)} ms, latency ratio {1 / results[target].speedup:.3f}")
    return results


def render(*, command, settings, dense_accuracy, bow, runs, timings, minutes) -> str:
    baseline = runs[0]
    window, begin, end, frequency = settings["schedule"]
    lines = [
        "",
        f"Measured with `{command}` ({minutes:.0f} min in all) on {platform.platform()} ({os.cpu_count()} cores; "
        f"TF {tf.__version__}, Keras {keras.__version__}, LiteRT {_litert_version()}).",
        "",
        f"- Model: `{MODEL_SOURCE}:moe_text`, a 2-block transformer encoder (width 32, 2 heads) whose feed-forward "
        f"layers are `tfsparse_moe.MoE` with E = {settings['num_experts']} experts (hidden 64, gelu), top-"
        f"{settings['top_k']} routing, load-balancing and router z-losses. Every expert is computed for every token "
        "and weighted by the sparse gates (standard TFLite operators), so compute scales with E.",
        "- Data: the 10,605 movie-review snippets of the vaderSentiment 3.3.2 source archive (valence > 0 is "
        "positive), seeded 80/20 split" + (f", the first {settings['limit']} training snippets"
                                             if settings["limit"] else "") + ", 48 token ids each.",
        f"- Dense: {_epochs(settings['epochs'])}, AdamW 1e-3 (weight decay 0.05), batch {settings['batch_size']}: "
        f"test accuracy {100 * dense_accuracy:.2f}%. Bag-of-words logistic regression on the same split: "
        f"{100 * bow.test_accuracy:.2f}%.",
        f"- Every run starts from the dense weights and trains {_epochs(settings['prune_epochs'])} more (AdamW "
        f"{settings['prune_lr']:g}, same data order). `moe_expert(target_experts=t, criterion=c, merge=m, "
        f"window={window}, begin_step={begin}, end_step={end}, frequency={frequency})`: statistics over the last "
        f"{window} batches, at most 20% of a layer's remaining experts pruned per update, then fine-tuning with "
        "the pruned experts masked. Accuracy and sizes are of `tfsparse.finalize(model)` (the pruned experts physically removed); \"finalized vs "
        "masked\" is the largest test-logit difference between the two.",
        f"- Latency: `tfsparse.export(target=\"dense\")` files, pruned and dense timed interleaved in one "
        f"`tfsparse.bench.bench` call on local LiteRT (x86, single thread, {settings['local_runs']} runs each "
        "after 5 warm-up), median; ratio = pruned / dense. One file per target (the shapes do not depend on the "
        "criterion).",
        "",
        "| criterion | experts per layer | pruned experts | test accuracy | Δ vs dense + same epochs | params | "
        "MoE params | .tflite bytes | .tflite ratio | x86 ms, pruned / dense | latency ratio | finalized vs masked | "
        "run time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| dense + same epochs | {settings['num_experts']} | - | {100 * baseline.accuracy:.2f}% | +0.00 pp | "
        f"{baseline.params} | {baseline.moe_params} | {baseline.tflite_bytes} | 1.000 | - | 1.000 | "
        f"{baseline.max_difference:.1g} | {baseline.seconds:.0f} s |",
    ]
    for run in runs[1:]:
        timing = timings.get(run.target)
        time_cells = (f"{_ms(timing.models[0].median_ms)} / {_ms(timing.models[1].median_ms)} | "
                      f"{1 / timing.speedup:.3f}") if timing else "- | -"
        kept = sorted(set(run.experts_kept.values()))
        lines.append(
            f"| {run.criterion} | {'/'.join(map(str, kept))} | {_merge_label(run.merge)} | "
            f"{100 * run.accuracy:.2f}% | {_signed_pp(run.accuracy - baseline.accuracy)} | {run.params} | "
            f"{run.moe_params} | {run.tflite_bytes} | {run.tflite_bytes / baseline.tflite_bytes:.3f} | {time_cells} | "
            f"{run.max_difference:.1g} | {run.seconds:.0f} s |")
    return "\n".join(lines) + "\n"


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", help=f"experts kept per layer, comma-separated (default {FULL['targets']})")
    parser.add_argument("--criteria", default=",".join(CRITERIA), help=f"default {','.join(CRITERIA)}")
    parser.add_argument("--epochs", type=int, help=f"dense epochs (default {FULL['epochs']})")
    parser.add_argument("--prune_epochs", type=int, help=f"epochs of every run (default {FULL['prune_epochs']})")
    parser.add_argument("--limit", type=int, help="training snippets, 0 for all (default 0)")
    parser.add_argument("--local_runs", type=int, help=f"timed runs per file (default {FULL['local_runs']})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {', '.join(f'{k}={v}' for k, v in QUICK.items())}")
    parser.add_argument("--output", default=BENCHMARKS, help="the BENCHMARKS.md to update")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    settings["seed"] = args.seed
    criteria = [c.strip() for c in args.criteria.split(",") if c.strip()]
    if not criteria or any(c not in CRITERIA for c in criteria):
        parser.error(f"--criteria: expected names from {','.join(CRITERIA)}; received {args.criteria!r}")
    try:
        targets = [int(t) for t in str(settings["targets"]).split(",") if t.strip()]
    except ValueError:
        targets = []
    if not targets or any(not settings["top_k"] < t < settings["num_experts"] for t in targets):
        parser.error(f"--targets: expected integers in ({settings['top_k']}, {settings['num_experts']}) (more than "
                     f"top_k, fewer than the experts); received {settings['targets']!r}")
    for name in ("epochs", "prune_epochs", "local_runs"):
        if settings[name] < 1:
            parser.error(f"--{name} must be >= 1; received {settings[name]}")
    if settings["limit"] < 0:
        parser.error(f"--limit must be >= 0; received {settings['limit']}")
    try:
        check_output_path(args.output, overwrite=True, argument="--output")
    except ValueError as error:
        parser.error(str(error))
    return args, settings, targets, criteria


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, settings, targets, criteria = _parse(argv)
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:6.0f} s] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_moe_") as directory:
        dense_accuracy, bow, runs, files = run_all(settings, targets, criteria, directory, log)
        timings = latencies(files, settings, log)
    minutes = (time.time() - started) / 60
    body = render(command=shlex.join(["python", "tools/bench_moe.py", *argv]), settings=settings,
                  dense_accuracy=dense_accuracy, bow=bow, runs=runs, timings=timings, minutes=minutes)
    write_section(SECTION, body, args.output)
    print(body)
    log(f"done: wrote the {SECTION!r} section of {args.output}; total {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

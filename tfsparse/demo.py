"""The demo: prune a MobileNet-V1-style network on Fashion-MNIST end to end.

Dense training; the XNNPACK planner's verdict and Amdahl bound; GMP to 90%
with `policy="xnnpack"` (exactly the 1x1 convolutions XNNPACK runs sparse)
with fine-tuning; export of a dense and a sparse `.tflite` (target `xnnpack`:
sparse weights, batch 1, refused if the linter predicts no sparse path);
verification of both against Keras; an interleaved benchmark locally and, when
the emulator is set up (`tfsparse emulator setup`), on emulated aarch64 with
the observed verdict; and a `REPORT.md` with plots. `quick=True` uses a data
subset and fewer steps.

Example:

>>> from tfsparse.demo import DemoConfig
>>> DemoConfig.quick_config().dense_epochs
2
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import keras
from absl import logging

from tfsparse import data as datasets
from tfsparse import plots
from tfsparse.demo_report import render_report
from tfsparse.model_source import load_model_source
from tfsparse.outputs import atomic_output, output_directory, write_text
from tfsparse.report import sparsity_report
from tfsparse.strategies.gmp import GMP
from tfsparse.training import compile_classifier

MODEL_SPEC = "models/mobilenet_v1.py:mobilenet_v1"
OUTPUT_FILES = ("dense.keras", "pruned.keras", "dense.tflite", "sparse.tflite", "REPORT.md", "demo.json",
                "sparsity.png", "accuracy.png", "size.png")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Demo settings (the defaults are the full demo)."""

    width: float = 1.0
    target_sparsity: float = 0.9
    dense_epochs: int = 3
    prune_epochs: int = 3
    batch_size: int = 128
    train_limit: int | None = None
    test_limit: int | None = None
    bench_runs: int = 30
    seed: int = 0

    @classmethod
    def quick_config(cls):
        return cls(width=0.5, dense_epochs=2, prune_epochs=2, batch_size=64, train_limit=12000, test_limit=2000,
                   bench_runs=10)


def _train(model, dataset, *, epochs, batch_size, learning_rate, callbacks=()):
    steps = -(-len(dataset.x_train) // batch_size) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.05)
    compile_classifier(model, optimizer=keras.optimizers.Adam(schedule))
    model.fit(dataset.x_train, dataset.y_train, batch_size=batch_size, epochs=epochs,
              validation_data=(dataset.x_test, dataset.y_test), callbacks=list(callbacks), verbose=2)
    return model.evaluate(dataset.x_test, dataset.y_test, batch_size=256, verbose=0, return_dict=True)["accuracy"]


def _save(model, path):
    with atomic_output(path) as tmp:
        model.save(tmp)


def run(*, output, quick=False, config=None, overwrite=False):
    """Runs the demo and writes its files into `output`.

    Args:
        output: Directory for the results (created if only it is missing;
            existing demo files are refused).
        quick: Use `DemoConfig.quick_config()`. Defaults to `False`.
        config: A `DemoConfig` overriding both. Defaults to `None`.
        overwrite: Replace the files of an earlier demo in `output`.
            Defaults to `False`.

    Returns:
        A dict of the measured figures (also written to `demo.json`).
    """
    config = config or (DemoConfig.quick_config() if quick else DemoConfig())
    with output_directory(output, files=OUTPUT_FILES, overwrite=overwrite) as output:  # removed if left empty
        return _run(output, config, overwrite)


def _run(output, config, overwrite):
    from tfsparse.bench import bench
    from tfsparse.deploy import export
    from tfsparse.emulator import status as emulator_status
    from tfsparse.xnnpack import check

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    dataset = datasets.load("fashion_mnist", image_size=32, channels=3, limit=config.train_limit, seed=config.seed)
    if config.test_limit:
        dataset = dataclasses.replace(dataset, x_test=dataset.x_test[: config.test_limit],
                                      y_test=dataset.y_test[: config.test_limit])
    model = load_model_source(MODEL_SPEC, input_shape=dataset.x_train.shape[1:], num_classes=dataset.num_classes,
                              width=config.width)
    logging.info("Dense training: %d epochs on %d images.", config.dense_epochs, len(dataset.x_train))
    dense_accuracy = _train(model, dataset, epochs=config.dense_epochs, batch_size=config.batch_size,
                            learning_rate=1e-3)
    _save(model, os.path.join(output, "dense.keras"))

    plan = check(model, sparsity=config.target_sparsity)
    logging.info("XNNPACK planner: %s; 1x1 convolutions are %.1f%% of the MACs, Amdahl bound at %.0f%%: %.2fx.",
                 "fires" if plan.fires else "does not fire", 100 * plan.sparse_macs_share,
                 100 * config.target_sparsity, plan.amdahl_bound)
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    steps = -(-len(dataset.x_train) // config.batch_size) * config.prune_epochs
    end_step = max(2, int(steps * 0.6))
    gmp = GMP(target_sparsity=config.target_sparsity, begin_step=0, end_step=end_step,
              frequency=max(1, end_step // 20), policy="xnnpack")
    logging.info("GMP to %.0f%% on the 1x1 convolutions over %d steps, then fine-tuning to step %d.",
                 100 * config.target_sparsity, end_step, steps)
    pruned_accuracy = _train(pruned, dataset, epochs=config.prune_epochs, batch_size=config.batch_size,
                             learning_rate=5e-4, callbacks=[gmp])
    _save(pruned, os.path.join(output, "pruned.keras"))
    report = sparsity_report(pruned)
    plots.sparsity_plot(gmp.history, report, os.path.join(output, "sparsity.png"), title="GMP on the 1x1 convolutions")

    sample = dataset.x_test[:64]
    dense_export = export(model, os.path.join(output, "dense.tflite"), target="dense", representative_data=sample,
                          overwrite=overwrite)
    sparse_export = export(pruned, os.path.join(output, "sparse.tflite"), target="xnnpack",
                           representative_data=sample, overwrite=overwrite)
    timing = bench(sparse_export.path, compare=dense_export.path, threads=1, runs=config.bench_runs)
    emulator = emulator_status()
    arm = None
    if emulator.ready:
        logging.info("Benchmarking on emulated aarch64 (XNNPACK, 1 thread) and observing the sparse path.")
        arm = bench(sparse_export.path, compare=dense_export.path, threads=1, runs=10, target="arm-emu")
    else:
        logging.info("Skipping the emulated aarch64 benchmark: %s", emulator.reason)

    figures = {
        "config": dataclasses.asdict(config),
        "train_images": len(dataset.x_train), "test_images": len(dataset.x_test),
        "dense_accuracy": float(dense_accuracy), "pruned_accuracy": float(pruned_accuracy),
        "pruned_1x1_sparsity": float(sparsity_report(pruned, weights=gmp.weights).sparsity),
        "model_sparsity": float(report.sparsity),
        "dense_export": dense_export.to_dict(), "sparse_export": sparse_export.to_dict(),
        "bench": timing.to_dict(), "xnnpack_lint": sparse_export.xnnpack_lint,
        "xnnpack_plan": {"fires": plan.fires, "reasons": plan.reasons, "sparse_macs_share": plan.sparse_macs_share,
                         "amdahl_bound": plan.amdahl_bound, "sparse_layers": plan.sparse_layers},
        "arm_bench": arm.to_dict() if arm is not None else None,
        "arm_skipped": None if arm is not None else emulator.reason,
        "seconds": round(time.time() - started, 1),
    }
    plots.bar_chart({"dense": 100 * figures["dense_accuracy"], "pruned": 100 * figures["pruned_accuracy"]},
                    os.path.join(output, "accuracy.png"), title="Fashion-MNIST test accuracy", ylabel="%")
    plots.bar_chart({"dense": dense_export.size_bytes / 1e6, "sparse": sparse_export.size_bytes / 1e6},
                    os.path.join(output, "size.png"), title=".tflite size", ylabel="MB")
    write_text(os.path.join(output, "demo.json"), json.dumps(figures, indent=2, default=str))
    write_text(os.path.join(output, "REPORT.md"), render_report(figures, report, timing, arm))
    return figures

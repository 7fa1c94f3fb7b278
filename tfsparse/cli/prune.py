"""`tfsparse prune`: train a model with a pruning strategy.

Writes `DIR/pruned.keras`, `DIR/report.json`, `DIR/report.md` and
`DIR/sparsity.png` (sparsity over steps and per layer).

Example:

    tfsparse prune --model=models/mobilenet_v1.py:mobilenet_v1 --strategy=gmp \\
        --target_sparsity=0.9 --data=fashion_mnist --image_size=32 --channels=3 \\
        --epochs=3 --output=out/
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import flags

from tfsparse import data as datasets
from tfsparse import plots
from tfsparse.model_source import load_model_source
from tfsparse.outputs import atomic_output, check_output_dir, write_text
from tfsparse.deploy import finalize
from tfsparse.graph import flops
from tfsparse.graph_insert import is_graph_model
from tfsparse.report import sparsity_report
from tfsparse.training import compile_classifier, make_strategy, parse_strategy_args, pruning_steps

FLAGS = flags.FlagValues()
_MODEL = flags.DEFINE_string("model", None, "A .keras file or FILE.py:FUNCTION builder.", flag_values=FLAGS)
_STRATEGY = flags.DEFINE_string("strategy", "gmp", "Registered strategy name (see `tfsparse list`).", flag_values=FLAGS)
_TARGET = flags.DEFINE_float("target_sparsity", 0.9, "Target sparsity in [0, 1).", flag_values=FLAGS)
_DATA = flags.DEFINE_string("data", "fashion_mnist", "Dataset name or .npz path.", flag_values=FLAGS)
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Training epochs.", flag_values=FLAGS)
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.", flag_values=FLAGS)
_LR = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (uncompiled models).", flag_values=FLAGS)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Pad images to this size.", flag_values=FLAGS)
_CHANNELS = flags.DEFINE_integer("channels", None, "Replicate grayscale to this many channels.", flag_values=FLAGS)
_LIMIT = flags.DEFINE_integer("limit", None, "Use only this many training samples.", flag_values=FLAGS)
_ARGS = flags.DEFINE_string("strategy_args", "", "Extra strategy options: key=value,key=value.", flag_values=FLAGS)
_OUTPUT = flags.DEFINE_string("output", None, "Output directory.", flag_values=FLAGS)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing output files.", flag_values=FLAGS)
REQUIRED = ("model", "output")

OUTPUT_FILES = ("pruned.keras", "report.json", "report.md", "sparsity.png")


@dataclasses.dataclass
class PruneResult:
    """What `tfsparse prune` produced."""

    output: str
    strategy: str
    test_accuracy: float
    sparsity: float
    report: object
    shrink: dict | None = None
    strategy_sparsity: float | None = None

    def __str__(self):
        own = "" if self.strategy_sparsity is None else f" ({self.strategy_sparsity:.1%} by the strategy's measure)"
        return (
            f"{self.report}\n\nstrategy {self.strategy}: sparsity of prunable weights {self.sparsity:.1%}{own}, "
            f"test accuracy {self.test_accuracy:.4f}{_describe_shrink(self.shrink)}\n"
            f"wrote {', '.join(OUTPUT_FILES)} to {self.output}"
        )


def run(*, model, output, strategy="gmp", target_sparsity=0.9, data="fashion_mnist", epochs=3,
        batch_size=128, learning_rate=1e-3, image_size=None, channels=None, limit=None,
        strategy_args=None, overwrite=False, verbose=1) -> PruneResult:
    """Trains `model` with `strategy` and writes the pruned model and reports.

    A compiled `.keras` file resumes: its optimizer's step counter continues
    the schedule. Otherwise the model is compiled with Adam for integer labels.
    """
    output = check_output_dir(output, files=OUTPUT_FILES, overwrite=overwrite)
    dataset = datasets.load(data, image_size=image_size, channels=channels, limit=limit)
    keras_model = load_model_source(model, input_shape=dataset.x_train.shape[1:], num_classes=dataset.num_classes)
    datasets.check_fits(dataset, keras_model)
    options = parse_strategy_args(strategy_args) if isinstance(strategy_args, str) else dict(strategy_args or {})
    if getattr(keras_model, "optimizer", None) is None or not keras_model.compiled:
        compile_classifier(keras_model, learning_rate=learning_rate)
        start = 0
    else:
        start = int(keras_model.optimizer.iterations.numpy())
    steps = pruning_steps(num_samples=len(dataset.x_train), batch_size=batch_size, epochs=epochs, start_step=start)
    callback = make_strategy(strategy, target_sparsity=target_sparsity, steps=steps, **options)
    keras_model = callback.prepare(keras_model)
    if not keras_model.compiled:
        compile_classifier(keras_model, learning_rate=learning_rate)
    keras_model.fit(dataset.x_train, dataset.y_train, batch_size=batch_size, epochs=epochs,
                    validation_data=(dataset.x_test, dataset.y_test), callbacks=[callback], verbose=verbose)
    metrics = keras_model.evaluate(dataset.x_test, dataset.y_test, batch_size=batch_size, verbose=0, return_dict=True)
    # Reported on the deployable model before its shrink: gate strategies (l0) zero weights only when folded.
    report = sparsity_report(finalize(keras_model, shrink=False))
    size = _shrink_summary(keras_model)
    with atomic_output(os.path.join(output, "pruned.keras"), overwrite=overwrite) as tmp:
        keras_model.save(tmp)
    summary = {
        "model": model, "strategy": strategy, "strategy_config": callback.get_config(),
        "data": dataset.name, "epochs": epochs, "batch_size": batch_size,
        "test_accuracy": float(metrics.get("accuracy", float("nan"))), "history": callback.history,
        "sparsity": report.to_dict(), "shrink": size, "strategy_sparsity": float(callback.current_sparsity()),
    }
    write_text(os.path.join(output, "report.json"), json.dumps(summary, indent=2, default=str))
    write_text(os.path.join(output, "report.md"), _markdown(summary, report))
    plots.sparsity_plot(callback.history, report, os.path.join(output, "sparsity.png"), title=f"{strategy} on {keras_model.name}")
    return PruneResult(output, strategy, summary["test_accuracy"], report.sparsity, report, size,
                       summary["strategy_sparsity"])


def _shrink_summary(model):
    """MACs and parameters before and after `tfsparse.finalize` (which removes zero channels); `None` if subclassed."""
    if not is_graph_model(model):
        return None
    before, after = flops(finalize(model, shrink=False)), flops(finalize(model))
    return {"macs": before.macs, "params": before.params, "shrunk_macs": after.macs, "shrunk_params": after.params}


def _describe_shrink(size) -> str:
    if not size or size["shrunk_params"] == size["params"]:
        return ""
    return (f"\nexported size (zero channels removed): {size['shrunk_macs']:,} of {size['macs']:,} MACs "
            f"({size['shrunk_macs'] / max(size['macs'], 1):.1%}), {size['shrunk_params']:,} of {size['params']:,} "
            "parameters")


def _markdown(summary, report) -> str:
    return (
        f"# Pruning report\n\nModel `{summary['model']}`, strategy `{summary['strategy']}`, "
        f"data `{summary['data']}`, {summary['epochs']} epochs.\n\n"
        f"- test accuracy: {summary['test_accuracy']:.4f}\n- sparsity of prunable weights: {report.sparsity:.2%}"
        f"{_describe_shrink(summary['shrink']).replace(chr(10), chr(10) + '- ')}\n\n"
        f"![sparsity](sparsity.png)\n\n```\n{report}\n```\n"
    )


def main(argv):
    del argv
    result = run(
        model=_MODEL.value, output=_OUTPUT.value, strategy=_STRATEGY.value, target_sparsity=_TARGET.value,
        data=_DATA.value, epochs=_EPOCHS.value, batch_size=_BATCH.value, learning_rate=_LR.value,
        image_size=_IMAGE_SIZE.value, channels=_CHANNELS.value, limit=_LIMIT.value,
        strategy_args=_ARGS.value, overwrite=_OVERWRITE.value,
    )
    print(result)
    return 0

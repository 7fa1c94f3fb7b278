"""`tfsparse prune`: train a model with a pruning strategy.

Writes `DIR/pruned.keras`, `DIR/report.json`, `DIR/report.md` and
`DIR/sparsity.png` (sparsity over steps and per layer).

Example:

    tfsparse prune --model=models/mobilenet_v1.py:mobilenet_v1 --strategy=gmp \\
        --target_sparsity=0.9 --data=fashion_mnist --image_size=32 --channels=3 \\
        --epochs=3 --output=out/

Accuracy recovery (see the README): `--distill` trains through
`tfsparse.Distiller` with the starting model (or `--teacher`) as the frozen
teacher; `--recovery_lr` uses `tfsparse.RecoverySchedule` (constant while
pruning, then a rewind to `--learning_rate` and a cosine decay); BatchNorm
statistics are recalibrated after training (`--norecalibrate` to skip);
`--oneshot=sparsegpt` prunes to the target in one shot before training
(gmp only; training then keeps those masks). Allocation across layers is a
strategy option: `--strategy_args=scope='erk'`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import keras
from absl import flags

from tfsparse import data as datasets
from tfsparse import plots
from tfsparse.model_source import load_model_source
from tfsparse.errors import check_positive_float, check_positive_int
from tfsparse.outputs import atomic_output, output_directory, write_text
from tfsparse.deploy import finalize
from tfsparse.deploy.finalize import check_copyable
from tfsparse.graph import flops
from tfsparse.graph_insert import is_graph_model
from tfsparse.distillation import Distiller
from tfsparse.learning_rate import RecoverySchedule
from tfsparse.prunable import iter_layers
from tfsparse.recalibration import RecalibrateBatchNorm
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
_DISTILL = flags.DEFINE_bool("distill", False, "Distill from the starting model (or --teacher) while pruning.",
                             flag_values=FLAGS)
_TEACHER = flags.DEFINE_string("teacher", None, "Teacher for --distill: a .keras file (default: the starting model).",
                               flag_values=FLAGS)
_ALPHA = flags.DEFINE_float("distill_alpha", 0.5, "Weight of the teacher term in [0, 1].", flag_values=FLAGS)
_TEMPERATURE = flags.DEFINE_float("distill_temperature", 4.0, "Distillation temperature > 0.", flag_values=FLAGS)
_RECOVERY_LR = flags.DEFINE_bool("recovery_lr", False, "Constant learning rate while pruning, then rewind and decay "
                                 "(uncompiled models).", flag_values=FLAGS)
_RECALIBRATE = flags.DEFINE_bool("recalibrate", True, "Recalibrate BatchNorm statistics after training.",
                                 flag_values=FLAGS)
_ONESHOT = flags.DEFINE_enum("oneshot", None, ["sparsegpt", "magnitude"], "Prune to the target in one shot before "
                             "training (gmp only).", flag_values=FLAGS)
REQUIRED = ("model", "output")
#: API argument names of the library calls `run` makes -> this command's flags (for error messages).
ARGUMENT_FLAGS = {"name_or_path": "data", "name": "strategy", "alpha": "distill_alpha",
                  "temperature": "distill_temperature"}

OUTPUT_FILES = ("pruned.keras", "report.json", "report.md", "sparsity.png")
RECALIBRATION_SAMPLES = 2048  # training images for BatchNorm recalibration
ONESHOT_SAMPLES = 1024  # training images for --oneshot


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
        strategy_args=None, overwrite=False, distill=False, teacher=None, distill_alpha=0.5,
        distill_temperature=4.0, recovery_lr=False, recalibrate=True, oneshot=None, verbose=1) -> PruneResult:
    """Trains `model` with `strategy` and writes the pruned model and reports.

    A compiled `.keras` file resumes: its optimizer's step counter continues
    the schedule. Otherwise the model is compiled with Adam for integer labels.
    The recovery options are described in the module docstring.
    """
    _check_numbers(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, image_size=image_size,
                   channels=channels, limit=limit)
    if oneshot is not None and strategy != "gmp":
        raise ValueError(f"Invalid value received for argument `oneshot`. Expected it only with --strategy=gmp "
                         f"(training then keeps the one-shot masks). Received: oneshot={oneshot!r} with "
                         f"strategy={strategy!r}")
    if teacher is not None and not distill:
        raise ValueError(f"Invalid value received for argument `teacher`. Expected it only with --distill. "
                         f"Received: teacher={teacher!r} without distill")
    options = parse_strategy_args(strategy_args) if isinstance(strategy_args, str) else dict(strategy_args or {})
    with output_directory(output, files=OUTPUT_FILES, overwrite=overwrite) as output:
        dataset = datasets.load(data, image_size=image_size, channels=channels, limit=limit)
        keras_model = load_model_source(model, input_shape=dataset.x_train.shape[1:], num_classes=dataset.num_classes)
        datasets.check_fits(dataset, keras_model)
        check_copyable(keras_model)  # finalize() copies it after training
        compiled = getattr(keras_model, "optimizer", None) is not None and keras_model.compiled
        if recovery_lr and compiled:
            raise ValueError("Invalid value received for argument `recovery_lr`. Expected an uncompiled model: "
                             f"{model} is compiled with its own optimizer and learning rate, which a resumed run "
                             "keeps. Drop --recovery_lr, or start from an uncompiled model.")
        start = int(keras_model.optimizer.iterations.numpy()) if compiled else 0
        steps = pruning_steps(num_samples=len(dataset.x_train), batch_size=batch_size, epochs=epochs, start_step=start)
        teacher_model = _teacher(teacher, keras_model, dataset) if distill else None
        if oneshot is not None:
            _prune_in_one_shot(keras_model, dataset, target_sparsity, oneshot, options, batch_size)
        callback = make_strategy(strategy, target_sparsity=target_sparsity, steps=steps, **options)
        keras_model = callback.prepare(keras_model)
        if not keras_model.compiled:  # also a compiled model that prepare() rebuilt (l0 inserts gates)
            rate = learning_rate
            if recovery_lr:
                total = start + math.ceil(len(dataset.x_train) / batch_size) * epochs
                rate = RecoverySchedule.fit_to(steps, total_steps=total, peak_rate=learning_rate)
            compile_classifier(keras_model, optimizer=keras.optimizers.Adam(rate))
        trainer = keras_model
        if teacher_model is not None:
            trainer = Distiller(keras_model, teacher_model, alpha=distill_alpha, temperature=distill_temperature)
            trainer.compile(optimizer=keras_model.optimizer, loss=keras_model.loss, metrics=["accuracy"])
        callbacks = [callback]
        recalibrating = recalibrate and _has_batch_norm(keras_model)
        if recalibrating:
            callbacks.append(RecalibrateBatchNorm(dataset.x_train[:RECALIBRATION_SAMPLES], batch_size=batch_size))
        trainer.fit(dataset.x_train, dataset.y_train, batch_size=batch_size, epochs=epochs,
                    validation_data=(dataset.x_test, dataset.y_test), callbacks=callbacks, verbose=verbose)
        metrics = trainer.evaluate(dataset.x_test, dataset.y_test, batch_size=batch_size, verbose=0, return_dict=True)
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
            "recovery": {"distill": distill, "teacher": teacher,
                         "distill_alpha": distill_alpha if distill else None,
                         "distill_temperature": distill_temperature if distill else None,
                         "recovery_lr": recovery_lr, "recalibrated": recalibrating, "oneshot": oneshot},
        }
        write_text(os.path.join(output, "report.json"), json.dumps(summary, indent=2, default=str))
        write_text(os.path.join(output, "report.md"), _markdown(summary, report))
        plots.sparsity_plot(callback.history, report, os.path.join(output, "sparsity.png"),
                            title=f"{strategy} on {keras_model.name}")
        return PruneResult(output, strategy, summary["test_accuracy"], report.sparsity, report, size,
                           summary["strategy_sparsity"])


def _check_numbers(*, epochs, batch_size, learning_rate, image_size, channels, limit) -> None:
    """The numeric options, before anything is loaded."""
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_float(learning_rate, "learning_rate")
    for name, value in (("image_size", image_size), ("channels", channels), ("limit", limit)):
        check_positive_int(value, name, optional=True)


def _teacher(teacher, model, dataset):
    """The frozen teacher: the `--teacher` file, or a copy of the starting model's weights."""
    if teacher is not None:
        loaded = load_model_source(teacher, input_shape=dataset.x_train.shape[1:], num_classes=dataset.num_classes)
        datasets.check_fits(dataset, loaded)
        return loaded
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _prune_in_one_shot(model, dataset, target_sparsity, method, options, batch_size):
    """`tfsparse.oneshot.prune` to the target on training images; gmp then starts at the target (kept masks)."""
    from tfsparse import oneshot

    selection = {key: options[key] for key in ("layers", "exclude", "policy") if key in options}
    report = oneshot.prune(model, dataset.x_train[:ONESHOT_SAMPLES], target_sparsity, method=method,
                           batch_size=batch_size, **selection)
    print(report)
    options.setdefault("initial_sparsity", target_sparsity)


def _has_batch_norm(model) -> bool:
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in iter_layers(model))


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
        strategy_args=_ARGS.value, overwrite=_OVERWRITE.value, distill=_DISTILL.value, teacher=_TEACHER.value,
        distill_alpha=_ALPHA.value, distill_temperature=_TEMPERATURE.value, recovery_lr=_RECOVERY_LR.value,
        recalibrate=_RECALIBRATE.value, oneshot=_ONESHOT.value,
    )
    print(result)
    return 0

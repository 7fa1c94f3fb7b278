"""Training the reference MoE sentiment classifier and its baseline, as functions.

`train_reference(...)` trains `moe_text_classifier` on the movie-review
snippets (`tfsparse_moe.vader`), optionally pruning experts with
`moe_expert` while it trains, then finalizes it (pruned experts removed) and
can export a verified `.tflite`; `train_bow_baseline(...)` trains logistic
regression on token counts with the same split and vocabulary. Both return
result objects whose `to_dict()` a benchmark script can write as JSON.

From a shell (about 3 minutes on 2 CPU cores):

    python -m tfsparse_moe.reference --target_experts=4 --json=result.json

Example:

>>> from tfsparse_moe.reference import ReferenceResult
>>> sorted(ReferenceResult.__dataclass_fields__)[:3]
['deployable', 'deployable_params', 'deployable_test_accuracy']
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time

import keras
import numpy as np
from absl import flags

from tfsparse_moe.text_model import bag_of_words, bow_classifier, moe_text_classifier
from tfsparse_moe.tokenizer import Vocabulary
from tfsparse_moe.vader import load_movie_reviews

SEQUENCE_LENGTH = 48


@dataclasses.dataclass
class ReferenceResult:
    """What `train_reference` returns.

    Attributes:
        model: The trained model (pruned experts masked, if pruning).
        deployable: `tfsparse.finalize(model)`: pruned experts removed.
        vocabulary: The `Vocabulary` that encodes its inputs.
        strategy: The `MoEExpertPruning` callback, or `None`.
        test_accuracy: Accuracy of `model` on the test split.
        deployable_test_accuracy: Accuracy of `deployable` on the test split.
        max_output_difference: Largest |logit difference| of the two models on the test split.
        params: Parameters of `model`.
        deployable_params: Parameters of `deployable`.
        experts_kept: `{layer name: experts kept}`.
        seconds: Training time.
        tflite: The `tfsparse.ExportResult`, when exported.
    """

    model: object
    deployable: object
    vocabulary: Vocabulary
    strategy: object
    test_accuracy: float
    deployable_test_accuracy: float
    max_output_difference: float
    params: int
    deployable_params: int
    experts_kept: dict
    seconds: float
    tflite: object = None

    def to_dict(self) -> dict:
        result = {key: getattr(self, key) for key in ("test_accuracy", "deployable_test_accuracy",
                                                       "max_output_difference", "params", "deployable_params",
                                                       "experts_kept", "seconds")}
        if self.tflite is not None:
            result["tflite"] = {"path": self.tflite.path, "size_bytes": self.tflite.size_bytes,
                                "verification": str(self.tflite.verification)}
        return result


@dataclasses.dataclass
class BaselineResult:
    """What `train_bow_baseline` returns: the model, its test accuracy, parameters and training time."""

    model: object
    vocabulary: Vocabulary
    test_accuracy: float
    params: int
    seconds: float

    def to_dict(self) -> dict:
        return {"test_accuracy": self.test_accuracy, "params": self.params, "seconds": self.seconds}


def encoded_reviews(*, sequence_length=SEQUENCE_LENGTH, cache_dir=None, seed=0, min_count=2):
    """`(vocabulary, (x_train, y_train), (x_test, y_test))`: the split encoded as int32 ids."""
    reviews = load_movie_reviews(cache_dir=cache_dir, seed=seed)
    vocabulary = Vocabulary.fit(reviews.train_texts, min_count=min_count)
    return (vocabulary, (vocabulary.encode(reviews.train_texts, length=sequence_length), reviews.train_labels),
            (vocabulary.encode(reviews.test_texts, length=sequence_length), reviews.test_labels))


def _accuracy(model, x, y):
    logits = model.predict(x, batch_size=256, verbose=0)
    return logits, float(np.mean(np.argmax(logits, axis=-1) == y))


def train_reference(*, epochs=6, batch_size=64, learning_rate=1e-3, weight_decay=0.05, target_experts=None,
                    criterion="frequency", merge=False, prune_start_epoch=1, prune_epochs=3, cache_dir=None, seed=0,
                    verbose=1, tflite_path=None, limit=None, **model_kwargs) -> ReferenceResult:
    """Trains the reference MoE classifier, optionally pruning experts (see the module docstring).

    Args:
        epochs: Training epochs. Defaults to `6`.
        batch_size: Batch size. Defaults to `64`.
        learning_rate: AdamW learning rate. Defaults to `1e-3`.
        weight_decay: AdamW weight decay. Defaults to `0.05`.
        target_experts: Experts per layer to keep (`moe_expert`'s
            `target_experts`), or `None` to train without pruning.
            Defaults to `None`.
        criterion: `moe_expert`'s criterion. Defaults to `"frequency"`.
        merge: `moe_expert`'s `merge`. Defaults to `False`.
        prune_start_epoch: Epoch at which pruning starts. Defaults to `1`.
        prune_epochs: Epochs over which the target is reached; the rest
            fine-tunes. Defaults to `3`.
        cache_dir: Where the vaderSentiment archive is. Defaults to `None`.
        seed: Seed of the split, the initial weights and the data order.
            Defaults to `0`.
        verbose: Keras `fit` verbosity. Defaults to `1`.
        tflite_path: Export a verified float32 `.tflite` there. Defaults to `None`.
        limit: Train on the first `limit` training snippets only (quick
            runs). Defaults to `None`.
        **model_kwargs: Arguments of `moe_text_classifier` (`num_experts`, `top_k`...).

    Returns:
        A `ReferenceResult`.
    """
    import tfsparse
    from tfsparse_moe.strategy import MoEExpertPruning, find_moe_layers

    length = model_kwargs.pop("sequence_length", SEQUENCE_LENGTH)
    vocabulary, (x_train, y_train), (x_test, y_test) = encoded_reviews(sequence_length=length,
                                                                       cache_dir=cache_dir, seed=seed)
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    keras.utils.set_random_seed(seed)
    model = moe_text_classifier(vocab_size=vocabulary.size, sequence_length=length, seed=seed, **model_kwargs)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    callbacks, strategy = [], None
    if target_experts is not None:
        steps = math.ceil(len(x_train) / batch_size)
        begin = max(1, prune_start_epoch * steps)
        end = begin + max(1, prune_epochs * steps)
        strategy = MoEExpertPruning(target_experts, criterion=criterion, merge=merge, begin_step=begin,
                                    end_step=end, frequency=max(1, (end - begin) // 12), window=min(50, begin))
        callbacks.append(strategy)
    start = time.time()
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, callbacks=callbacks, verbose=verbose)
    seconds = time.time() - start
    deployable = tfsparse.finalize(model)
    logits, accuracy = _accuracy(model, x_test, y_test)
    small_logits, small_accuracy = _accuracy(deployable, x_test, y_test)
    tflite = None
    if tflite_path is not None:
        tflite = tfsparse.export(model, tflite_path, target="dense", representative_data=x_test[:64],
                                 overwrite=True)
    return ReferenceResult(
        model=model, deployable=deployable, vocabulary=vocabulary, strategy=strategy, test_accuracy=accuracy,
        deployable_test_accuracy=small_accuracy, max_output_difference=float(np.max(np.abs(logits - small_logits))),
        params=int(model.count_params()), deployable_params=int(deployable.count_params()),
        experts_kept={layer.name: layer.num_experts for layer in find_moe_layers(deployable)}, seconds=seconds,
        tflite=tflite)


def train_bow_baseline(*, epochs=20, batch_size=64, learning_rate=1e-2, l2=1e-4, cache_dir=None, seed=0,
                       verbose=0) -> BaselineResult:
    """Trains logistic regression on token counts with the reference's split and vocabulary.

    Texts are encoded without truncation (up to 128 tokens) before counting.
    """
    vocabulary, (x_train, y_train), (x_test, y_test) = encoded_reviews(sequence_length=128, cache_dir=cache_dir,
                                                                       seed=seed)
    keras.utils.set_random_seed(seed)
    model = bow_classifier(vocab_size=vocabulary.size, l2=l2)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.time()
    model.fit(bag_of_words(x_train, vocabulary.size), y_train, epochs=epochs, batch_size=batch_size,
              verbose=verbose)
    seconds = time.time() - start
    _, accuracy = _accuracy(model, bag_of_words(x_test, vocabulary.size), y_test)
    return BaselineResult(model=model, vocabulary=vocabulary, test_accuracy=accuracy,
                          params=int(model.count_params()), seconds=seconds)


FLAGS = flags.FlagValues()
_EPOCHS = flags.DEFINE_integer("epochs", 6, "Training epochs.", flag_values=FLAGS)
_TARGET = flags.DEFINE_integer("target_experts", None, "Experts per layer to keep (default: no pruning).",
                               flag_values=FLAGS)
_CRITERION = flags.DEFINE_string("criterion", "frequency", "moe_expert criterion.", flag_values=FLAGS)
_MERGE = flags.DEFINE_bool("merge", False, "Merge pruned experts into similar kept ones.", flag_values=FLAGS)
_TFLITE = flags.DEFINE_string("tflite", None, "Write a verified .tflite here.", flag_values=FLAGS)
_JSON = flags.DEFINE_string("json", None, "Write the results as JSON here.", flag_values=FLAGS)
_BASELINE = flags.DEFINE_bool("baseline", True, "Also train the bag-of-words baseline.", flag_values=FLAGS)


def main(argv) -> int:
    """Trains the reference model (and the baseline) and prints the accuracies."""
    FLAGS(argv)
    result = train_reference(epochs=_EPOCHS.value, target_experts=_TARGET.value, criterion=_CRITERION.value,
                             merge=_MERGE.value, tflite_path=_TFLITE.value, verbose=2)
    output = {"moe": result.to_dict()}
    if result.strategy is not None:
        from tfsparse_moe.expert_report import format_report

        print(format_report(result.strategy.report()))
    if _BASELINE.value:
        output["bag_of_words"] = train_bow_baseline().to_dict()
    print(json.dumps(output, indent=2))
    if _JSON.value:
        with open(_JSON.value, "w", encoding="utf-8") as file:
            json.dump(output, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

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
import json
import math
import os
import sys
import time

import numpy as np

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
            self.data.x_test, self.data.y_test = self.data.x_test[:test_limit], self.data.y_test[:test_limit]
        self.store_path = os.path.join(workdir, "results.json")
        self.results = json.load(open(self.store_path)) if os.path.exists(self.store_path) else {}

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/tfsparse_bench_recovery")
    parser.add_argument("--stage", default="all")
    parser.add_argument("--dense_epochs", type=int, default=10)
    parser.add_argument("--widths", default="1.0")
    args = parser.parse_args(argv)
    bench = Bench(args.workdir, log=lambda m: print(m, flush=True))
    if args.stage in ("dense", "all"):
        for width in [float(w) for w in args.widths.split(",")]:
            bench.train_dense(width, args.dense_epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

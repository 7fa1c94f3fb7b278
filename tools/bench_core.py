"""Core benchmarks: GMP training overhead and sparse .tflite size.

Writes (or replaces) the "Core" section of BENCHMARKS.md. Run from the
repository root:

    python tools/bench_core.py [--width=1.0] [--rounds=5]

1. Training overhead: mean train-step time (mask-update steps included) of the MobileNet-V1-style model
   with a GMP callback (masks updated every 10 steps) / without, measured in
   interleaved rounds (A B A B ...) so machine noise hits both sides.
2. File size: the same model with 90% of its 1x1 convolution weights zeroed
   by GMP's magnitude rule, exported `dense` and `sparse`; compared with the
   encoding limit (fp32 value + uint8/uint16 index per non-zero).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

import tfsparse
from tfsparse import masks
from tfsparse.model_source import load_model_source
from tfsparse.strategies.gmp import GMP, keep_largest

try:  # imported from the repository root (pytest, `python -m tools.bench_core`)
    from tools.benchmarks_md import BENCHMARKS, encoding_limit, write_section
    from tools.step_timer import StepTimer
except ImportError:  # run as `python tools/bench_core.py`: tools/ is on sys.path
    from benchmarks_md import BENCHMARKS, encoding_limit, write_section
    from step_timer import StepTimer

SECTION = "Core"


def _model(width):
    model = load_model_source("models/mobilenet_v1.py:mobilenet_v1", input_shape=(32, 32, 3), num_classes=10, width=width)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def training_overhead(width, rounds, steps):
    rng = np.random.default_rng(0)
    x = rng.random((steps * 64, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    plain, pruned = _model(width), _model(width)
    pruned.set_weights(plain.get_weights())
    gmp = GMP(target_sparsity=0.9, begin_step=0, end_step=rounds * steps, frequency=10, layers=".*_pw")
    medians = {"dense": [], "gmp": []}
    for _ in range(rounds + 1):  # the first round warms up (tracing) and is dropped
        for name, model, extra in (("dense", plain, []), ("gmp", pruned, [gmp])):
            timer = StepTimer()
            model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[timer, *extra])
            medians[name].append(statistics.fmean(timer.times[1:]))  # mean: includes the mask-update steps
    dense, sparse = medians["dense"][1:], medians["gmp"][1:]
    ratios = [s / d for s, d in zip(sparse, dense)]
    return statistics.median(dense), statistics.median(sparse), statistics.median(ratios), min(ratios), max(ratios)


def file_sizes(width):
    model = _model(width)
    weights = tfsparse.select_weights(model, layers=".*_pw")
    for weight in weights:
        masks.attach(weight.variable)
        value = weight.variable.numpy()
        masks.set_mask(weight.variable, keep_largest(value, value.size - round(0.9 * value.size)))
    limit = encoding_limit(w.variable.numpy() for w in weights)
    with tempfile.TemporaryDirectory() as tmp:
        dense = tfsparse.export(model, os.path.join(tmp, "dense.tflite"), target="dense")
        sparse = tfsparse.export(model, os.path.join(tmp, "sparse.tflite"), target="sparse")
    return dense, sparse, limit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    command = f"python tools/bench_core.py --width={args.width:g} --rounds={args.rounds} --steps={args.steps}"
    dense_step, gmp_step, ratio, low, high = training_overhead(args.width, args.rounds, args.steps)
    dense, sparse, limit = file_sizes(args.width)
    body = f"""
Measured with `{command}` on this project's 2-core x86 machine (TF {tf.__version__},
Keras {keras.__version__}). MobileNet-V1-style model, width {args.width:g}, 32x32x3 inputs.

### GMP training overhead (mean train-step time with the strategy / without, mask-update steps included, {args.rounds} interleaved rounds of {args.steps} steps, batch 64, masks updated every 10 steps)
| dense step (median of round means) | GMP step (median of round means) | ratio median | ratio min-max |
|---|---|---|---|
| {1000 * dense_step:.1f} ms | {1000 * gmp_step:.1f} ms | {ratio:.3f}x | {low:.3f}x-{high:.3f}x |

### .tflite size, 1x1 convolutions at 90% sparsity (GMP magnitude rule on the initial weights)
| file | bytes | vs dense |
|---|---|---|
| dense fp32 | {dense.size_bytes} | 100% |
| sparse (`target="sparse"`) | {sparse.size_bytes} | {sparse.size_bytes / dense.size_bytes:.1%} |

{len(sparse.sparse_tensors)} tensors are sparse-encoded. The 1x1 weights hold {limit.nonzeros} non-zeros: dense they take
{limit.dense_bytes} bytes; the encoding limit is 5 bytes per non-zero with uint8 indices ({limit.uint8_bytes} bytes),
6 with uint16 ({limit.uint16_bytes} bytes). The file saves {dense.size_bytes - sparse.size_bytes} bytes.
"""
    write_section(SECTION, body, BENCHMARKS)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

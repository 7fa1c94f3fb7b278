"""Benchmarks of `.tflite` files: `bench(path, compare=...)` -> `BenchResult`.

Runners (targets) time the files: `"local"` runs LiteRT on this machine,
`"arm-emu"` tflite-runtime's XNNPACK on emulated aarch64 (and, by default,
observes whether the sparse path fired for each file), `"adb"` LiteRT's
`benchmark_model` on an Android device. On x86 XNNPACK keeps its sparse
kernels off, so a sparse speedup shows only on ARM targets.

Example:

>>> from tfsparse.bench import BenchResult, ModelTiming
>>> BenchResult(models=(ModelTiming("a.tflite", (2.0,)),), target="local", threads=1, runs=1,
...             warmup=0).models[0].median_ms
2.0
"""

from tfsparse.bench.result import BenchResult, ModelTiming
from tfsparse.bench.runner import TARGETS, bench

__all__ = ["BenchResult", "ModelTiming", "TARGETS", "bench"]

"""`tfsparse bench FILE.tflite [--compare=OTHER.tflite]`: interleaved A/B latency.

Example:

    tfsparse bench out/sparse.tflite --compare=out/dense.tflite --threads=1 --runs=50
    tfsparse bench out/sparse.tflite --compare=out/dense.tflite --target=arm-emu --runs=5
    tfsparse bench out/sparse.tflite --compare=out/dense.tflite --target=adb \
        --benchmark_binary=android_aarch64_benchmark_model --threads=4

On `--target=arm-emu` it also reports whether XNNPACK's sparse path fired
for each file (`--noobserve` skips that extra emulated run).
"""

from __future__ import annotations

import json

from absl import flags

FLAGS = flags.FlagValues()
_COMPARE = flags.DEFINE_string("compare", None, "A second .tflite, timed interleaved with the first.", flag_values=FLAGS)
_THREADS = flags.DEFINE_integer("threads", 1, "Interpreter threads.", flag_values=FLAGS)
_RUNS = flags.DEFINE_integer("runs", 20, "Timed runs per model.", flag_values=FLAGS)
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed runs per model first.", flag_values=FLAGS)
_TARGET = flags.DEFINE_string("target", "local", "Where to run: local (LiteRT on this machine), arm-emu (tflite-runtime "
                              "XNNPACK on emulated aarch64; see `tfsparse emulator setup`), or adb / adb:SERIAL "
                              "(benchmark_model on an Android device; needs --benchmark_binary).", flag_values=FLAGS)
_OBSERVE = flags.DEFINE_bool("observe", None, "Also tell whether XNNPACK's sparse path fired for each file (one more "
                             "emulated run of it and its dense twin). Only --target=arm-emu can; default: on there, "
                             "off elsewhere.", flag_values=FLAGS)
_BENCHMARK_BINARY = flags.DEFINE_string("benchmark_binary", None, "The Android benchmark_model executable "
                                        "(android_arm64) for --target=adb.", flag_values=FLAGS)
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a table.", flag_values=FLAGS)


def run(path, *, compare=None, threads=1, runs=20, warmup=3, target="local", benchmark_binary=None, observe=None):
    """Returns `tfsparse.bench.bench(...)`'s `BenchResult`; both files are checked to be `.tflite` files first."""
    from tfsparse.bench import bench
    from tfsparse.deploy import inspect_tflite

    inspect_tflite(path)  # a missing, truncated or foreign file is named here, not by the runner on the target
    if compare is not None:
        inspect_tflite(compare, argument="compare")

    return bench(path, compare=compare, threads=threads, runs=runs, warmup=warmup, target=target,
                 benchmark_binary=benchmark_binary, observe=observe)


def main(argv):
    if len(argv) != 2:
        raise ValueError(
            "Invalid value received for argument `path`. Expected exactly one "
            f".tflite file: tfsparse bench FILE.tflite. Received: {argv[1:]}"
        )
    result = run(argv[1], compare=_COMPARE.value, threads=_THREADS.value, runs=_RUNS.value,
                 warmup=_WARMUP.value, target=_TARGET.value, benchmark_binary=_BENCHMARK_BINARY.value,
                 observe=_OBSERVE.value)
    print(json.dumps(result.to_dict(), indent=2) if _JSON.value else result)
    return 0

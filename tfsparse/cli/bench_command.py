"""`tfsparse bench FILE.tflite [--compare=OTHER.tflite]`: interleaved A/B latency.

Example:

    tfsparse bench out/sparse.tflite --compare=out/dense.tflite --threads=1 --runs=50
    tfsparse bench out/sparse.tflite --compare=out/dense.tflite --target=arm-emu --runs=5
    tfsparse bench out/sparse.tflite --compare=out/dense.tflite --target=adb \
        --benchmark_binary=android_aarch64_benchmark_model --threads=4

On `--target=arm-emu` it also reports whether XNNPACK's sparse path fired
for each file and, for a file with `FULLY_CONNECTED` ops, which kernel ran
each of them (`tfsparse.sparse_fc.observe`: XNNPACK or TFLite's builtin
block-sparse / dense kernel, with the partitions and a timing against the
file's XNNPACK-dense twin); `--noobserve` skips those extra emulated runs.
"""

from __future__ import annotations

import json

from absl import flags, logging

FLAGS = flags.FlagValues()
_COMPARE = flags.DEFINE_string("compare", None, "A second .tflite, timed interleaved with the first.", flag_values=FLAGS)
_THREADS = flags.DEFINE_integer("threads", 1, "Interpreter threads.", flag_values=FLAGS)
_RUNS = flags.DEFINE_integer("runs", 20, "Timed runs per model.", flag_values=FLAGS)
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed runs per model first.", flag_values=FLAGS)
_TARGET = flags.DEFINE_string("target", "local", "Where to run: local (LiteRT on this machine), arm-emu (tflite-runtime "
                              "XNNPACK on emulated aarch64; see `tfsparse emulator setup`), or adb / adb:SERIAL "
                              "(benchmark_model on an Android device; needs --benchmark_binary).", flag_values=FLAGS)
_OBSERVE = flags.DEFINE_bool("observe", None, "Also observe what ran, for each file: whether XNNPACK's sparse path "
                             "fired (one more emulated run of it and its dense twin) and, for a file with "
                             "FULLY_CONNECTED ops, which kernel ran each one (xnnpack-dense, builtin-sparse-1x4, "
                             "builtin-sparse-1x16, builtin-dense, unsupported, ...: see tfsparse.sparse_fc.kernels; "
                             "one more emulated run of it and its XNNPACK-dense twin, see tfsparse.sparse_fc.observe). "
                             "Only --target=arm-emu can; "
                             "default: on there, off elsewhere.", flag_values=FLAGS)
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


def observe_fully_connected(result, *, observe=None, threads=1) -> tuple:
    """`FcObservation`s (`tfsparse.sparse_fc.observe`) of the distinct files of `result` that have
    `FULLY_CONNECTED` ops, when `observe` is on (by default on the arm-emu target); `()` otherwise."""
    if result.target != "arm-emu" or observe is False:
        return ()
    from tfsparse.emulator.fc_observation import observe_fc

    done = {}
    for model in result.models:
        if model.path not in done:
            logging.info("bench: observing which kernel runs each FULLY_CONNECTED of %s (if it has any: one "
                         "emulated run of it and of its XNNPACK-dense twin).", model.path)
            done[model.path] = observe_fc(model.path, threads=threads)
    return tuple(observation for observation in done.values() if observation.kernels)


def main(argv):
    if len(argv) != 2:
        raise ValueError(
            "Invalid value received for argument `path`. Expected exactly one "
            f".tflite file: tfsparse bench FILE.tflite. Received: {argv[1:]}"
        )
    result = run(argv[1], compare=_COMPARE.value, threads=_THREADS.value, runs=_RUNS.value,
                 warmup=_WARMUP.value, target=_TARGET.value, benchmark_binary=_BENCHMARK_BINARY.value,
                 observe=_OBSERVE.value)
    fully_connected = observe_fully_connected(result, observe=_OBSERVE.value, threads=_THREADS.value)
    if _JSON.value:
        config = result.to_dict()
        if fully_connected:
            config["fc_observations"] = [observation.to_dict() for observation in fully_connected]
        print(json.dumps(config, indent=2))
    else:
        print("\n".join(str(part) for part in (result, *fully_connected)))
    return 0

"""`bench`: time one `.tflite` file, or two interleaved, on a target.

`TARGETS` maps a target name to a function
`run(paths, *, threads, runs, warmup, seed) -> (timings, details)`.
`OPTION_TARGETS` holds targets needing options of their own: `"adb"` /
`"adb:SERIAL"` (`benchmark_model` on an Android device, `benchmark_binary=`).
On `"arm-emu"` (tflite-runtime's XNNPACK on emulated aarch64) `bench` also
observes, by default, whether XNNPACK's sparse path fired for each file
(`tfsparse.emulator.observe`), into `BenchResult.observations`.

Example:

>>> import os, pathlib, tempfile, keras, tensorflow as tf
>>> from tfsparse.bench import bench
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> directory = tempfile.mkdtemp()
>>> model.export(directory, format="tf_saved_model", verbose=False)
>>> path = os.path.join(directory, "m.tflite")
>>> _ = pathlib.Path(path).write_bytes(tf.lite.TFLiteConverter.from_saved_model(directory).convert())
>>> result = bench(path, compare=path, runs=5, warmup=1)
>>> [len(m.times_ms) for m in result.models], result.speedup > 0
([5, 5], True)
"""

from __future__ import annotations

import os

from absl import logging

from tfsparse.bench import adb
from tfsparse.bench.local import run_local
from tfsparse.bench.result import BenchResult
from tfsparse.emulator.bench_runner import run_arm_emu

#: Target name -> runner.
TARGETS = {"local": run_local, "arm-emu": run_arm_emu}
#: Targets with options of their own: name -> `factory(target, benchmark_binary=...)` -> runner.
#: `"adb"` (or `"adb:SERIAL"`) runs `benchmark_model` on an Android device (`tfsparse.bench.adb`).
OPTION_TARGETS = {"adb": adb.runner_for}


def _count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )


def _tflite_file(name, path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected the path of a .tflite file. "
            f"Received: {name}={path!r}"
        )
    path = os.fspath(path)
    if not path.lower().endswith(".tflite"):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a .tflite file (export a Keras "
            f"model with `tfsparse export` first). Received: {name}={path}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The .tflite file {path} (argument `{name}`) does not exist. Check the path.")
    return path


#: Targets on which `bench` can observe whether XNNPACK's sparse path fired.
OBSERVABLE_TARGETS = ("arm-emu",)


def _check_observe(observe, target) -> bool:
    """`observe` resolved: `None` means "on the targets that can"."""
    if observe is not None and not isinstance(observe, bool):
        raise ValueError(
            "Invalid value received for argument `observe`. Expected True, False or None (observe where "
            f"the target can). Received: observe={observe!r}"
        )
    if observe is None:
        return target in OBSERVABLE_TARGETS
    if observe and target not in OBSERVABLE_TARGETS:
        raise ValueError(
            "Invalid value received for argument `observe`. Observing whether XNNPACK's sparse path "
            "fired needs the emulated aarch64 XNNPACK (target='arm-emu'): on x86 XNNPACK keeps its "
            "sparse kernels off, and the adb target cannot compare a file with its dense twin's "
            f"outputs. Pass target='arm-emu' or observe=False. Received: observe=True with target={target!r}"
        )
    return observe


def _observe(paths, *, threads, seed) -> tuple:
    """One `Observation` per path (a path given twice is run once)."""
    from tfsparse.emulator import observation

    done = {}
    for path in paths:
        if path not in done:
            logging.info("bench: observing whether XNNPACK's sparse path fires for %s (one emulated run of it "
                         "and of its dense twin).", path)
            done[path] = observation.observe(path, threads=threads, seed=seed)
            logging.info("bench: %s", done[path])
    return tuple(done[path] for path in paths)


def bench(path, *, compare=None, threads=1, runs=20, warmup=3, seed=0, target="local",
          benchmark_binary=None, observe=None) -> BenchResult:
    """Measures the latency of `path`, and of `compare` interleaved with it.

    With `compare`, invokes alternate `path`, `compare`, `path`, `compare`, ...
    (warm-up included), and `result.speedup` is the median latency of
    `compare` divided by that of `path`: the speedup of `path` vs
    `compare`, above 1 when `path` is faster.

    Args:
        path: The `.tflite` file to time.
        compare: A second `.tflite` file (e.g. the dense baseline), or `None`.
            Defaults to `None`.
        threads: Interpreter threads. Defaults to `1`.
        runs: Timed invokes per model. Defaults to `20`.
        warmup: Untimed invokes per model first. Defaults to `3`.
        seed: Seed of the random inputs. Defaults to `0`.
        target: Where to run: `"local"` (LiteRT on this machine),
            `"arm-emu"` (tflite-runtime's XNNPACK on emulated aarch64, see
            `tfsparse emulator setup`; its ratios overstate real devices),
            or `"adb"` / `"adb:SERIAL"` (`benchmark_model` on an Android
            device; each time is then one run's average over `runs`
            invokes, see `tfsparse.bench.adb`). Defaults to `"local"`.
        benchmark_binary: The Android `benchmark_model` executable; only for
            the adb target, which requires it. Defaults to `None`.
        observe: Also tell, for each file, whether XNNPACK's sparse path
            fired (`tfsparse.emulator.observe`: one more emulated run of
            the file and of its dense twin; a file without sparse-encoded
            weights needs none), into `result.observations`. Only the
            `"arm-emu"` target can (`True` elsewhere is refused). Defaults
            to `None`: `True` on `"arm-emu"`, `False` elsewhere.

    Returns:
        A `BenchResult` (print it for a table; `to_dict()` for JSON).

    Raises:
        ValueError: for invalid arguments or a file LiteRT cannot load.
        FileNotFoundError: if a file (or `adb` for the adb target) does not exist.
        tfsparse.bench.adb_device.AdbError: (`RuntimeError`, `OSError`) for adb target failures
            (no device, crashed run).
        tfsparse.emulator.EmulatorError: for arm-emu target failures (emulator not set up,
            crashed run).

    Example:

    >>> from tfsparse.bench import bench
    >>> bench("model.tflite", runs=0)
    Traceback (most recent call last):
    ...
    ValueError: Invalid value received for argument `runs`. Expected an integer >= 1. Received: runs=0
    """
    option_target = isinstance(target, str) and target.split(":", 1)[0] in OPTION_TARGETS
    if not option_target and target not in TARGETS:
        raise ValueError(
            f"Invalid value received for argument `target`. Expected one of {', '.join(map(repr, TARGETS))}, "
            "'adb' or 'adb:SERIAL'. "
            f"Received: target={target!r}"
        )
    if not option_target and benchmark_binary is not None:
        raise ValueError(
            "Invalid value received for argument `benchmark_binary`. Expected `None` unless target='adb' "
            f"(only the adb target runs benchmark_model). Received: benchmark_binary={benchmark_binary!r}"
        )
    runner = (OPTION_TARGETS[target.split(":", 1)[0]](target, benchmark_binary=benchmark_binary)
              if option_target else TARGETS[target])
    _count("runs", runs, 1)
    _count("warmup", warmup, 0)
    _count("threads", threads, 1)
    _count("seed", seed, 0)
    observe = _check_observe(observe, target)
    paths = [_tflite_file("path", path)]
    if compare is not None:
        paths.append(_tflite_file("compare", compare))
    logging.info("bench: %s on %s, %d thread(s), %d warm-up + %d timed runs per model.",
                 " vs ".join(paths), target, threads, warmup, runs)
    timings, details = runner(paths, threads=threads, runs=runs, warmup=warmup, seed=seed)
    observations = _observe(paths, threads=threads, seed=seed) if observe else ()
    result = BenchResult(models=tuple(timings), target=target, threads=threads, runs=runs, warmup=warmup,
                         details=details, observations=observations)
    logging.info("bench: done (%s).", f"speedup {result.speedup:.2f}x" if result.speedup is not None else "one model")
    return result

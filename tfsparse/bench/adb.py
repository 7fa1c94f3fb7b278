"""The adb runner: LiteRT's `benchmark_model` on an attached Android device.

`run_adb` finds `adb`, checks the device (attached, authorized, 64-bit) and
the local `benchmark_model` binary, pushes both binary and models to
`/data/local/tmp/tfsparse/`, runs `benchmark_model` once per model and round,
interleaved (A B A B ...), and always removes what it pushed, also when a run
fails. Each round contributes one time per model: that run's average
inference latency; the memory footprints go to `details["memory_mb"]`.

Example:

>>> from tfsparse.bench.adb import benchmark_command
>>> benchmark_command("/data/local/tmp/tfsparse/model_0.tflite", threads=4, runs=50, warmup=5)[:3]
['/data/local/tmp/tfsparse/benchmark_model', '--graph=/data/local/tmp/tfsparse/model_0.tflite', \
'--use_xnnpack=true']
"""

from __future__ import annotations

import functools
import posixpath
import statistics

from absl import logging

from tfsparse.bench import adb_device
from tfsparse.bench.benchmark_model_output import parse_benchmark_output
from tfsparse.bench.result import ModelTiming

#: The device folder everything is pushed to (removed at the end).
REMOTE_DIR = "/data/local/tmp/tfsparse"
REMOTE_BINARY = posixpath.join(REMOTE_DIR, "benchmark_model")
#: `benchmark_model` runs per model (each gives one average latency).
DEFAULT_ROUNDS = 5


def parse_target(target) -> str | None:
    """The serial in `"adb:SERIAL"`, or `None` for `"adb"`.

    Example:

    >>> from tfsparse.bench.adb import parse_target
    >>> parse_target("adb"), parse_target("adb:R58M123ABC"), parse_target("adb:192.168.1.7:5555")
    (None, 'R58M123ABC', '192.168.1.7:5555')
    """
    if target == "adb":
        return None
    serial = target[len("adb:"):] if isinstance(target, str) and target.startswith("adb:") else ""
    if not serial.strip() or serial != serial.strip():
        raise ValueError(
            "Invalid value received for argument `target`. Expected 'adb' or 'adb:SERIAL' with a serial from "
            f"`adb devices -l`. Received: target={target!r}"
        )
    return serial


def benchmark_command(remote_model, *, threads, runs, warmup) -> list:
    """The `benchmark_model` argv run on the device for one model.

    Example:

    >>> from tfsparse.bench.adb import benchmark_command
    >>> benchmark_command("/data/local/tmp/tfsparse/m.tflite", threads=1, runs=20, warmup=3)[3:]
    ['--num_threads=1', '--num_runs=20', '--warmup_runs=3', '--report_peak_memory_footprint=true']
    """
    return [REMOTE_BINARY, f"--graph={remote_model}", "--use_xnnpack=true", f"--num_threads={threads}",
            f"--num_runs={runs}", f"--warmup_runs={warmup}", "--report_peak_memory_footprint=true"]


def _checked(runner, argv, what):
    code, output = runner(argv)
    if code != 0:
        raise adb_device.AdbError(f"{what} failed (`{' '.join(argv)}`, exit {code}):\n{adb_device.tail(output)}")
    return output


def _remove(runner, shell, serial):
    """Removes `REMOTE_DIR`; a failure is logged, never raised (it must not hide the run's own error)."""
    try:
        code, output = runner([*shell, "rm", "-rf", REMOTE_DIR])
    except Exception as error:  # pylint: disable=broad-except
        code, output = -1, str(error)
    if code != 0:
        logging.warning("bench: could not remove %s from %s (exit %d): %s. Remove it with `adb -s %s shell "
                        "rm -rf %s`.", REMOTE_DIR, serial, code, output.strip(), serial, REMOTE_DIR)


def _median(values):
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def _memory(outputs) -> dict:
    return {"init_delta_median": _median([o.init_memory_mb for o in outputs]),
            "overall_delta_median": _median([o.overall_memory_mb for o in outputs]),
            "peak_max": max((o.peak_memory_mb for o in outputs if o.peak_memory_mb is not None), default=None)}


def run_adb(paths, *, threads, runs, warmup, seed=0, serial=None, benchmark_binary=None, rounds=DEFAULT_ROUNDS,
            runner=None, which=None) -> tuple:
    """Times `paths` with `benchmark_model` on an Android device; returns (timings, details).

    Args:
        paths: Local `.tflite` files (checked by `tfsparse.bench.bench`).
        threads: `--num_threads`.
        runs: `--num_runs` of each `benchmark_model` run.
        warmup: `--warmup_runs` of each run.
        seed: Unused (`benchmark_model` draws its own random inputs).
        serial: The device serial, or `None` for the only one attached.
        benchmark_binary: The local Android `benchmark_model` executable.
        rounds: Runs per model, interleaved A B A B. Defaults to `DEFAULT_ROUNDS`.
        runner: `runner(argv) -> (returncode, output)`. Defaults to running the command.
        which: `shutil.which`-like lookup of `adb`. Defaults to `shutil.which`.

    Returns:
        (`ModelTiming` per path, one time per round: that run's average in ms;
        details with the device, ABI, rounds and `memory_mb` per model).

    Raises:
        FileNotFoundError: if `adb` is not installed.
        ValueError: for a missing or wrong `benchmark_binary`.
        AdbError: (a `RuntimeError` and `OSError`) for device problems, a failed push, or a
            crashed run (with the tail of its output).

    Example:

    >>> from tfsparse.bench.adb import run_adb
    >>> run_adb(["m.tflite"], threads=1, runs=1, warmup=0, which=lambda name: None)
    Traceback (most recent call last):
    ...
    FileNotFoundError: The adb target needs the Android Debug Bridge `adb`, which is not on PATH. \
Install it with `apt-get install -y adb` (Debian/Ubuntu) or from the Android SDK platform-tools, then retry.
    """
    adb = adb_device.find_adb(**({"which": which} if which else {}))
    adb_device.check_binary(benchmark_binary, None)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"Invalid value received for argument `rounds`. Expected an integer >= 1. "
                         f"Received: rounds={rounds!r}")
    runner = runner or adb_device.run_command
    device = adb_device.select_device(
        adb_device.parse_devices(_checked(runner, [adb, "devices", "-l"], "Listing Android devices")), serial)
    abi = adb_device.device_abi(runner, adb, device.serial)
    adb_device.check_binary(benchmark_binary, abi)
    shell = [adb, "-s", device.serial, "shell"]
    remote = [posixpath.join(REMOTE_DIR, f"model_{i}.tflite") for i in range(len(paths))]
    outputs = [[] for _ in paths]
    try:
        _checked(runner, [*shell, "mkdir", "-p", REMOTE_DIR], "Creating " + REMOTE_DIR)
        for local, target in [(benchmark_binary, REMOTE_BINARY), *zip(paths, remote)]:
            _checked(runner, [adb, "-s", device.serial, "push", str(local), target], f"Pushing {local}")
        _checked(runner, [*shell, "chmod", "+x", REMOTE_BINARY], "Making benchmark_model executable")
        for round_ in range(rounds):
            for path, model, results in zip(paths, remote, outputs):
                argv = [*shell, *benchmark_command(model, threads=threads, runs=runs, warmup=warmup)]
                code, output = runner(argv)
                try:
                    if code != 0:
                        raise ValueError(f"exit status {code}")
                    results.append(parse_benchmark_output(output))
                except ValueError as error:
                    raise adb_device.AdbError(
                        f"benchmark_model failed on {path} (round {round_ + 1}/{rounds}, {error}). Check that the "
                        f"binary matches the model's ops (a newer LiteRT may be needed). Last lines of its "
                        f"output:\n{adb_device.tail(output)}"
                    ) from None
                logging.info("bench: round %d/%d, %s: %.3f ms average", round_ + 1, rounds, path,
                             results[-1].inference_avg_ms)
    finally:
        _remove(runner, shell, device.serial)
    timings = tuple(ModelTiming(path, tuple(o.inference_avg_ms for o in results))
                    for path, results in zip(paths, outputs))
    details = {"runtime": "benchmark_model (XNNPACK)", "device": device.serial, "device_info": device.description,
               "abi": abi, "rounds": rounds, "benchmark_binary": str(benchmark_binary),
               "times_are": f"per-round averages of {runs} invokes",
               "memory_mb": {path: _memory(results) for path, results in zip(paths, outputs)}}
    return timings, details


def runner_for(target, *, benchmark_binary=None, **options):
    """`run_adb` bound to the serial in `target` and `benchmark_binary` (for `bench`).

    Example:

    >>> from tfsparse.bench.adb import runner_for
    >>> runner_for("adb:emulator-5554", benchmark_binary="benchmark_model").keywords["serial"]
    'emulator-5554'
    """
    return functools.partial(run_adb, serial=parse_target(target), benchmark_binary=benchmark_binary, **options)

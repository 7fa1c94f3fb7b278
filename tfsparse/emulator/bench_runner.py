"""The `"arm-emu"` benchmark target: tflite-runtime's XNNPACK on emulated aarch64.

`run_arm_emu` has the signature of every runner in
`tfsparse.bench.runner.TARGETS`, so
`tfsparse bench FILE --target=arm-emu --compare=OTHER` times the files
interleaved inside one emulated Python process (`emulated_runner.py`).
Emulated times are qemu's: useful for ratios between models run together
(the sparse NCHW path of XNNPACK, disabled on x86 with AVX, runs here), not
as absolute ARM latencies.

Example:

>>> from tfsparse.emulator.bench_runner import runner_arguments
>>> runner_arguments(["a.tflite"], threads=1, runs=3, warmup=1, seed=0)["runs"]
3
"""

from __future__ import annotations

import json
import os

from tfsparse.emulator.errors import EmulatorError

#: The script the emulated Python runs.
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulated_runner.py")


def runner_arguments(paths, *, threads, runs, warmup, seed, ops=False) -> dict:
    """The JSON argument of `emulated_runner.py` (paths made absolute; `"ops"` only when asked)."""
    arguments = {"paths": [os.path.abspath(os.fspath(p)) for p in paths], "threads": int(threads), "runs": int(runs),
                 "warmup": int(warmup), "seed": int(seed)}
    if ops:
        arguments["ops"] = True
    return arguments


def parse_report(stdout: str) -> dict:
    """The JSON object on the last non-empty line of the runner's stdout.

    Raises:
        EmulatorError: if there is none.
    """
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError) as error:
        raise EmulatorError(f"The emulated runner printed no JSON report. Its output ended with: "
                            f"{stdout[-1000:]!r}") from error
    return report


def run_emulated(paths, *, threads=1, runs=1, warmup=0, seed=0, cache_dir=None, timeout=None, ops=False) -> dict:
    """Runs `emulated_runner.py` on `paths` under qemu; returns its report dict.

    Args:
        paths: `.tflite` files (one or two, timed interleaved).
        threads: Interpreter threads. Defaults to `1`.
        runs: Timed invokes per model. Defaults to `1`.
        warmup: Untimed invokes per model first. Defaults to `0`.
        seed: Seed of the random inputs. Defaults to `0`.
        cache_dir: The emulator cache. Defaults to `None`.
        timeout: Seconds before qemu is killed. Defaults to `None`.
        ops: Also report each model's nodes after delegation (`"ops"`), and
            a file that fails to load as `"error"` instead of failing the
            run. Defaults to `False`.

    Returns:
        `{"machine", "runtime", "load_seconds", "models": [{"path", "times_ms", "outputs"}]}`
        (with `ops`, each model also has `"ops"` and `"error"`).

    Raises:
        EmulatorError: if the emulator is not set up or the run fails.
    """
    from tfsparse.emulator.qemu import run_python

    arguments = runner_arguments(paths, threads=threads, runs=runs, warmup=warmup, seed=seed, ops=ops)
    return parse_report(run_python(SCRIPT, json.dumps(arguments), cache_dir=cache_dir, timeout=timeout))


def run_arm_emu(paths, *, threads, runs, warmup, seed=0) -> tuple:
    """Times `paths` interleaved on emulated aarch64; returns (timings, details).

    Arguments are assumed checked (see `tfsparse.bench.bench`). The cache is
    `$TFSPARSE_CACHE_DIR`, else `~/.cache/tfsparse/arm64`.

    Raises:
        EmulatorError: if the emulator is not set up (naming
            `tfsparse emulator setup`) or qemu fails.
    """
    from tfsparse.bench.result import ModelTiming  # here: tfsparse.bench imports this module

    report = run_emulated(paths, threads=threads, runs=runs, warmup=warmup, seed=seed)
    timings = tuple(ModelTiming(os.fspath(path), tuple(model["times_ms"]))
                    for path, model in zip(paths, report["models"]))
    details = {"runtime": report.get("runtime", "tflite-runtime"), "machine": f"{report.get('machine')} (qemu-user)"}
    return timings, details

"""Training-step overhead of GMP against dense on each Keras 3 backend installed.

Writes (or replaces) the "Backends" section of BENCHMARKS.md. Run from the
repository root:

    python tools/bench_backends.py [--width=0.5] [--rounds=5] [--steps=30] [--backends=tensorflow,jax,torch]

Each backend runs `tools.bench_core.training_overhead` in a process of its own
(`KERAS_BACKEND` is read once per process): the MobileNet-V1-style model at
32x32x3, batch 64, GMP on the 1x1 convolutions with masks updated every 10
steps, timed in interleaved rounds (dense, GMP, dense, GMP ...; the first round
warms up and is dropped), mask-update steps included. A backend that is not
installed is listed as such.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

try:  # imported from the repository root (pytest, `python -m tools.bench_backends`)
    from tools.benchmarks_md import write_section
except ImportError:  # run as `python tools/bench_backends.py`: tools/ is on sys.path
    from benchmarks_md import write_section

SECTION = "Backends"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
WORKER = ("import json, sys; from tools.bench_core import training_overhead; import keras; "
          "print('RESULT' + json.dumps([keras.backend.backend(), keras.__version__, "
          "*training_overhead(float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))]))")


def measure(backend, width, rounds, steps, log=print):
    """`{"dense_ms", "gmp_ms", "ratio", "low", "high"}` for `backend`, or `{"missing": reason}`."""
    if importlib.util.find_spec(MODULES[backend]) is None:
        return {"missing": f"{MODULES[backend]} is not installed"}
    log(f"{backend}: {rounds + 1} interleaved rounds of {steps} steps ...")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", WORKER, str(width), str(rounds), str(steps)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} failed:\n{done.stderr[-3000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    name, version, dense, gmp, ratio, low, high = json.loads(line[len("RESULT"):])
    assert name == backend, (name, backend)
    return {"dense_ms": 1000 * dense, "gmp_ms": 1000 * gmp, "ratio": ratio, "low": low, "high": high,
            "keras": version}


def render(results, command) -> str:
    lines = [f"Measured with `{command}` on this project's 2-core x86 machine, one backend per process, one run.",
             "Mean train-step time with GMP / without (mask-update steps included; masks updated every 10 steps),",
             "interleaved rounds. On JAX each mask update re-traces the jitted step (the mask is a constant of the",
             "trace), which is what the JAX figure pays for.", "",
             "| backend | dense step (median) | GMP step (median) | ratio median | ratio min-max |", "|---|---|---|---|---|"]
    for backend, row in results.items():
        if "missing" in row:
            lines.append(f"| {backend} | not measured: {row['missing']} | | | |")
        else:
            lines.append(f"| {backend} | {row['dense_ms']:.1f} ms | {row['gmp_ms']:.1f} ms | {row['ratio']:.3f}x | "
                         f"{row['low']:.3f}x-{row['high']:.3f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--output", default=None, help="BENCHMARKS.md to update (default: the repository's)")
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = [name for name in backends if name not in MODULES]
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(MODULES)}")
    results = {backend: measure(backend, args.width, args.rounds, args.steps) for backend in backends}
    command = ("python tools/bench_backends.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    body = render(results, command)
    print(body)
    if args.output is not None:
        write_section(SECTION, body, path=args.output)
    else:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()

"""`tfsparse inspect PATH`: per-layer sparsity of a `.keras`, or the contents of a `.tflite`.

Example:

    tfsparse inspect out/pruned.keras
    tfsparse inspect out/model.tflite --json
    tfsparse inspect out/model.tflite --xnnpack
    tfsparse inspect out/dense.keras --xnnpack --sparsity=0.9
    tfsparse inspect out/model.tflite --nm=2:4
"""

from __future__ import annotations

import json
import os

from absl import flags

FLAGS = flags.FlagValues()
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a table.", flag_values=FLAGS)
_XNNPACK = flags.DEFINE_bool("xnnpack", False, "Predict whether XNNPACK's sparse path fires, and why not: the "
                             "planner for a .keras (per layer, with the Amdahl bound), the linter for a .tflite.",
                             flag_values=FLAGS)
_SPARSITY = flags.DEFINE_float("sparsity", None, "With --xnnpack on a .keras: judge and bound the speedup at this "
                               "sparsity of the 1x1 convolutions instead of their current zeros.", flag_values=FLAGS)
_NM = flags.DEFINE_string("nm", None, "Check the N:M pattern, e.g. --nm=2:4: list the weights (kernels of a .keras, "
                          "FULLY_CONNECTED/CONV_2D/TRANSPOSE_CONV/CONV_3D weights of a .tflite) with a block of M "
                          "input channels holding more than N non-zeros. The exit status stays 0; read the verdict.",
                          flag_values=FLAGS)


def run(path, *, xnnpack=False, sparsity=None, nm=None):
    """Returns a `SparsityReport` (.keras), a `TfliteSummary` (.tflite), or with
    `xnnpack=True` the planner's `PlanReport` (.keras, at `sparsity` if given)
    or the linter's `LintReport` (.tflite), or with `nm="N:M"` the N:M
    checker's `tfsparse.nm.NMReport` (`.ok`, `.violations`)."""
    path = os.fspath(path)
    if sparsity is not None and not (xnnpack and path.endswith(".keras")):
        raise ValueError(
            "Invalid value received for argument `sparsity`. It only applies with --xnnpack to a .keras model "
            f"(the planner). Received: sparsity={sparsity!r} for {path}"
        )
    if nm is not None:
        if xnnpack:
            raise ValueError(
                "Invalid value received for argument `nm`. --nm and --xnnpack are separate checks; "
                f"run one at a time. Received: nm={nm!r} with xnnpack=True"
            )
        from tfsparse.nm import check, parse_nm

        n, m = parse_nm(nm)
        return check(path, n=n, m=m)
    if xnnpack and path.endswith(".tflite"):
        from tfsparse.xnnpack import lint

        return lint(path)
    if path.endswith(".keras"):
        from tfsparse.model_source import load_keras_file

        model = load_keras_file(path, compile=False)
        if xnnpack:
            from tfsparse.xnnpack import check

            return check(model, sparsity=sparsity)
        from tfsparse.report import sparsity_report

        return sparsity_report(model)
    if path.endswith(".tflite"):
        from tfsparse.deploy import inspect_tflite

        return inspect_tflite(path)
    raise ValueError(
        "Invalid value received for argument `path`. Expected a `.keras` or "
        f"`.tflite` file. Received: path={path}"
    )


def main(argv):
    if len(argv) != 2:
        raise ValueError(
            "Invalid value received for argument `path`. Expected exactly one "
            f"file: tfsparse inspect PATH. Received: {argv[1:]}"
        )
    result = run(argv[1], xnnpack=_XNNPACK.value, sparsity=_SPARSITY.value, nm=_NM.value)
    print(json.dumps(result.to_dict(), indent=2) if _JSON.value else result)
    return 0

"""`tfsparse inspect PATH`: per-layer sparsity of a `.keras`, or the contents of a `.tflite`.

Example:

    tfsparse inspect out/pruned.keras
    tfsparse inspect out/model.tflite --json
    tfsparse inspect out/model.tflite --xnnpack
    tfsparse inspect out/dense.keras --xnnpack --sparsity=0.9
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


def run(path, *, xnnpack=False, sparsity=None):
    """Returns a `SparsityReport` (.keras), a `TfliteSummary` (.tflite), or with
    `xnnpack=True` the planner's `PlanReport` (.keras, at `sparsity` if given)
    or the linter's `LintReport` (.tflite)."""
    path = os.fspath(path)
    if sparsity is not None and not (xnnpack and path.endswith(".keras")):
        raise ValueError(
            "Invalid value received for argument `sparsity`. It only applies with --xnnpack to a .keras model "
            f"(the planner). Received: sparsity={sparsity!r} for {path}"
        )
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
    result = run(argv[1], xnnpack=_XNNPACK.value, sparsity=_SPARSITY.value)
    print(json.dumps(result.to_dict(), indent=2) if _JSON.value else result)
    return 0

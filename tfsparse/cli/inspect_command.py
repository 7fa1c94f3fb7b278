"""`tfsparse inspect PATH`: per-layer sparsity of a `.keras`, or the contents of a `.tflite`.

Example:

    tfsparse inspect out/pruned.keras
    tfsparse inspect out/model.tflite --json
    tfsparse inspect out/model.tflite --xnnpack
"""

from __future__ import annotations

import json
import os

from absl import flags

FLAGS = flags.FlagValues()
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a table.", flag_values=FLAGS)
_XNNPACK = flags.DEFINE_bool("xnnpack", False, "For a .tflite: predict whether XNNPACK's sparse path fires, and why not.",
                             flag_values=FLAGS)


def run(path, *, xnnpack=False):
    """Returns a `SparsityReport` (.keras), a `TfliteSummary` (.tflite), or with
    `xnnpack=True` the linter's `LintReport` for a .tflite."""
    path = os.fspath(path)
    if xnnpack and path.endswith(".tflite"):
        from tfsparse.xnnpack import lint

        return lint(path)
    if path.endswith(".keras"):
        from tfsparse.model_source import load_keras_file
        from tfsparse.report import sparsity_report

        return sparsity_report(load_keras_file(path, compile=False))
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
    result = run(argv[1], xnnpack=_XNNPACK.value)
    print(json.dumps(result.to_dict(), indent=2) if _JSON.value else result)
    return 0

"""XNNPACK's sparse inference path: will it fire, and why not.

- `lint(path)`: reads a `.tflite` and predicts whether XNNPACK takes its sparse
  (NCHW) path, with a reason per operator.
"""

from tfsparse.xnnpack.lint import LintReport, OpVerdict, lint

__all__ = ["LintReport", "OpVerdict", "lint"]

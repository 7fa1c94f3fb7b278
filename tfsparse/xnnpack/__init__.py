"""XNNPACK's sparse inference path: will it fire, and why not.

- `check(model)`: plans a Keras model, layer by layer, before training or
  export, with the Amdahl bound of the speedup.
- `lint(path)`: reads a `.tflite` and predicts whether XNNPACK takes its sparse
  (NCHW) path, with a reason per operator.
- `make_compatible(model)`: rewrites asymmetric stride-2 SAME padding into
  explicit symmetric padding.
- `observe(path)`: runs a file on the emulated aarch64 target and reports
  whether the sparse path actually fired (`tfsparse.emulator.observe`).
"""

from tfsparse.xnnpack.linter import LintReport, OpVerdict, lint
from tfsparse.xnnpack.compatible import make_compatible
from tfsparse.xnnpack.planner import LayerPlan, PlanReport, check


def __getattr__(name):
    # The emulator imports more: loaded on first use only.
    if name == "observe":
        from tfsparse.emulator import observe

        return observe
    raise AttributeError(f"module 'tfsparse.xnnpack' has no attribute {name!r}")


__all__ = ["LayerPlan", "LintReport", "OpVerdict", "PlanReport", "check", "lint", "make_compatible", "observe"]

"""Block-sparse `FULLY_CONNECTED` on ARM: which kernel runs each Dense layer of a `.tflite`.

- `kernels`: the names of the kernels (`"builtin-sparse-1x4"`, ...).
- `lint(path, runtime=...)`: the predicted kernel of every
  `FULLY_CONNECTED`, with the reasons it is not a block-sparse one
  (`tfsparse inspect --fc FILE.tflite`); `Runtime` and `RUNTIMES` describe
  the runtimes it predicts for (default: tflite-runtime 2.14 on aarch64).
- `observe(path)`: runs a file on the emulated aarch64 target and reports
  the kernel that actually ran each `FULLY_CONNECTED`, with the evidence
  (`tfsparse.emulator.fc_observation.observe_fc`).

Export targets `sparse-fc` (float32, 1x4 blocks) and `sparse-fc-int8`
(full-integer int8, 1x16 blocks) run the linter and refuse a file in which
no `FULLY_CONNECTED` would run sparse (see `tfsparse.deploy.targets`).
"""

from tfsparse.sparse_fc.lint import (DEFAULT_RUNTIME, RUNTIMES, FcFacts, FcLintReport, FcVerdict, Runtime,
                                     get_runtime, lint, predict, zeros_in_aligned_blocks)


def __getattr__(name):
    # The emulator imports more: loaded on first use only.
    if name == "observe":
        from tfsparse.emulator.fc_observation import observe_fc

        return observe_fc
    raise AttributeError(f"module 'tfsparse.sparse_fc' has no attribute {name!r}")


__all__ = ["DEFAULT_RUNTIME", "FcFacts", "FcLintReport", "FcVerdict", "RUNTIMES", "Runtime", "get_runtime", "lint",
           "observe", "predict", "zeros_in_aligned_blocks"]

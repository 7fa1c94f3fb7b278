"""`tfsparse compatible`: rewrite a model so XNNPACK's sparse path can run it, and say what changed.

Example:

    tfsparse compatible --model=mobilenet_v2.h5 --output=out/compatible.keras

Runs `tfsparse.xnnpack.make_compatible` (symmetric padding on every strided
convolution, squeeze-and-excitation gate scales folded), prints what was
rewritten or left alone and why, and the planner's verdict before and after
at `--sparsity`; writes the new model atomically. The input file is never
changed. The rewrite shifts the sampling grid by one pixel at each strided
layer: prune and fine-tune the result (`tfsparse prune --model=OUT ...`).
"""

from __future__ import annotations

import json
import os
import warnings

from absl import flags

FLAGS = flags.FlagValues()
_MODEL = flags.DEFINE_string("model", None, "A .keras or .h5 file (or FILE.py:FUNCTION).", flag_values=FLAGS)
_OUTPUT = flags.DEFINE_string("output", None, "The .keras file to write.", flag_values=FLAGS)
_SPARSITY = flags.DEFINE_float("sparsity", 0.9, "Sparsity of the 1x1 convolutions to plan at.", flag_values=FLAGS)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output file.", flag_values=FLAGS)
_JSON = flags.DEFINE_bool("json", False, "Print the report and plans as JSON.", flag_values=FLAGS)
REQUIRED = ("model", "output")


def run(*, model, output, sparsity=0.9, overwrite=False):
    """Loads `model`, rewrites it and saves it to `output`; returns `(report, plan before, plan after)`."""
    from tfsparse.model_source import load_model_source
    from tfsparse.outputs import atomic_output, check_output_path
    from tfsparse.xnnpack import check, make_compatible

    if not os.fspath(output).endswith(".keras"):
        raise ValueError("Invalid value received for flag --output. Expected a path ending in .keras, e.g. "
                         f"out/compatible.keras. Received: --output={output}")
    if os.path.abspath(os.fspath(output)) == os.path.abspath(os.fspath(model)):
        raise ValueError("Invalid value received for flag --output. Expected a new file: the input model is never "
                         f"replaced. Received: --output={output} (the same file as --model)")
    check_output_path(output, overwrite=overwrite, argument="output")
    keras_model = load_model_source(model, compile=False)
    before = check(keras_model, sparsity=sparsity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the report below says the same
        compatible, report = make_compatible(keras_model, return_report=True)
    after = check(compatible, sparsity=sparsity)
    with atomic_output(output, overwrite=overwrite) as tmp:
        compatible.save(tmp)
    return report, before, after


def main(argv):
    del argv
    report, before, after = run(model=_MODEL.value, output=_OUTPUT.value, sparsity=_SPARSITY.value,
                                overwrite=_OVERWRITE.value)
    if _JSON.value:
        print(json.dumps({"report": report.to_dict(), "before": before.to_dict(), "after": after.to_dict(),
                          "output": _OUTPUT.value}, indent=2, default=str))
        return 0
    print(report)
    print(f"XNNPACK sparse path at {_SPARSITY.value:.0%}: before {_verdict(before)}; after {_verdict(after)}")
    for reason in after.reasons:
        print(f"  - {reason}")
    if report.changed:
        print("The rewrite changes what the model computes (a one-pixel grid shift per rewritten layer): prune and "
              f"fine-tune {_OUTPUT.value}, e.g. tfsparse prune --model={_OUTPUT.value} --strategy_args=policy=xnnpack ...")
    print(f"Wrote {_OUTPUT.value}")
    return 0


def _verdict(plan):
    return "fires" if plan.fires else "eligible, not sparse enough" if plan.eligible else "does not fire"

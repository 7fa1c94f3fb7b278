"""`tfsparse demo [--quick] [--output=DIR]`: the main job on the bundled default.

Example:

    tfsparse demo --quick
"""

from __future__ import annotations

import os
import time

from absl import flags

from tfsparse import demo
from tfsparse.outputs import output_directory

FLAGS = flags.FlagValues()
_QUICK = flags.DEFINE_bool("quick", False, "A data subset and fewer steps (about 2 minutes).", flag_values=FLAGS)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an earlier demo's files in --output.", flag_values=FLAGS)
_OUTPUT = flags.DEFINE_string("output", None, "Output directory (default: tfsparse-demo/run-TIME).", flag_values=FLAGS)


def run(*, output=None, quick=False, overwrite=False):
    """Runs `tfsparse.demo.run`; the default output is a new timestamped folder."""
    if output is not None:
        return output, demo.run(output=output, quick=quick, overwrite=overwrite)
    with output_directory("tfsparse-demo") as parent:  # removed again if the first run fails
        output = os.path.join(parent, time.strftime("run-%Y%m%d-%H%M%S"))
        return output, demo.run(output=output, quick=quick, overwrite=overwrite)


def main(argv):
    del argv
    output, figures = run(output=_OUTPUT.value, quick=_QUICK.value, overwrite=_OVERWRITE.value)
    dense, sparse = figures["dense_export"], figures["sparse_export"]
    print(
        f"\ndense accuracy  {figures['dense_accuracy']:.4f}\n"
        f"pruned accuracy {figures['pruned_accuracy']:.4f}  "
        f"({figures['pruned_1x1_sparsity']:.1%} of 1x1 conv weights are zero)\n"
        f"dense.tflite    {dense['size_bytes']} bytes\n"
        f"sparse.tflite   {sparse['size_bytes']} bytes "
        f"({sparse['size_bytes'] / dense['size_bytes']:.1%} of dense)\n"
        f"report          {os.path.join(output, 'REPORT.md')}"
    )
    return 0

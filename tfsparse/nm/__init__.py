"""N:M structured sparsity: the pattern, its axes, and the model checker.

In every block of M consecutive weights along the reduction axis (the input
channels, innermost in TFLite's weight layout) at most N are non-zero; 2:4
is what sparse tensor cores run. The `nm` strategy
(`tfsparse.strategies.nm.NM`) trains to this pattern, `check` (and
`tfsparse inspect --nm=2:4 PATH`) verifies a `.keras` or `.tflite` file.

TFLite and XNNPACK on CPU do not accelerate N:M: a 2:4 model runs at dense
speed there (and 50% sparsity is too little for XNNPACK's unstructured
sparse path). Use it for accelerators with 2:4 support.

Example:

>>> import numpy as np
>>> from tfsparse import nm
>>> w = np.arange(1.0, 9.0).reshape(8, 1)  # Keras Dense kernel (in=8, out=1)
>>> pruned = w * nm.nm_mask(w, 2, 4, axis=0)
>>> pruned.ravel().tolist(), nm.violations(pruned, 2, 4, axis=0)
([0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 7.0, 8.0], (0, 2))
"""

from tfsparse.nm.axes import reduction_axis, register_reduction_axis
from tfsparse.nm.checker import NMReport, TensorCheck, check
from tfsparse.nm.pattern import check_nm, nm_mask, parse_nm, violations

__all__ = ["NMReport", "TensorCheck", "check", "check_nm", "nm_mask", "parse_nm", "reduction_axis",
           "register_reduction_axis", "violations"]

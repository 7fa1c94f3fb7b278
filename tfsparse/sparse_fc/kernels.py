"""Which kernel runs a TFLite `FULLY_CONNECTED`: the names the linter predicts and the emulator observes.

TFLite's builtin `FULLY_CONNECTED` has NEON kernels for block-sparse weights
(filters `[out, in]`, blocks along the input dimension): float32 with 1x4
blocks and full-integer int8 with 1x16 blocks. The converter
(`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`) stores such a weight sparse and
raises the op to version 8, which XNNPACK refuses, so the builtin kernel runs
it. An operator code (and so its version) is shared by every
`FULLY_CONNECTED` of a file: once one weight is block-sparse, XNNPACK refuses
the dense ones too. A weight the converter cannot block gets a `DENSIFY` op
and runs dense (in XNNPACK where it delegates).

Example:

>>> from tfsparse.sparse_fc.kernels import KERNELS, SPARSE_KERNELS, sparse_kernel_for
>>> sparse_kernel_for("float32", 4), sparse_kernel_for("int8", 16), sparse_kernel_for("int8", 4)
('builtin-sparse-1x4', 'builtin-sparse-1x16', None)
>>> sorted(SPARSE_KERNELS) == sorted(k for k in KERNELS if k.startswith("builtin-sparse"))
True
"""

from __future__ import annotations

XNNPACK_DENSE = "xnnpack-dense"
"""Delegated to XNNPACK: dense weights (or a `DENSIFY` output), dense GEMM."""

BUILTIN_SPARSE_1X4 = "builtin-sparse-1x4"
"""TFLite's float32 kernel for 1x4 block-sparse weights (not delegated)."""

BUILTIN_SPARSE_1X16 = "builtin-sparse-1x16"
"""TFLite's int8 kernel for 1x16 block-sparse weights (not delegated)."""

BUILTIN_DENSE = "builtin-dense"
"""TFLite's builtin dense kernel (not delegated: the file's op version, int8 the runtime does not delegate, ...)."""

UNSUPPORTED = "unsupported"
"""The runtime cannot run the op (e.g. an op version newer than it knows)."""

BUILTIN_RANDOM_SPARSE = "builtin-random-sparse"
"""TFLite's float32 loop for sparse weights without blocks (plain CSR read by the op, no `DENSIFY`).

The converter never writes such a weight for `FULLY_CONNECTED` (it puts a
`DENSIFY` op in front), so only hand-made files reach it; it is a scalar
loop, not one of the block-sparse kernels of `SPARSE_KERNELS`.
"""

KERNELS = (XNNPACK_DENSE, BUILTIN_SPARSE_1X4, BUILTIN_SPARSE_1X16, BUILTIN_DENSE, UNSUPPORTED, BUILTIN_RANDOM_SPARSE)

SPARSE_KERNELS = {BUILTIN_SPARSE_1X4: ("float32", 4), BUILTIN_SPARSE_1X16: ("int8", 16)}
"""Block-sparse kernels: `{name: (weight type, block size along the input dimension)}`."""

BLOCK_SHAPES = {"float32": (1, 4), "int8": (1, 16)}
"""The `block_shape` (`[out, in]`, as TFLite writes filters) each weight type's sparse kernel needs."""

SPARSE_FC_VERSION = 8
"""The `FULLY_CONNECTED` version the converter gives a file with a block-sparse weight."""


def sparse_kernel_for(weight_type: str, block: int) -> str | None:
    """The block-sparse kernel for a weight type and input block size, or `None` if there is none."""
    for name, (kind, size) in SPARSE_KERNELS.items():
        if kind == weight_type and size == block:
            return name
    return None

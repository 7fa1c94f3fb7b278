"""Block geometry of fully-connected kernels, for block-sparse masks (`GMP(block_shape=...)`).

TFLite's converter (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`) stores a
`FULLY_CONNECTED` weight block-sparse, which its builtin kernels then run
sparse, when the zeros come in aligned blocks: 1x4 for float32, 1x16 for
full-integer int8 (it also wants at least 30% zeros, most of them in whole
blocks). Scattered zeros get a `DENSIFY` op instead: the weight is expanded
at load time and runs dense.

**Orientation.** `block_shape = (out_block, in_block)` is given in TFLite's
orientation, where a `FULLY_CONNECTED` filter is `[out, in]`. A Keras
`Dense` kernel is the transpose, `[in, out]`: `block_shape=(1, 4)` means
**4 consecutive input rows of one output column**, `kernel[4*i:4*i+4, j]`.
`(1, 4)` (`"fp32"`) is the float32 block, `(1, 16)` (`"int8"`) the int8 one;
`(1, 1)` means unstructured. Other shapes give block-aligned masks that
TFLite stores without blocks (`DENSIFY`).

Which kernels have a block geometry (`kernel_layout`):

- `Dense`: axis 0 is the input, axis 1 the output.
- `EinsumDense`: the kernel axes its equation contracts with the input are
  the input axes, the ones that only appear in the output the output axes;
  blocks run along the input's last contracted axis (the one TFLite's
  flattened input varies fastest), e.g. for `"abcd,dce->abe"` (kernel
  `[d, c, e]`) along kernel axis 0. An equation that keeps a kernel axis in
  both input and output (`"abc,bcd->abd"`) becomes `BATCH_MATMUL`, which
  TFLite does not sparse-encode: refused.
- the `MoE` layer of the `tfsparse-moe` plugin (once a user made its experts
  prunable with `tfsparse.register_prunable`): `router_kernel` `[d, E]` and
  `expert_kernel_in` / `expert_kernel_gate` `[E, d, h]` convert to
  `FULLY_CONNECTED` (the experts as one `[E*h, d]` filter: blocks along
  `d`). `expert_kernel_out` `[E, h, d]` multiplies each expert's own hidden
  activations, a `BATCH_MATMUL`: refused.
- anything else (convolutions, embeddings, recurrent cells): refused.

`plan(weights, block_shape)` checks a whole selection at once and raises
one error naming every layer that cannot take the blocks, with the fix.

Example:

>>> import keras, numpy as np
>>> from tfsparse import blocks
>>> layer = keras.layers.Dense(2)
>>> layer.build((None, 8))
>>> blocks.kernel_layout(layer, layer.kernel)
KernelLayout(input_axes=(0,), output_axes=(1,), in_axis=0, out_axis=1)
>>> sizes = blocks.block_sizes(blocks.kernel_layout(layer, layer.kernel), (1, 4))
>>> sizes  # per kernel axis: 4 input rows, 1 output column
(4, 1)
>>> kernel = np.arange(16.0).reshape(8, 2)
>>> blocks.block_scores(kernel, sizes, reduce="sum").tolist()  # kernel[0:4, 0] sums to 0+2+4+6
[[12.0, 16.0], [44.0, 48.0]]
>>> blocks.expand(np.array([[1, 0], [0, 1]]), sizes)[:, 1].tolist()
[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import dataclasses
import sys

import keras
import numpy as np

from tfsparse.errors import invalid_argument, is_integer

UNSTRUCTURED = (1, 1)
"""`block_shape` of unstructured masks (the default of `GMP`)."""

FP32 = (1, 4)
"""The block TFLite sparse-encodes in float32 `FULLY_CONNECTED` weights: 4 input rows of one output."""

INT8 = (1, 16)
"""The block TFLite sparse-encodes in full-integer int8 `FULLY_CONNECTED` weights."""

SHORTHANDS = {"fp32": FP32, "int8": INT8}
"""Names accepted for `block_shape`."""

_EXPECTED = ("a pair of positive integers (out_block, in_block) in TFLite's [out, in] orientation, e.g. "
             "(1, 4) for float32 (4 consecutive input rows of a Keras Dense kernel, one output column) or "
             "(1, 16) for int8; or 'fp32' / 'int8'; (1, 1) for unstructured masks")


def check_block_shape(block_shape, argument="block_shape") -> tuple[int, int]:
    """Returns `block_shape` as a tuple `(out_block, in_block)`; raises for anything else.

    Accepts a tuple or list of two positive integers (a JSON round trip
    turns the tuple into a list) or a shorthand of `SHORTHANDS`.

    Raises:
        ValueError: naming `argument`, with the expected forms.

    Example:

    >>> check_block_shape([1, 4]), check_block_shape("int8")
    ((1, 4), (1, 16))
    """
    if isinstance(block_shape, str) and block_shape in SHORTHANDS:
        return SHORTHANDS[block_shape]
    if (isinstance(block_shape, (tuple, list)) and len(block_shape) == 2
            and all(is_integer(size) and size >= 1 for size in block_shape)):
        return int(block_shape[0]), int(block_shape[1])
    raise invalid_argument(argument, _EXPECTED, block_shape)


@dataclasses.dataclass(frozen=True)
class KernelLayout:
    """How a kernel maps onto TFLite's `FULLY_CONNECTED` filter `[out, in]`.

    Attributes:
        input_axes: Kernel axes contracted with the layer's input (TFLite's
            `in`, flattened).
        output_axes: Kernel axes of the output (TFLite's `out`, flattened).
        in_axis: The input axis that varies fastest in TFLite's `in`: the
            one blocks run along.
        out_axis: The output axis that varies fastest in TFLite's `out`, or
            `None` for a kernel without output axes.
    """

    input_axes: tuple
    output_axes: tuple
    in_axis: int
    out_axis: int | None


def kernel_layout(layer, variable) -> KernelLayout:
    """The `KernelLayout` of `variable`, a kernel of `layer`.

    Raises:
        ValueError: naming `layer`, for a weight TFLite does not run as a
            `FULLY_CONNECTED` filter (with the reason).

    Example:

    >>> import keras
    >>> layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 4, 8))
    >>> layer.build((None, 5, 16))
    >>> kernel_layout(layer, layer.kernel)
    KernelLayout(input_axes=(0,), output_axes=(1, 2), in_axis=0, out_axis=2)
    """
    layout = _layout(layer, variable)
    if isinstance(layout, str):
        raise invalid_argument("layer", f"a layer whose weight TFLite runs as a FULLY_CONNECTED filter; {layout}",
                               layer.name)
    return layout


def block_sizes(layout, block_shape) -> tuple:
    """The block size along each kernel axis: `in_block` on `in_axis`, `out_block` on `out_axis`, 1 elsewhere.

    Does not check divisibility (`plan` does).

    Raises:
        ValueError: for a bad `block_shape`, or `out_block > 1` on a kernel
            without output axes.
    """
    out_block, in_block = check_block_shape(block_shape)
    rank = max((*layout.input_axes, *layout.output_axes)) + 1
    sizes = [1] * rank
    sizes[layout.in_axis] = in_block
    if layout.out_axis is not None:
        sizes[layout.out_axis] = out_block
    elif out_block != 1:
        raise invalid_argument("block_shape", "out_block 1 for a kernel without output axes", block_shape)
    return tuple(sizes)


def block_scores(values, sizes, *, reduce="mean") -> np.ndarray:
    """`|values|` reduced over each block: an array of the block grid's shape (`shape // sizes`).

    Args:
        values: The kernel (array-like), each dimension divisible by its
            block size.
        sizes: The block size along each axis (`block_sizes`).
        reduce: `"mean"` (comparable with scalar magnitudes) or `"sum"`.
            Defaults to `"mean"`.

    Raises:
        ValueError: for a shape that the sizes do not divide, or another
            `reduce`.
    """
    values = np.abs(np.asarray(values, dtype=np.float64))
    if reduce not in ("mean", "sum"):
        raise invalid_argument("reduce", "'mean' or 'sum'", reduce)
    split = _split_shape(values.shape, sizes)
    blocked = values.reshape(split)
    axes = tuple(range(1, len(split), 2))
    return blocked.mean(axis=axes) if reduce == "mean" else blocked.sum(axis=axes)


def expand(block_mask, sizes) -> np.ndarray:
    """A block-grid mask repeated to the kernel's shape (float32 0/1 where it was zero/non-zero)."""
    mask = (np.asarray(block_mask) != 0).astype(np.float32)
    if mask.ndim != len(sizes):
        raise invalid_argument("block_mask", f"an array of {len(sizes)} dimensions (one per kernel axis)",
                               f"an array of shape {mask.shape}")
    for axis, size in enumerate(sizes):
        mask = np.repeat(mask, int(size), axis=axis)
    return mask


def is_aligned(values, sizes) -> bool:
    """Whether every block of `values` is all zero or all non-zero.

    Example:

    >>> import numpy as np
    >>> is_aligned(np.array([[0.0], [0.0], [1.0], [2.0]]), (2, 1)), is_aligned(np.eye(2), (2, 1))
    (True, False)
    """
    nonzero = np.asarray(values) != 0
    blocked = nonzero.reshape(_split_shape(nonzero.shape, sizes))
    axes = tuple(range(1, blocked.ndim, 2))
    return bool(np.all(blocked.all(axis=axes) | ~blocked.any(axis=axes)))


def plan(weights, block_shape) -> dict:
    """Checks that every weight can take `block_shape`; returns `{id(variable): block sizes per axis}`.

    Args:
        weights: `tfsparse.prunable.PrunableWeight`s (a strategy's selection).
        block_shape: `(out_block, in_block)`, see `check_block_shape`.

    Returns:
        The block size along each kernel axis of each weight (all ones for
        `(1, 1)`).

    Raises:
        ValueError: naming `block_shape` and every offending layer: weights
            TFLite does not run as `FULLY_CONNECTED` filters (with how to
            leave them out), and input (or output) sizes the block does not
            divide.

    Example:

    >>> import keras
    >>> from tfsparse.selection import select_weights
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
    ...                           keras.layers.Flatten(), keras.layers.Dense(10, name="head")])
    >>> sizes = plan(select_weights(model, layers=keras.layers.Dense), (1, 4))  # the head only
    >>> list(sizes.values())
    [(4, 1)]
    """
    block_shape = check_block_shape(block_shape)
    out_block, in_block = block_shape
    result, refused, indivisible = {}, [], []
    for weight in weights:
        if block_shape == UNSTRUCTURED:
            result[id(weight.variable)] = (1,) * len(weight.variable.shape)
            continue
        layout = _layout(weight.layer, weight.variable)
        if isinstance(layout, str):
            refused.append((weight, layout))
            continue
        if layout.out_axis is None and out_block != 1:
            refused.append((weight, "its kernel has no output axis to block (use out_block 1)"))
            continue
        shape = tuple(int(d) for d in weight.variable.shape)
        for axis, name, block in ((layout.in_axis, "input", in_block), (layout.out_axis, "output", out_block)):
            if axis is not None and shape[axis] % block:
                indivisible.append((weight, f"{_describe(weight)} has {name} size {shape[axis]} (kernel axis "
                                            f"{axis} of shape {list(shape)}), not a multiple of {block}"))
        result[id(weight.variable)] = block_sizes(layout, block_shape)
    if refused:
        reasons = "; ".join(f"{_describe(weight)}: {reason}" for weight, reason in refused)
        raise invalid_argument(
            "block_shape",
            "a block shape only on weights TFLite runs as FULLY_CONNECTED filters (Dense, EinsumDense), where "
            f"blocks are sparse-encoded, but the selection also holds {reasons}. Give the block shape to the "
            "fully-connected layers only, e.g. layers=keras.layers.Dense (and prune the others with a second "
            f"strategy without block_shape), or leave these out with exclude={_exclusion(refused)!r}",
            block_shape)
    if indivisible:
        names = _exclusion(indivisible)
        raise invalid_argument(
            "block_shape",
            f"blocks that divide every selected kernel, but {'; '.join(text for _, text in indivisible)}. "
            f"Exclude {'that layer' if len(names) == 1 else 'those layers'} (exclude={names!r}) or choose another "
            "block (TFLite encodes (1, 4) in float32 and (1, 16) in int8 weights)", block_shape)
    return result


# ---------------------------------------------------------------- helpers
def _layout(layer, variable):
    """The `KernelLayout` of `variable`, or a string saying why it has none."""
    rank = len(variable.shape)
    if isinstance(layer, keras.layers.Dense):
        if variable is not getattr(layer, "_kernel", None) or rank != 2:
            return f"{variable.name!r} is not the kernel of the Dense layer"
        return KernelLayout(input_axes=(0,), output_axes=(1,), in_axis=0, out_axis=1)
    if isinstance(layer, keras.layers.EinsumDense):
        if variable is not getattr(layer, "_kernel", None):
            return f"{variable.name!r} is not the kernel of the EinsumDense layer"
        return _einsum_layout(layer.equation)
    moe = _moe_class()
    if moe is not None and isinstance(layer, moe):
        return _moe_layout(layer, variable)
    return f"a {type(layer).__name__} weight is not a FULLY_CONNECTED filter in TFLite"


def _einsum_layout(equation):
    operands, output = equation.replace(" ", "").split("->")
    inputs, kernel = operands.split(",")
    inputs, output = inputs.replace(".", ""), output.replace(".", "")
    kept = [c for c in kernel if c in inputs and c in output]
    summed = [c for c in kernel if c not in inputs and c not in output]
    contracted = [c for c in inputs if c in kernel and c not in output]
    outputs = [c for c in output if c in kernel and c not in inputs]
    if kept:
        return (f"its equation {equation!r} keeps kernel axis {kept[0]!r} of the input in the output, so TFLite "
                "runs it as BATCH_MATMUL, which it does not sparse-encode")
    if summed or "." in kernel or not contracted:
        return f"its equation {equation!r} is not a matrix product of the input with the kernel"
    return KernelLayout(input_axes=tuple(sorted(kernel.index(c) for c in contracted)),
                        output_axes=tuple(sorted(kernel.index(c) for c in outputs)),
                        in_axis=kernel.index(contracted[-1]),
                        out_axis=kernel.index(outputs[-1]) if outputs else None)


def _moe_class():
    """`tfsparse_moe.MoE` when the plugin is loaded (a model with MoE layers imported it), else `None`."""
    module = sys.modules.get("tfsparse_moe.layer")
    return getattr(module, "MoE", None)


def _moe_layout(layer, variable):
    if variable is getattr(layer, "router_kernel", None):  # [d, E]: x @ W
        return KernelLayout(input_axes=(0,), output_axes=(1,), in_axis=0, out_axis=1)
    if any(variable is getattr(layer, name, None) for name in ("expert_kernel_in", "expert_kernel_gate")):
        # [E, d, h]: one [d, E*h] matmul (MoE.experts), TFLite filter [E*h, d]
        return KernelLayout(input_axes=(1,), output_axes=(0, 2), in_axis=1, out_axis=2)
    if variable is getattr(layer, "expert_kernel_out", None):
        return ("expert_kernel_out [E, h, d] multiplies each expert's own hidden activations, so TFLite runs it as "
                "BATCH_MATMUL, which it does not sparse-encode")
    return f"{variable.name!r} is not a kernel of the MoE layer"


def _split_shape(shape, sizes):
    """`[d0 // s0, s0, d1 // s1, s1, ...]`, or a ValueError when a size does not divide its dimension."""
    shape, sizes = tuple(int(d) for d in shape), tuple(int(s) for s in sizes)
    if len(shape) != len(sizes) or any(s < 1 or d % s for d, s in zip(shape, sizes)):
        raise invalid_argument("sizes", f"one block size per axis of shape {list(shape)}, each dividing it",
                               sizes)
    return [n for d, s in zip(shape, sizes) for n in (d // s, s)]


def _describe(weight) -> str:
    return f"{weight.layer.name} ({type(weight.layer).__name__}, {weight.variable.path})"


def _exclusion(entries) -> list:
    """What to pass as `exclude=` to leave `entries` out: layer names (weight paths for an MoE's kernels)."""
    moe = _moe_class()
    keys = [weight.variable.path if moe is not None and isinstance(weight.layer, moe) else weight.layer.name
            for weight, _ in entries]
    return list(dict.fromkeys(keys))

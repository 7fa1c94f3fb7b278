"""Export targets: how each one saves and converts a model.

| target           | weights                    | sparse encoding             | batch dimension | refused unless (`allow_ineligible=True` writes and warns) |
|------------------|----------------------------|-----------------------------|-----------------|------------------------------------------------------------|
| `dense`          | float32                    | never                       | the model's own | -                                                          |
| `sparse`         | float32                    | where smaller               | the model's own | -                                                          |
| `xnnpack`        | float32                    | where smaller               | fixed to 1      | XNNPACK's sparse (NCHW) path fires (`tfsparse.xnnpack.lint`) |
| `int8`           | int8 (full-integer)        | where smaller               | the model's own | -                                                          |
| `sparse-fc`      | float32                    | where smaller, block-sparse `FULLY_CONNECTED` weights always | the model's own | a `FULLY_CONNECTED` runs `builtin-sparse-1x4` (`tfsparse.sparse_fc.lint`) |
| `sparse-fc-int8` | int8 (full-integer), per-tensor `FULLY_CONNECTED` weights | as `sparse-fc` | the model's own | a `FULLY_CONNECTED` runs `builtin-sparse-1x16` |

`xnnpack` fixes the batch to 1 because XNNPACK's sparse (NCHW) path needs
static shapes (see `shared/design/xnnpack-sparse.md`), and `export` refuses
it (`ValueError` with the reasons) when `tfsparse.xnnpack.lint` predicts
that the path will not fire for the converted file, unless
`allow_ineligible=True` (then it writes the file and warns). `int8` is full-integer
post-training quantization calibrated on `representative_data`: every op
runs in int8 (`TFLITE_BUILTINS_INT8`; a model with an op that has no int8
kernel is refused), while the model's inputs and outputs stay float32, with
QUANTIZE/DEQUANTIZE at the edges, so the file is a drop-in replacement for
the float one. "Where smaller" is decided per tensor after conversion by
`tfsparse.deploy.encoding`.

`sparse-fc` and `sparse-fc-int8` are for Dense layers whose kernels are
masked in blocks of consecutive inputs (4 for float32, 16 for int8): the
converter stores such a weight block-sparse and TFLite's builtin
`FULLY_CONNECTED` runs it with its NEON block-sparse kernel (XNNPACK has
none). `export` runs `tfsparse.sparse_fc.lint` for tflite-runtime 2.14 on
aarch64 (the emulated ARM target) and refuses the file (`IneligibleError`,
nothing written) unless at least one `FULLY_CONNECTED` takes the target's
kernel and none is `unsupported` there; `allow_ineligible=True` writes it
and warns. Both keep the model's batch dimension (the kernels take any
batch) and never store a block-sparse `FULLY_CONNECTED` weight dense.
`sparse-fc-int8` quantizes `FULLY_CONNECTED` weights per tensor
(`_experimental_disable_per_channel_quantization_for_dense_layers`):
tflite-runtime 2.14's 1x16 kernel applies one scale per tensor and gives
wrong outputs for per-channel weights (measured on emulated aarch64).

Example:

>>> from tfsparse.deploy.targets import get_target
>>> get_target("xnnpack").batch_size
1
>>> get_target("sparse-fc-int8").fc_kernel, get_target("sparse-fc").batch_size
('builtin-sparse-1x16', None)
"""

from __future__ import annotations

import dataclasses
import warnings

import keras
import tensorflow as tf
from keras.src.export import export_utils


@dataclasses.dataclass(frozen=True)
class Target:
    """How one export target converts.

    Attributes:
        name: The target name.
        sparse: Convert with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`.
        int8: Full-integer post-training quantization.
        batch_size: The fixed batch size, or `None` to keep the model's.
        fc_kernel: The block-sparse `FULLY_CONNECTED` kernel (a name of
            `tfsparse.sparse_fc.kernels`) the file must run somewhere, or
            `None` for no such check.
        per_tensor_dense: Quantize `FULLY_CONNECTED` weights per tensor
            instead of per channel (int8 only).
    """

    name: str
    sparse: bool
    int8: bool = False
    batch_size: int | None = None
    fc_kernel: str | None = None
    per_tensor_dense: bool = False

    @property
    def gated(self) -> bool:
        """Whether `export` refuses a file of this target that will not run sparse (`allow_ineligible` applies)."""
        return self.name == "xnnpack" or self.fc_kernel is not None


TARGETS = {
    "dense": Target("dense", sparse=False),
    "sparse": Target("sparse", sparse=True),
    "xnnpack": Target("xnnpack", sparse=True, batch_size=1),
    "int8": Target("int8", sparse=True, int8=True),
    "sparse-fc": Target("sparse-fc", sparse=True, fc_kernel="builtin-sparse-1x4"),
    "sparse-fc-int8": Target("sparse-fc-int8", sparse=True, int8=True, fc_kernel="builtin-sparse-1x16",
                             per_tensor_dense=True),
}

GATED = tuple(name for name, target in TARGETS.items() if target.gated)
"""The targets `export` refuses when their sparse path will not run (`allow_ineligible` applies to these)."""


def shrinks(target) -> bool:
    """Whether `export` removes zero channels (`finalize(shrink=True)`) for `target`.

    Not for `sparse-fc`/`sparse-fc-int8`: removing a zero output channel of
    one Dense layer removes an input row of the next, which shifts its
    1x4/1x16 blocks out of alignment (measured: a 64-64-32 MLP masked in 1x4
    blocks at 90% kept 85% of its second kernel's zeros in aligned blocks
    after the shrink, so the converter wrote DENSIFY instead of blocks).
    """
    return target.fc_kernel is None


def get_target(name) -> Target:
    """Returns the `Target` called `name`.

    Raises:
        ValueError: if `name` is not one of `TARGETS`.
    """
    if name not in TARGETS:
        raise ValueError(
            "Invalid value received for argument `target`. Expected one of "
            f"{sorted(TARGETS)}. Received: target={name!r}"
        )
    return TARGETS[name]


def input_signature(model, *, batch_size=None):
    """The model's input signature for `model.export`, batch fixed if asked.

    Args:
        model: A built, called `keras.Model`.
        batch_size: The batch size to fix, or `None` to keep the model's.
            Defaults to `None`.
    """
    signature = export_utils.get_input_signature(model)
    if batch_size is None:
        return signature

    def fix(spec):
        shape = tuple(spec.shape)
        return keras.InputSpec(shape=(batch_size, *shape[1:]), dtype=spec.dtype, name=spec.name)

    return keras.tree.map_structure(fix, signature)


def converter(saved_model_dir, target, *, sparse=None, samples=None):
    """A `tf.lite.TFLiteConverter` configured for `target`.

    Args:
        saved_model_dir: The SavedModel to convert.
        target: A `Target`.
        sparse: Override `target.sparse` (used to convert a dense twin).
            Defaults to `None`.
        samples: Calibration samples (`{name: array}` dicts) for int8.
            Defaults to `None`.
    """
    result = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    optimizations = []
    if target.int8:
        optimizations.append(tf.lite.Optimize.DEFAULT)
        result.representative_dataset = lambda: iter(samples)
        result.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        result.inference_input_type = tf.float32
        result.inference_output_type = tf.float32
        if target.per_tensor_dense:  # per-channel sparse weights break tflite-runtime 2.14's 1x16 kernel
            result._experimental_disable_per_channel_quantization_for_dense_layers = True
    if target.sparse if sparse is None else sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    result.optimizations = optimizations
    return result


def run_converter(converter_):
    """`converter_.convert()`, without TF's own deprecation noise.

    The int8 calibrator inside TensorFlow instantiates the deprecated
    `tf.lite.Interpreter`, which warns the caller to migrate to LiteRT; that
    warning is about TensorFlow's internals, not the caller's code.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated",
                                category=UserWarning)
        return converter_.convert()

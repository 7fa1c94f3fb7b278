"""`tfsparse export`: a `.keras` model to `.tflite` (dense, sparse, xnnpack, int8, sparse-fc, sparse-fc-int8).

Example:

    tfsparse export --model=out/pruned.keras --output=out/model.tflite --target=sparse
    tfsparse export --model=out/pruned.keras --output=out/model.tflite --target=xnnpack
    tfsparse export --model=out/mlp.keras --output=out/mlp.tflite --target=sparse-fc
    tfsparse export --model=out/mlp.keras --output=out/mlp8.tflite --target=sparse-fc-int8 \
        --representative_data=fashion_mnist

`--target=xnnpack` is refused when XNNPACK's sparse path would not fire for
the file, `--target=sparse-fc` / `sparse-fc-int8` when no FULLY_CONNECTED
would run TFLite's block-sparse 1x4 / 1x16 kernel on tflite-runtime 2.14
(aarch64) (the error lists why); `--allow_ineligible` writes it anyway, with
a warning. With `KERAS_BACKEND=jax` (or `torch`) the model loads and is
verified on that backend while the conversion runs in a TensorFlow-backend
subprocess (`tfsparse.deploy.cross_backend`).
"""

from __future__ import annotations

import json

from absl import flags

from tfsparse import data as datasets
from tfsparse.model_source import load_model_source

FLAGS = flags.FlagValues()
_MODEL = flags.DEFINE_string("model", None, "A .keras file (or FILE.py:FUNCTION).", flag_values=FLAGS)
_OUTPUT = flags.DEFINE_string("output", None, "The .tflite file to write.", flag_values=FLAGS)
TARGETS = ("dense", "sparse", "xnnpack", "int8", "sparse-fc", "sparse-fc-int8")  # tfsparse.deploy.targets.TARGETS
_TARGET = flags.DEFINE_enum("target", "sparse", list(TARGETS), "Export target (see tfsparse.deploy.targets): "
                            "sparse-fc and sparse-fc-int8 run Dense layers with TFLite's block-sparse kernels.",
                            flag_values=FLAGS)
_DATA = flags.DEFINE_string("representative_data", None,
                            "Dataset name or .npz whose training images calibrate int8 (and sample verification).",
                            flag_values=FLAGS)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Pad dataset images to this size.", flag_values=FLAGS)
_CHANNELS = flags.DEFINE_integer("channels", None, "Replicate grayscale to this many channels.", flag_values=FLAGS)
_SAMPLES = flags.DEFINE_integer("samples", 200, "Representative samples to use.", flag_values=FLAGS)
_VERIFY = flags.DEFINE_bool("verify", True, "Compare the .tflite with Keras on sample inputs.", flag_values=FLAGS)
_ALLOW_INELIGIBLE = flags.DEFINE_bool(
    "allow_ineligible", False, "With --target=xnnpack, sparse-fc or sparse-fc-int8: write the file even when its "
    "sparse path will not run (warns with the reasons) instead of refusing it.", flag_values=FLAGS)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output file.", flag_values=FLAGS)
_JSON = flags.DEFINE_bool("json", False, "Print the result as JSON.", flag_values=FLAGS)
REQUIRED = ("model", "output")


def run(*, model, output, target="sparse", representative_data=None, image_size=None, channels=None,
        samples=200, verify=True, overwrite=False, allow_ineligible=False):
    """Loads `model` and calls `tfsparse.deploy.export`; returns its `ExportResult`."""
    from tfsparse.deploy import IneligibleError, export
    from tfsparse.deploy.convert import check_allow_ineligible, ineligible_message
    from tfsparse.outputs import check_output_path

    check_allow_ineligible(allow_ineligible, target)  # before loading the model
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(
            "Invalid value received for argument `samples`. Expected a positive integer (how many "
            f"representative samples to use). Received: samples={samples!r}"
        )
    check_output_path(output, overwrite=overwrite)
    keras_model = load_model_source(model, compile=False)
    representative = None
    if representative_data:
        dataset = datasets.load(representative_data, image_size=image_size, channels=channels, limit=samples)
        datasets.check_fits(dataset, keras_model)
        representative = dataset.x_train[:samples]
    try:
        return export(keras_model, output, target=target, representative_data=representative,
                      verify=verify, overwrite=overwrite, allow_ineligible=allow_ineligible)
    except IneligibleError as error:  # the same message, with the command line's spellings
        size_only = "--target=int8" if error.target == "sparse-fc-int8" else "--target=sparse"
        raise IneligibleError(ineligible_message(error.reasons, target=error.target, sparse=size_only,
                                                 allow="--allow_ineligible"),
                              reasons=error.reasons, target=error.target) from None


def main(argv):
    del argv
    result = run(model=_MODEL.value, output=_OUTPUT.value, target=_TARGET.value,
                 representative_data=_DATA.value, image_size=_IMAGE_SIZE.value, channels=_CHANNELS.value,
                 samples=_SAMPLES.value, verify=_VERIFY.value, overwrite=_OVERWRITE.value,
                 allow_ineligible=_ALLOW_INELIGIBLE.value)
    print(json.dumps(result.to_dict(), indent=2) if _JSON.value else result)
    return 0

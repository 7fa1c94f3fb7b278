"""Errors raised by `tfsparse.deploy`.

All derive from `ValueError`, so code that already catches Keras-style
`ValueError`s keeps working; catch these for export-specific handling.

Example:

>>> from tfsparse.deploy import ExportError, IneligibleError, VerificationError
>>> issubclass(ExportError, ValueError), issubclass(VerificationError, ExportError)
(True, True)
>>> issubclass(IneligibleError, ValueError)
True
"""


class ExportError(ValueError):
    """The model could not be saved or converted to TFLite.

    The message says which step failed (SavedModel tracing or the TFLite
    converter), what it rejected, and what to try.
    """


class VerificationError(ExportError):
    """The `.tflite` file does not reproduce the Keras model's outputs.

    Attributes:
        verification: The `Verification` with the measured figures.
    """

    def __init__(self, message, verification=None):
        super().__init__(message)
        self.verification = verification


class IneligibleError(ValueError):
    """A gated target refused: the file will not take the target's sparse path.

    Raised by `export(..., target="xnnpack")` when `tfsparse.xnnpack.lint`
    predicts that the converted model runs dense, and by targets
    `sparse-fc`/`sparse-fc-int8` when `tfsparse.sparse_fc.lint` predicts
    that no `FULLY_CONNECTED` runs their block-sparse kernel; nothing is
    written. Pass `allow_ineligible=True` to write it anyway.

    Attributes:
        reasons: The linter's reasons, one string each.
        target: The refused target (`"xnnpack"`, `"sparse-fc"`, ...).
    """

    def __init__(self, message, reasons=(), target="xnnpack"):
        super().__init__(message)
        self.reasons = list(reasons)
        self.target = target

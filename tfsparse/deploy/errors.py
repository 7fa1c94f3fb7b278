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
    """Target `xnnpack` refused: XNNPACK's sparse path will not fire for the file.

    Raised by `export(..., target="xnnpack")` when `tfsparse.xnnpack.lint`
    predicts that the converted model runs dense; nothing is written. Pass
    `allow_ineligible=True` to write it anyway.

    Attributes:
        reasons: The linter's reasons, one string each.
    """

    def __init__(self, message, reasons=()):
        super().__init__(message)
        self.reasons = list(reasons)

"""Errors raised by `tfsparse.deploy`.

Both derive from `ValueError`, so code that already catches Keras-style
`ValueError`s keeps working; catch these for export-specific handling.

Example:

>>> from tfsparse.deploy import ExportError, VerificationError
>>> issubclass(ExportError, ValueError), issubclass(VerificationError, ExportError)
(True, True)
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

"""Turning raw image arrays into model inputs: float32 in [0, 1], NHWC.

Example:

>>> import numpy as np
>>> from tfsparse.data.preprocess import to_images
>>> x = np.full((2, 28, 28), 255, dtype=np.uint8)
>>> out = to_images(x, image_size=32, channels=3)
>>> out.shape, out.dtype, float(out.max()), float(out[0, 0, 0, 0])
((2, 32, 32, 3), dtype('float32'), 1.0, 0.0)
"""

from __future__ import annotations

import numpy as np


def _positive_int(value, argument, meaning):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Expected a positive "
            f"integer ({meaning}) or None. Received: {argument}={value!r}"
        )


def _scale(x, name) -> tuple:
    """Returns (array, divisor) such that array / divisor lies in [0, 1]."""
    if x.dtype == np.uint8:
        return x, np.float32(255)
    if x.size and not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"Dataset {name!r} has samples of dtype {x.dtype}; expected numbers.")
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if np.issubdtype(x.dtype, np.integer) and low >= 0 and high <= 255:
        return x, np.float32(255)
    if np.issubdtype(x.dtype, np.floating) and 0 <= low and high <= 1:
        return x, np.float32(1)
    raise ValueError(
        f"Dataset {name!r} has sample values in [{low}, {high}] ({x.dtype}); expected "
        "uint8 (0-255) or floats in [0, 1]. Scale the images before saving them "
        "(e.g. x / 255.0) or save them as uint8."
    )


def to_images(x, *, image_size=None, channels=None, name="data") -> np.ndarray:
    """Converts samples to float32 in [0, 1] with a channel axis.

    `(N, H, W)` gets a channel axis; `(N, H, W, C)` is kept; `(N, D)` feature
    vectors are only scaled. uint8 (and integer arrays within 0-255) are
    divided by 255; floats must already lie in [0, 1].

    Args:
        x: The samples.
        image_size: Zero-pad height and width to this size, centred (28 -> 32
            adds 2 rows and columns on each side); `None` keeps the size.
            Defaults to `None`.
        channels: Replicate a single (grayscale) channel to this many
            channels; `None` keeps them. Defaults to `None`.
        name: Dataset name used in error messages. Defaults to `"data"`.

    Returns:
        A new float32 array.

    Raises:
        ValueError: for values outside those ranges, images larger than
            `image_size`, or `channels` that cannot be made from the source.

    Example:

    >>> import numpy as np
    >>> from tfsparse.data.preprocess import to_images
    >>> to_images(np.zeros((5, 8, 8), np.uint8), channels=3).shape
    (5, 8, 8, 3)
    """
    _positive_int(image_size, "image_size", "the padded image height and width")
    _positive_int(channels, "channels", "1 or 3, to replicate grayscale")
    x = np.asarray(x)
    x, divisor = _scale(x, name)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        if image_size is not None or channels is not None or x.ndim != 2:
            raise ValueError(
                f"Dataset {name!r} has samples of shape {x.shape[1:]}; image_size and "
                "channels need images shaped (N, H, W) or (N, H, W, C). Leave "
                "them unset for other data."
            )
        return np.divide(x, divisor, dtype=np.float32)
    n, height, width, source_channels = x.shape
    size = image_size or max(height, width)
    if image_size is not None and (height > image_size or width > image_size):
        raise ValueError(
            "Invalid value received for argument `image_size`. Expected at least "
            f"the source image size {height}x{width} of dataset {name!r} (images are "
            "zero-padded, never cropped or resized); pass "
            f"image_size={max(height, width)} or more, or leave it unset. "
            f"Received: image_size={image_size}"
        )
    out_channels = channels or source_channels
    if out_channels != source_channels and source_channels != 1:
        raise ValueError(
            "Invalid value received for argument `channels`. Only a single "
            f"(grayscale) channel can be replicated; dataset {name!r} has "
            f"{source_channels} channels. Pass channels={source_channels} or "
            f"leave it unset. Received: channels={channels}"
        )
    out_height = size if image_size is not None else height
    out_width = size if image_size is not None else width
    out = np.zeros((n, out_height, out_width, out_channels), np.float32)
    top, left = (out_height - height) // 2, (out_width - width) // 2
    window = out[:, top:top + height, left:left + width, :]
    np.divide(np.broadcast_to(x, (n, height, width, out_channels)), divisor, out=window, dtype=np.float32,
              casting="unsafe")
    return out

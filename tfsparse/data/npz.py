"""Datasets saved as `.npz` files with keys x_train, y_train, x_test, y_test.

Images may be uint8 (0-255) or floats in [0, 1], shaped `(N, H, W)` or
`(N, H, W, C)`; labels are integers from 0. An optional `num_classes` entry
sets the class count (otherwise the largest label plus one). Pickled objects
are never loaded.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from tfsparse.data.npz import load_npz
>>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
>>> x, y = np.zeros((6, 4, 4), np.uint8), np.array([0, 1, 2, 0, 1, 2])
>>> np.savez(path, x_train=x, y_train=y, x_test=x[:3], y_test=y[:3])
>>> raw = load_npz(path)
>>> raw.name, raw.num_classes, raw.x_train.shape
('toy', 3, (6, 4, 4))
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from tfsparse.data.dataset import Dataset

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _invalid(path, problem) -> ValueError:
    return ValueError(
        f"Invalid value received for argument `name_or_path`. Expected a .npz file "
        f"with arrays {', '.join(KEYS)} (np.savez(path, x_train=..., y_train=..., "
        f"x_test=..., y_test=...)); {problem} Received: name_or_path={path}"
    )


def _labels(path, key, labels, count) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    integral = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)))
    if labels.ndim != 1 or not integral or (labels.size and labels.min() < 0):
        raise _invalid(path, f"{key} must hold non-negative integer class labels of shape (N,); it has "
                             f"dtype {labels.dtype} and shape {labels.shape}.")
    if len(labels) != count:
        raise _invalid(path, f"{key} has {len(labels)} labels for {count} samples.")
    return labels.astype(np.int32)


def load_npz(path) -> Dataset:
    """Reads a `.npz` dataset; returns its raw arrays.

    Args:
        path: The `.npz` file.

    Returns:
        A `Dataset` named after the file, samples as stored, int32 labels.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not a readable `.npz`, misses keys, or its
            arrays do not fit together.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from tfsparse.data.npz import load_npz
    >>> path = os.path.join(tempfile.mkdtemp(), "bad.npz")
    >>> np.savez(path, x_train=np.zeros((2, 3)))
    >>> load_npz(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Invalid value received for argument `name_or_path`. ... missing y_train, x_test, y_test ...
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Dataset file {path} does not exist. Check the path, or use a dataset name "
                                "such as 'fashion_mnist' or 'digits'.")
    if not zipfile.is_zipfile(path):
        raise _invalid(path, "the file is not a valid .npz archive (corrupt or another format).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in KEYS if key not in archive.files]
            if missing:
                raise _invalid(path, f"missing {', '.join(missing)} (found: {', '.join(archive.files) or 'nothing'}).")
            arrays = {key: archive[key] for key in KEYS}
            num_classes = int(archive["num_classes"]) if "num_classes" in archive.files else None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, TypeError) as error:
        raise _invalid(path, f"reading it failed ({type(error).__name__}: {error}); the file is corrupt.") from error
    except ValueError as error:
        if str(error).startswith("Invalid value received"):
            raise
        raise _invalid(path, f"reading it failed ({error}).") from error
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if x_train.ndim < 2 or x_train.shape[1:] != x_test.shape[1:]:
        raise _invalid(path, f"x_train {x_train.shape} and x_test {x_test.shape} must be (N, ...) arrays with the "
                             "same sample shape.")
    y_train = _labels(path, "y_train", arrays["y_train"], len(x_train))
    y_test = _labels(path, "y_test", arrays["y_test"], len(x_test))
    largest = max(int(y_train.max(initial=-1)), int(y_test.max(initial=-1)))
    if num_classes is None:
        num_classes = largest + 1
    elif num_classes <= largest:
        raise _invalid(path, f"num_classes={num_classes} but the labels go up to {largest}.")
    name = os.path.splitext(os.path.basename(path))[0]
    return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, num_classes=num_classes, name=name)

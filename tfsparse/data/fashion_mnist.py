"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (offline).

The package installs the standard gzipped IDX files under
`/usr/share/datasets/fashion-mnist/`. Another directory with the same files
(gzipped or not) can be used through `data_dir` or the environment variable
`TFSPARSE_FASHION_MNIST_DIR`. Nothing is ever downloaded.

Example:

>>> from tfsparse.data.fashion_mnist import load_fashion_mnist
>>> raw = load_fashion_mnist()
>>> raw.x_train.shape, raw.x_train.dtype, raw.num_classes
((60000, 28, 28), dtype('uint8'), 10)
"""

from __future__ import annotations

import os

import numpy as np

from tfsparse.data.dataset import Dataset
from tfsparse.data.idx import read_idx

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "TFSPARSE_FASHION_MNIST_DIR"
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NUM_CLASSES = 10
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")


def fashion_mnist_dir(data_dir=None) -> str:
    """The directory used: `data_dir`, else `$TFSPARSE_FASHION_MNIST_DIR`, else the Debian one."""
    return os.fspath(data_dir or os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _find(directory, stem) -> str:
    for candidate in (f"{stem}.gz", stem):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}.gz not found in {directory}. Install the dataset "
        "with `apt-get install -y dataset-fashion-mnist` (or run `bash tools/setup.sh`), "
        f"or point the argument data_dir / the environment variable {ENV_VAR} at a "
        f"directory holding {', '.join(f + '.gz' for f in FILES.values())}."
    )


def _check(path, array, ndim) -> None:
    if array.ndim != ndim or array.dtype != np.uint8:
        raise ValueError(
            f"Fashion-MNIST file {path} holds a {array.dtype} array of shape {array.shape}; "
            f"expected {ndim} dimension(s) of uint8. Reinstall the dataset "
            "(`apt-get install --reinstall -y dataset-fashion-mnist`)."
        )


def load_fashion_mnist(data_dir=None) -> Dataset:
    """Reads the four IDX files; returns uint8 images `(N, 28, 28)` and labels.

    Args:
        data_dir: Directory of the IDX files; `None` uses
            `$TFSPARSE_FASHION_MNIST_DIR` or `/usr/share/datasets/fashion-mnist`.
            Defaults to `None`.

    Returns:
        A `Dataset` of the raw arrays (uint8 images, int32 labels).

    Raises:
        FileNotFoundError: if a file is missing (the message says how to
            install the dataset).
        ValueError: if a file is corrupt or the files do not match.

    Example:

    >>> from tfsparse.data.fashion_mnist import load_fashion_mnist
    >>> sorted(set(load_fashion_mnist().y_test.tolist()))
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    directory = fashion_mnist_dir(data_dir)
    arrays = {}
    for key, stem in FILES.items():
        path = _find(directory, stem)
        arrays[key] = read_idx(path)
        _check(path, arrays[key], 3 if key.startswith("x") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels) or (labels.size and labels.max() >= NUM_CLASSES):
            raise ValueError(
                f"Fashion-MNIST {split} files in {directory} do not match: {len(images)} images, "
                f"{len(labels)} labels (max {labels.max() if labels.size else '-'}); expected equal "
                f"counts and labels below {NUM_CLASSES}. Reinstall the dataset "
                "(`apt-get install --reinstall -y dataset-fashion-mnist`)."
            )
        arrays[f"y_{split}"] = labels.astype(np.int32)
    return Dataset(**arrays, num_classes=NUM_CLASSES, name="fashion_mnist")

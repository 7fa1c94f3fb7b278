"""`load`: a dataset by name or `.npz` path, ready for `model.fit`.

Example:

>>> from tfsparse import data
>>> dataset = data.load("digits", image_size=10, channels=3, limit=100)
>>> print(dataset)
digits: 100 train / 360 test samples of shape (10, 10, 3) float32, 10 classes
"""

from __future__ import annotations

import dataclasses
import difflib
import os

from tfsparse.data.dataset import Dataset
from tfsparse.data.digits import load_digits
from tfsparse.data.fashion_mnist import load_fashion_mnist
from tfsparse.data.npz import load_npz
from tfsparse.data.preprocess import to_images
from tfsparse.data.subset import balanced_indices

#: Dataset name -> loader of its raw arrays.
DATASETS = {"fashion_mnist": load_fashion_mnist, "digits": load_digits}


def _raw(name_or_path, data_dir) -> Dataset:
    if not isinstance(name_or_path, (str, os.PathLike)) or not os.fspath(name_or_path):
        raise ValueError(
            "Invalid value received for argument `name_or_path`. Expected a dataset "
            f"name ({', '.join(DATASETS)}) or a .npz path. Received: name_or_path={name_or_path!r}"
        )
    text = os.fspath(name_or_path)
    key = text.lower().replace("-", "_")
    if key in DATASETS:
        if data_dir is not None and key != "fashion_mnist":
            raise ValueError(
                "Invalid value received for argument `data_dir`. Only 'fashion_mnist' "
                f"reads from a directory; leave data_dir unset for {key!r}. Received: data_dir={data_dir!r}"
            )
        return DATASETS[key](data_dir) if key == "fashion_mnist" else DATASETS[key]()
    if os.path.isdir(text):
        raise ValueError(
            "Invalid value received for argument `name_or_path`. Expected a dataset name "
            f"({', '.join(DATASETS)}) or a .npz file, but {text} is a directory. Received: name_or_path={text!r}"
        )
    if text.endswith(".npz") or os.path.isfile(text):
        return load_npz(text)
    close = difflib.get_close_matches(key, list(DATASETS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        "Invalid value received for argument `name_or_path`. Expected a dataset name "
        f"({', '.join(DATASETS)}) or the path of a .npz file with x_train, y_train, "
        f"x_test, y_test.{hint} Received: name_or_path={text!r}"
    )


def _check_not_empty(raw, name_or_path) -> None:
    empty = [key for key in ("x_train", "x_test") if len(getattr(raw, key)) == 0]
    if empty:
        raise ValueError(
            f"Invalid value received for argument `name_or_path`. Expected samples in x_train and x_test; "
            f"{' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty, so training or its accuracy would "
            f"mean nothing. Received: name_or_path={os.fspath(name_or_path)!r}"
        )


def load(name_or_path, *, image_size=None, channels=None, limit=None, seed=0, data_dir=None) -> Dataset:
    """Loads a dataset as float32 NHWC arrays in [0, 1] with int32 labels.

    Never downloads anything: `"fashion_mnist"` reads the Debian package
    `dataset-fashion-mnist`, `"digits"` comes with scikit-learn, and a
    `.npz` file is read as saved.

    Args:
        name_or_path: `"fashion_mnist"`, `"digits"` or a `.npz` path (keys
            x_train, y_train, x_test, y_test).
        image_size: Zero-pad images (centred) to this height and width,
            e.g. 32 for 28x28 Fashion-MNIST on a 32x32 model. Must not be
            smaller than the source. Defaults to `None` (keep the size).
        channels: Replicate grayscale to this many channels (3 for RGB
            models). Defaults to `None` (keep them).
        limit: Keep only this many training samples, a seeded subset with
            the classes as balanced as possible; the test split is kept
            whole. Defaults to `None` (all).
        seed: Seed of the `limit` subset. Defaults to `0`.
        data_dir: Directory of the Fashion-MNIST IDX files, overriding
            `$TFSPARSE_FASHION_MNIST_DIR` and the Debian location. Defaults
            to `None`.

    Returns:
        A `Dataset`.

    Raises:
        ValueError: for an unknown name, bad arguments or a bad file.
        FileNotFoundError: if the files are not there (the message says how
            to install them).
        ImportError: if `"digits"` is asked for without scikit-learn.

    Example:

    >>> from tfsparse import data
    >>> data.load("digits").x_train.shape
    (1437, 8, 8, 1)
    """
    raw = _raw(name_or_path, data_dir)
    _check_not_empty(raw, name_or_path)
    x_train, y_train = raw.x_train, raw.y_train
    if limit is not None:
        keep = balanced_indices(y_train, limit, seed=seed)
        x_train, y_train = x_train[keep], y_train[keep]
    return dataclasses.replace(
        raw,
        x_train=to_images(x_train, image_size=image_size, channels=channels, name=raw.name),
        y_train=y_train,
        x_test=to_images(raw.x_test, image_size=image_size, channels=channels, name=raw.name),
    )

"""Datasets as numpy arrays, offline: Fashion-MNIST, 8x8 digits, `.npz` files.

`load` returns a `Dataset` of float32 NHWC images in [0, 1] and int32 labels,
optionally zero-padded (`image_size`), with grayscale replicated
(`channels`) and a balanced training subset (`limit`). `check_fits` says
whether a dataset fits a model, and how to make it fit.

Example:

>>> from tfsparse import data
>>> dataset = data.load("digits", limit=50)
>>> len(dataset.x_train), dataset.num_classes
(50, 10)
"""

from tfsparse.data.dataset import Dataset
from tfsparse.data.fit import check_fits
from tfsparse.data.idx import read_idx, write_idx
from tfsparse.data.loader import DATASETS, load

__all__ = ["DATASETS", "Dataset", "check_fits", "load", "read_idx", "write_idx"]

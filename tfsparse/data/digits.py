"""The 8x8 handwritten digits of scikit-learn (1,797 images, for fast runs).

The split is fixed (stratified, 80/20, `random_state=0`), so every run and
every machine sees the same test set.

Example:

>>> from tfsparse.data.digits import load_digits
>>> raw = load_digits()
>>> raw.x_train.shape, raw.x_test.shape, raw.num_classes
((1437, 8, 8), (360, 8, 8), 10)
"""

from __future__ import annotations

import numpy as np

from tfsparse.data.dataset import Dataset

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load_digits() -> Dataset:
    """Returns the digits as float32 images `(N, 8, 8)` in [0, 1] and labels.

    Returns:
        A `Dataset` of the raw arrays.

    Raises:
        ImportError: if scikit-learn is not installed (the message names
            `pip install scikit-learn`).

    Example:

    >>> from tfsparse.data.digits import load_digits
    >>> float(load_digits().x_train.max())
    1.0
    """
    try:
        from sklearn import datasets, model_selection
    except ImportError as error:
        raise ImportError(
            "The 'digits' dataset needs scikit-learn, which is not installed. "
            "Install it with `pip install scikit-learn` (or `pip install tfsparse[data]`)."
        ) from error
    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # pixel values are 0..16
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        images, digits.target.astype(np.int32), test_size=TEST_FRACTION, stratify=digits.target,
        random_state=SPLIT_SEED,
    )
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, num_classes=num_classes,
                   name="digits")

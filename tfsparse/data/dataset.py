"""`Dataset`: train and test arrays with their class count.

Example:

>>> import numpy as np
>>> from tfsparse.data import Dataset
>>> x, y = np.zeros((4, 8, 8, 1), "float32"), np.array([0, 1, 2, 1], "int32")
>>> print(Dataset(x_train=x, y_train=y, x_test=x[:2], y_test=y[:2], num_classes=3, name="toy"))
toy: 4 train / 2 test samples of shape (8, 8, 1) float32, 3 classes
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, repr=False)
class Dataset:
    """Images (NHWC float32 in [0, 1]) and integer labels, split in two.

    Use `dataclasses.replace` to derive a changed copy.

    Attributes:
        x_train: Training samples, shape `(N, *sample_shape)`.
        y_train: Training labels, int32 in `[0, num_classes)`, shape `(N,)`.
        x_test: Test samples, shape `(M, *sample_shape)`.
        y_test: Test labels, shape `(M,)`.
        num_classes: Number of classes.
        name: Dataset name (or the `.npz` file name).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str

    @property
    def sample_shape(self) -> tuple:
        """The shape of one sample, e.g. `(28, 28, 1)`."""
        return tuple(self.x_train.shape[1:])

    def __str__(self):
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test samples of shape "
            f"{self.sample_shape} {self.x_train.dtype}, {self.num_classes} classes"
        )

    def __repr__(self):
        return f"<Dataset {self}>"

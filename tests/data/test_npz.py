"""`.npz` datasets: the happy paths and every error a user can make."""

import numpy as np
import pytest

from tfsparse import data


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 6, 6), dtype=np.uint8), np.arange(20) % 4


def test_uint8_images(tmp_path, images):
    x, y = images
    path = _save(tmp_path / "shapes.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    dataset = data.load(str(path), image_size=8, channels=3)
    assert dataset.name == "shapes" and dataset.num_classes == 4
    assert dataset.x_train.shape == (20, 8, 8, 3) and dataset.y_train.dtype == np.int32
    np.testing.assert_allclose(dataset.x_train[:, 1:7, 1:7, 2], x / 255.0, rtol=1e-6)


def test_pathlike_float_images_column_labels_and_num_classes(tmp_path, images):
    x, y = images
    x = (x / 255.0).astype(np.float64)[..., None]
    path = _save(tmp_path / "f.npz", x_train=x, y_train=y[:, None].astype(np.float32), x_test=x, y_test=y[:, None],
                 num_classes=7)
    dataset = data.load(path)
    assert dataset.num_classes == 7 and dataset.y_train.shape == (20,) and dataset.y_train.tolist() == y.tolist()
    assert dataset.x_train.dtype == np.float32 and dataset.x_train.shape == (20, 6, 6, 1)


def test_feature_vectors_are_kept_flat(tmp_path):
    x = np.linspace(0, 1, 30).reshape(10, 3)
    path = _save(tmp_path / "v.npz", x_train=x, y_train=np.arange(10) % 2, x_test=x, y_test=np.arange(10) % 2)
    assert data.load(path).x_train.shape == (10, 3)
    with pytest.raises(ValueError, match="need images shaped"):
        data.load(path, channels=3)


def test_missing_keys_are_named(tmp_path, images):
    x, y = images
    path = _save(tmp_path / "m.npz", x_train=x, labels=y)
    with pytest.raises(ValueError, match=r"missing y_train, x_test, y_test \(found: x_train, labels\)"):
        data.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load(str(tmp_path / "nope.npz"))


@pytest.mark.parametrize("cut", [None, 300])
def test_corrupt_file(tmp_path, images, cut):
    x, y = images
    path = _save(tmp_path / "c.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    content = path.read_bytes()
    if cut is None:  # flip data bytes inside the archive: the CRC check fails
        content = content[:200] + bytes(b ^ 0xFF for b in content[200:260]) + content[260:]
    else:
        content = content[:cut]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="corrupt"):
        data.load(path)


def test_text_file_named_npz(tmp_path):
    path = tmp_path / "t.npz"
    path.write_text("x_train,y_train\n")
    with pytest.raises(ValueError, match="not a valid .npz archive"):
        data.load(path)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"y_train": np.arange(19)}, "y_train has 19 labels for 20 samples"),
        ({"y_test": np.full(20, 0.5)}, "y_test must hold non-negative integer class labels"),
        ({"y_test": -np.ones(20, int)}, "non-negative"),
        ({"x_test": np.zeros((20, 5, 5), np.uint8)}, "same sample shape"),
        ({"num_classes": 3}, "num_classes=3 but the labels go up to 3"),
        ({"x_train": np.linspace(0, 2, 720).reshape(20, 6, 6)}, r"values in \[0.0, 2.0\].*x / 255.0"),
        ({"x_train": np.zeros((20, 6, 6), object)}, "reading it failed"),
    ],
)
def test_arrays_that_do_not_fit_together(tmp_path, images, change, problem):
    x, y = images
    arrays = {"x_train": x, "y_train": y, "x_test": x, "y_test": y, **change}
    with pytest.raises(ValueError, match=problem):
        data.load(_save(tmp_path / "bad.npz", **arrays))

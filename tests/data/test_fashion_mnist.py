"""Fashion-MNIST: synthetic IDX directories and the installed Debian package."""

import os

import numpy as np
import pytest

from tfsparse import data
from tfsparse.data import fashion_mnist
from tfsparse.data.idx import write_idx

INSTALLED = all(os.path.isfile(os.path.join(fashion_mnist.DEFAULT_DIR, f"{stem}.gz"))
                for stem in fashion_mnist.FILES.values())
needs_package = pytest.mark.skipif(not INSTALLED, reason="apt-get install -y dataset-fashion-mnist")


def _fake_dir(directory, *, train=12, test=6, gz=True, corrupt=None):
    directory.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(test) % 10).astype(np.uint8),
    }
    arrays.update(corrupt or {})
    for key, stem in fashion_mnist.FILES.items():
        write_idx(directory / (f"{stem}.gz" if gz else stem), arrays[key])
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_reads_a_directory_given_as_argument(tmp_path, gz):
    arrays = _fake_dir(tmp_path / "fm", gz=gz)
    dataset = data.load("fashion_mnist", data_dir=tmp_path / "fm")
    assert dataset.x_train.shape == (12, 28, 28, 1) and dataset.x_test.shape == (6, 28, 28, 1)
    np.testing.assert_allclose(dataset.x_train[..., 0], arrays["x_train"] / 255.0, rtol=1e-6)
    assert dataset.y_train.dtype == np.int32 and dataset.y_train.tolist() == arrays["y_train"].tolist()
    assert dataset.num_classes == 10 and dataset.name == "fashion_mnist"


def test_environment_variable_overrides_the_directory(tmp_path, monkeypatch):
    _fake_dir(tmp_path / "fm", train=3, test=2)
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "fm"))
    assert len(data.load("fashion_mnist").x_train) == 3
    _fake_dir(tmp_path / "arg", train=5, test=2)
    assert len(data.load("fashion_mnist", data_dir=tmp_path / "arg").x_train) == 5  # the argument wins


def test_missing_files_name_the_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as error:
        data.load("fashion_mnist")
    message = str(error.value)
    for part in ("apt-get install -y dataset-fashion-mnist", "tools/setup.sh", fashion_mnist.ENV_VAR,
                 str(tmp_path / "empty"), "train-images-idx3-ubyte.gz"):
        assert part in message


@pytest.mark.parametrize(
    "corrupt, problem",
    [
        ({"y_train": np.arange(11, dtype=np.uint8)}, "train files .* do not match: 12 images, 11 labels"),
        ({"y_test": np.full(6, 10, np.uint8)}, "labels below 10"),
        ({"x_test": np.zeros((6, 784), np.uint8)}, r"expected 3 dimension\(s\) of uint8"),
        ({"x_train": np.zeros((12, 28, 28), np.float32)}, r"expected 3 dimension\(s\) of uint8"),
    ],
)
def test_inconsistent_files_are_rejected(tmp_path, corrupt, problem):
    _fake_dir(tmp_path / "fm", corrupt=corrupt)
    with pytest.raises(ValueError, match=problem):
        data.load("fashion_mnist", data_dir=tmp_path / "fm")


@pytest.fixture(scope="module")
def real():
    return fashion_mnist.load_fashion_mnist(fashion_mnist.DEFAULT_DIR)


@needs_package
def test_real_fashion_mnist(real):
    assert real.x_train.shape == (60000, 28, 28) and real.x_test.shape == (10000, 28, 28)
    assert real.x_train.dtype == np.uint8 and real.x_train.max() == 255
    assert np.bincount(real.y_train).tolist() == [6000] * 10
    assert np.bincount(real.y_test).tolist() == [1000] * 10


@needs_package
def test_real_fashion_mnist_padded_for_an_rgb_32x32_model():
    dataset = data.load("fashion_mnist", image_size=32, channels=3, limit=1000, seed=0,
                        data_dir=fashion_mnist.DEFAULT_DIR)
    assert dataset.x_train.shape == (1000, 32, 32, 3) and dataset.x_test.shape == (10000, 32, 32, 3)
    assert dataset.num_classes == 10 and dataset.name == "fashion_mnist" and dataset.y_test.dtype == np.int32
    assert dataset.x_train.dtype == np.float32 and 0.0 <= dataset.x_train.min() and dataset.x_train.max() <= 1.0
    assert np.bincount(dataset.y_train).tolist() == [100] * 10
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not dataset.x_test[:, border].any()  # the 2-pixel frame is zero padding
    np.testing.assert_array_equal(dataset.x_test[..., 0], dataset.x_test[..., 2])

"""Shared fixtures of the tfsparse-moe tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts with default Keras settings, fresh layer names and seed 0."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def tokens():
    """32 sequences of 5 tokens of width 8."""
    return np.random.default_rng(0).normal(size=(32, 5, 8)).astype("float32")


@pytest.fixture(scope="session")
def vader_archive():
    """The path of the vaderSentiment archive, or a skip (locally) / failure (under CI) when setup did not run."""
    from tfsparse_moe.vader import archive_path

    path = archive_path()
    if not os.path.isfile(path):
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the sentiment data ({path}); tools/setup.sh downloads it")
        pytest.skip(f"sentiment data not downloaded ({path}); run `bash tools/setup.sh`")
    return path

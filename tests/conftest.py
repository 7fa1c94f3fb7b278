"""Shared fixtures and the `tensorflow_only` marker. TensorFlow's C++ logging is quietened for readable output.

`@pytest.mark.tensorflow_only("why")` marks a test that can only run on the
TensorFlow backend (`tf.GradientTape` on model variables, `tf.distribute`, a
feature tfsparse offers only there); on another `KERAS_BACKEND` it is skipped
with the reason "TensorFlow-only: why". The reason is required.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    for item in items:
        marker = item.get_closest_marker("tensorflow_only")
        if marker is not None:
            if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0]:
                raise pytest.UsageError(f"{item.nodeid}: write @pytest.mark.tensorflow_only(\"why\"), with the reason")
            if backend != "tensorflow":
                item.add_marker(pytest.mark.skip(reason=f"TensorFlow-only: {marker.args[0]}"))
        if backend == "torch":  # torch.compile (jit_compile=True) imports torch modules that use a deprecated torch API
            item.add_marker(pytest.mark.filterwarnings(
                r"ignore:`torch\.jit\.script_method` is deprecated:DeprecationWarning"))


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts with default Keras settings and fresh layer names."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def mlp():
    """A small compiled-able MLP: 16 inputs, 3 classes (logits)."""
    return keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )


@pytest.fixture
def classification_data():
    """256 samples of 16 features with 3 learnable classes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype("float32")
    y = (x[:, :3].argmax(axis=1)).astype("int32")
    return x, y


@pytest.fixture(scope="session")
def emulator_ready():
    """The ready emulated aarch64 runtime, or a skip (locally) / failure (under CI).

    Slow tests need it. Locally they are skipped, with the reason, when it is
    not set up; under CI (`$CI` set) they must run, because `tools/setup.sh`
    builds it, so a missing emulator fails them.
    """
    from tfsparse.emulator import status

    state = status()
    if not state.ready:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the emulated tests but the emulator is not ready: {state.reason}")
        pytest.skip(f"emulated aarch64 runtime not set up ({state.reason})")
    return state


@pytest.fixture(scope="session")
def tiny_tflite_bytes():
    """Two small valid `.tflite` flatbuffers (different), for tests whose runner never loads them."""
    import tensorflow as tf

    contents = []
    for units in (2, 3):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)])
        function = tf.function(model, input_signature=[tf.TensorSpec((1, 4), tf.float32)])
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], model)
        contents.append(converter.convert())
    return contents

import textwrap

import pytest

from tfsparse.cli.main import main


@pytest.fixture
def cli(capsys):
    """Runs `tfsparse ARGS...` in-process; returns (exit status, stdout, stderr)."""

    def run(*args):
        status = main(["tfsparse", *map(str, args)])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def builder_file(tmp_path):
    """A `FILE.py:FUNCTION` model source: a tiny CNN for 8x8x1 digits."""
    path = tmp_path / "tiny_cnn.py"
    path.write_text(textwrap.dedent(
        """
        import keras

        def tiny_cnn(input_shape=(8, 8, 1), num_classes=10):
            inputs = keras.Input(input_shape)
            x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
            x = keras.layers.Conv2D(32, 1, activation="relu", name="pw")(x)
            x = keras.layers.Flatten()(x)
            return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
        """
    ))
    return f"{path}:tiny_cnn"

"""Bad input to `tfsparse export` and `tfsparse inspect`: one-line errors, nothing written."""

import keras
import numpy as np
import pytest


@pytest.fixture
def tiny_files(tmp_path):
    """A tiny `.keras` (8x8x1 inputs) and a matching `.npz` dataset."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    model.save(tmp_path / "tiny.keras")
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 1)).astype("float32"), rng.integers(0, 4, 40)
    np.savez(tmp_path / "data.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    return tmp_path / "tiny.keras", tmp_path / "data.npz"


@pytest.mark.parametrize("samples", ["0", "-3"])
def test_export_refuses_a_non_positive_sample_count(cli, tiny_files, tmp_path, samples):
    model, data = tiny_files
    output = tmp_path / "q.tflite"
    status, _, err = cli("export", f"--model={model}", f"--output={output}", "--target=int8",
                         f"--representative_data={data}", f"--samples={samples}")
    assert status == 1
    assert "samples" in err and "Expected a positive integer (how many representative samples to use)" in err
    assert "limit" not in err  # it used to name an internal argument of the data loader
    assert len(err.strip().splitlines()) == 1 and not output.exists()


@pytest.mark.parametrize("kind", ["truncated", "text"])
def test_inspect_of_a_truncated_or_garbage_tflite_is_a_one_line_error(cli, tiny_files, tmp_path, kind):
    model, _ = tiny_files
    good = tmp_path / "good.tflite"
    status, _, err = cli("export", f"--model={model}", f"--output={good}", "--target=dense")
    assert status == 0, err
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(good.read_bytes()[:100] if kind == "truncated" else b"not a model, just text\n" * 10)
    status, out, err = cli("inspect", bad)  # a truncated file used to end in a struct.error traceback
    assert status == 1 and not out
    assert f"{bad} is not a valid .tflite flatbuffer (truncated or corrupt?)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("kind, message", [("missing", "does not exist"), ("folder", "is a directory")])
def test_inspect_of_a_missing_tflite_or_a_folder_says_which(cli, tmp_path, kind, message):
    path = tmp_path / "model.tflite"
    if kind == "folder":
        path.mkdir()
    status, _, err = cli("inspect", path)  # it used to say only "Expected an existing `.tflite` file"
    assert status == 1 and f"{path} {message}" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("nm", ["5:4", "0:4"])
def test_inspect_with_an_impossible_nm_names_the_flag(cli, tiny_files, nm):
    model, _ = tiny_files
    status, _, err = cli("inspect", model, f"--nm={nm}")  # it used to name parse_nm's arguments `n` and `m`
    assert status == 1 and "flag --nm" in err and "argument `n`" not in err
    assert "Expected 1 <= n < m" in err and len(err.strip().splitlines()) == 1

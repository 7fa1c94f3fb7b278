"""`tfsparse compatible`: rewrite a .keras or .h5 model for XNNPACK's sparse path, report, never touch the input."""

import json

import keras
import numpy as np
import pytest

L = keras.layers


@pytest.fixture
def applications_file(tmp_path):
    """A small model with Keras Applications' asymmetric stride-2 padding, saved as .keras and .h5."""
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", name="stem")(inputs)
    x = L.DepthwiseConv2D(3, strides=2, name="dw")(L.ZeroPadding2D(((0, 1), (0, 1)), name="dw_pad")(x))
    x = L.GlobalAveragePooling2D()(L.Conv2D(16, 1, name="pw")(x))
    model = keras.Model(inputs, L.Dense(3)(x))
    path = tmp_path / "model.keras"
    model.save(path)
    model.save(tmp_path / "model.h5")
    return path


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_rewrites_reports_and_writes_the_model(cli, applications_file, tmp_path, suffix):
    source = applications_file.with_suffix(suffix)
    before = source.read_bytes()
    output = tmp_path / "out" / "compatible.keras"
    output.parent.mkdir()
    status, out, err = cli("compatible", f"--model={source}", f"--output={output}")
    assert status == 0, err
    assert "2 layer(s) rewritten" in out and "stem: padding (0, 1, 0, 1) -> (1, 1, 1, 1)" in out
    assert "ZeroPadding2D 'dw_pad' now pads (1, 1, 1, 1)" in out
    assert "before does not fire; after fires" in out and "fine-tune" in out
    assert source.read_bytes() == before
    model = keras.models.load_model(output)
    assert model.get_layer("dw_pad").padding == ((1, 1), (1, 1)) and model.get_layer("stem").padding == "valid"
    assert [p.name for p in output.parent.iterdir()] == ["compatible.keras"]  # no temporary file left


def test_json_output(cli, applications_file, tmp_path):
    status, out, _ = cli("compatible", f"--model={applications_file}", f"--output={tmp_path / 'c.keras'}", "--json")
    data = json.loads(out)
    assert status == 0 and [c["layer"] for c in data["report"]["changes"]] == ["stem", "dw"]
    assert data["before"]["fires"] is False and data["after"]["fires"] is True


@pytest.mark.parametrize("output, message", [
    ("c.tflite", "Expected a path ending in .keras"),
    ("model.keras", "the input model is never replaced"),
])
def test_bad_outputs_are_refused_before_loading(cli, applications_file, tmp_path, output, message):
    before = applications_file.read_bytes()
    status, _, err = cli("compatible", f"--model={applications_file}", f"--output={tmp_path / output}")
    assert status == 1 and message in err and "--output" in err
    assert applications_file.read_bytes() == before


def test_an_existing_output_needs_overwrite(cli, applications_file, tmp_path):
    existing = tmp_path / "c.keras"
    existing.write_bytes(b"keep me")
    status, _, err = cli("compatible", f"--model={applications_file}", f"--output={existing}")
    assert status == 1 and "--overwrite" in err and existing.read_bytes() == b"keep me"
    status, _, _ = cli("compatible", f"--model={applications_file}", f"--output={existing}", "--overwrite")
    assert status == 0 and keras.models.load_model(existing).get_layer("stem").padding == "valid"


def test_a_missing_or_corrupt_h5_is_a_clear_error(cli, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    for source in (tmp_path / "missing.h5", bad):
        status, _, err = cli("compatible", f"--model={source}", f"--output={tmp_path / 'c.keras'}")
        assert status == 1 and "Invalid value received for flag --model" in err
    assert not (tmp_path / "c.keras").exists()


def test_the_written_model_computes_what_make_compatible_returns(cli, applications_file, tmp_path):
    import warnings

    import tfsparse

    output = tmp_path / "c.keras"
    assert cli("compatible", f"--model={applications_file}", f"--output={output}")[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = tfsparse.xnnpack.make_compatible(keras.models.load_model(applications_file))
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(keras.models.load_model(output)(x), expected(x), rtol=1e-6, atol=1e-6)

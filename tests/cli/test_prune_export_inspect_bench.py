"""The shell workflow: prune -> inspect -> export -> inspect -> bench."""

import json
import os

import pytest


@pytest.fixture
def pruned_dir(cli, builder_file, tmp_path):
    out = tmp_path / "run"
    status, stdout, stderr = cli(
        "prune", f"--model={builder_file}", "--strategy=gmp", "--target_sparsity=0.8", "--data=digits",
        "--epochs=3", "--batch_size=64", "--strategy_args=scope='global',frequency=2", f"--output={out}",
    )
    assert status == 0, stderr
    return out


def test_prune_writes_model_reports_and_plot(pruned_dir):
    for name in ("pruned.keras", "report.json", "report.md", "sparsity.png"):
        assert (pruned_dir / name).stat().st_size > 0
    report = json.loads((pruned_dir / "report.json").read_text())
    assert report["sparsity"]["total"]["sparsity"] == pytest.approx(0.8, abs=0.002)
    assert report["strategy_config"]["scope"] == "global"
    assert report["test_accuracy"] > 0.5  # 8x8 digits: far above chance after 3 epochs
    assert [name for name in os.listdir(pruned_dir) if name.startswith(".tfsparse-")] == []


def test_prune_refuses_to_overwrite_and_resumes(cli, pruned_dir):
    before = (pruned_dir / "pruned.keras").read_bytes()
    status, _, err = cli("prune", f"--model={pruned_dir / 'pruned.keras'}", "--data=digits",
                         "--target_sparsity=0.9", f"--output={pruned_dir}")
    assert status == 1 and "--overwrite" in err
    assert (pruned_dir / "pruned.keras").read_bytes() == before
    status, _, err = cli("prune", f"--model={pruned_dir / 'pruned.keras'}", "--data=digits", "--epochs=1",
                         "--target_sparsity=0.9", f"--output={pruned_dir}", "--overwrite")
    assert status == 0, err
    report = json.loads((pruned_dir / "report.json").read_text())
    assert report["history"][0][0] > 0  # the schedule continued from the saved optimizer step


def test_inspect_keras(cli, pruned_dir):
    status, out, _ = cli("inspect", pruned_dir / "pruned.keras")
    assert status == 0 and "TOTAL" in out and "80.0%" in out


def test_export_inspect_and_bench(cli, pruned_dir, tmp_path):
    sparse, dense = tmp_path / "sparse.tflite", tmp_path / "dense.tflite"
    status, out, err = cli("export", f"--model={pruned_dir / 'pruned.keras'}", f"--output={sparse}", "--target=sparse", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["size_bytes"] == sparse.stat().st_size
    status, _, err = cli("export", f"--model={pruned_dir / 'pruned.keras'}", f"--output={dense}", "--target=dense")
    assert status == 0, err
    assert sparse.stat().st_size < dense.stat().st_size
    status, out, _ = cli("inspect", sparse, "--json")
    assert status == 0 and json.loads(out)["sparse_tensors"]
    status, out, err = cli("bench", sparse, f"--compare={dense}", "--runs=3", "--warmup=1", "--json")
    assert status == 0, err
    assert json.loads(out)  # structure is tested in tests/bench


def test_export_refuses_existing_file_and_missing_dir(cli, pruned_dir, tmp_path):
    existing = tmp_path / "keep.tflite"
    existing.write_bytes(b"user data")
    status, _, err = cli("export", f"--model={pruned_dir / 'pruned.keras'}", f"--output={existing}")
    assert status == 1 and "overwrite" in err and existing.read_bytes() == b"user data"
    status, _, err = cli("export", f"--model={pruned_dir / 'pruned.keras'}", f"--output={tmp_path / 'no' / 'x.tflite'}")
    assert status == 1 and "does not exist" in err


def test_export_xnnpack_refuses_ineligible_model_unless_allowed(cli, builder_file, tmp_path):
    output = tmp_path / "x.tflite"
    status, _, err = cli("export", f"--model={builder_file}", f"--output={output}", "--target=xnnpack")
    assert status == 1 and "will not take XNNPACK's sparse path" in err
    assert "1 input channels" in err and "--target=sparse" in err and "pass --allow_ineligible" in err
    assert not output.exists() and os.listdir(tmp_path) == ["tiny_cnn.py"]
    with pytest.warns(UserWarning, match="sparse path will not fire"):
        status, out, err = cli("export", f"--model={builder_file}", f"--output={output}", "--target=xnnpack",
                               "--allow_ineligible", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["xnnpack_lint"]["fires"] is False and result["size_bytes"] == output.stat().st_size
    status, _, err = cli("export", f"--model={builder_file}", f"--output={tmp_path / 's.tflite'}", "--target=sparse",
                         "--allow_ineligible")
    assert status == 1 and "Expected False unless target='xnnpack'" in err
    assert not (tmp_path / "s.tflite").exists()


@pytest.mark.parametrize("content", [None, b"not a zip"])
def test_missing_or_corrupt_model_file(cli, tmp_path, content):
    path = tmp_path / "model.keras"
    if content:
        path.write_bytes(content)
    status, _, err = cli("inspect", path)
    assert status == 1 and ("does not exist" in err if content is None else "not a valid .keras" in err)


def test_dataset_that_does_not_fit_the_model(cli, tmp_path):
    builder = tmp_path / "wide.py"
    builder.write_text("import keras\n\ndef wide():\n    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])\n")
    status, _, err = cli("prune", f"--model={builder}:wide", "--data=digits", f"--output={tmp_path / 'o'}")
    assert status == 1 and "digits" in err.lower()


def test_unknown_strategy_names_the_closest(cli, builder_file, tmp_path):
    status, _, err = cli("prune", f"--model={builder_file}", "--strategy=gnp", "--data=digits", f"--output={tmp_path / 'o'}")
    assert status == 1 and "gmp" in err


@pytest.mark.parametrize("strategy, args, expected", [
    ("l1", "l1=0.001", None),
    ("l0", "", None),
    ("nm", "exclude=conv", 0.5),
    ("channel", "", None),
])
def test_every_strategy_prunes_and_exports_from_the_command_line(cli, builder_file, tmp_path, strategy, args,
                                                                 expected):
    out = tmp_path / strategy
    status, _, err = cli("prune", f"--model={builder_file}", f"--strategy={strategy}", "--target_sparsity=0.5",
                         "--data=digits", "--epochs=2", f"--strategy_args={args}", f"--output={out}")
    assert status == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["strategy"] == strategy and report["sparsity"]["total"]["sparsity"] > 0
    if expected is not None:
        assert report["sparsity"]["total"]["sparsity"] == pytest.approx(expected, abs=0.1)
    if strategy in ("channel", "l0"):  # whole channels: the export is physically smaller
        assert report["shrink"]["shrunk_params"] < report["shrink"]["params"] and report["strategy_sparsity"] > 0
    status, _, err = cli("export", f"--model={out / 'pruned.keras'}", f"--output={out / 'm.tflite'}", "--target=sparse")
    assert status == 0, err
    assert (out / "m.tflite").stat().st_size > 0

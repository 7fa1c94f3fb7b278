"""`tfsparse demo --quick` end to end (a few minutes: marked slow)."""

import json

import pytest


@pytest.mark.slow
def test_demo_quick_end_to_end(cli, tmp_path):
    out = tmp_path / "demo"
    status, stdout, stderr = cli("demo", "--quick", f"--output={out}")
    assert status == 0, stderr
    figures = json.loads((out / "demo.json").read_text())
    assert figures["pruned_1x1_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert figures["dense_accuracy"] > 0.6 and figures["pruned_accuracy"] > 0.6
    assert figures["sparse_export"]["size_bytes"] < figures["dense_export"]["size_bytes"]
    assert figures["sparse_export"]["verification"]["passed"]
    assert figures["dense_export"]["verification"]["passed"]
    assert figures["xnnpack_lint"]["fires"], figures["xnnpack_lint"]["reasons"]
    assert figures["xnnpack_plan"]["fires"] and figures["xnnpack_plan"]["amdahl_bound"] > 3
    assert figures["xnnpack_plan"]["sparse_layers"] == [f"block{i}_pw" for i in range(1, 14)]
    assert figures["sparse_export"]["input_shapes"] and all(
        shape[0] == 1 for shape in figures["sparse_export"]["input_shapes"].values())
    for name in ("REPORT.md", "sparsity.png", "accuracy.png", "size.png", "dense.tflite", "sparse.tflite",
                 "dense.keras", "pruned.keras"):
        assert (out / name).stat().st_size > 0
    report = (out / "REPORT.md").read_text()
    assert f"{figures['pruned_accuracy']:.4f}" in report
    assert "pruned accuracy" in stdout
    if figures["arm_bench"] is not None:  # the emulator is set up (always in CI, by tools/setup.sh)
        fired = {o["path"].rsplit("/", 1)[-1]: o["fired"] for o in figures["arm_bench"]["observations"]}
        assert fired == {"sparse.tflite": True, "dense.tflite": False}
        assert figures["arm_bench"]["speedup"] > 1.5
        assert "of the Amdahl bound" in report
    else:
        assert "tfsparse emulator setup" in figures["arm_skipped"]
    status, _, stderr = cli("demo", "--quick", f"--output={out}")
    assert status == 1 and "--overwrite" in stderr  # a second run never replaces results

"""`tools/bench_xnnpack.py`: merging its tables, and `--quick` end to end on the emulated aarch64 runtime."""

import pytest


def test_render_replaces_measured_tables_and_keeps_the_others():
    from tools import bench_xnnpack

    kept = {
        "V1 table": "### V1 table\nMeasured with `old v1`.\n| old |\n",
        "V2 table": "### V2 table\nMeasured with `old v2`.\n| old |\n",
        "Stale table": "### Stale table\n| written before tables named their command |\n",
        bench_xnnpack.ANCHORS: f"### {bench_xnnpack.ANCHORS}\n| old anchors |\n",
    }
    body = bench_xnnpack.render({"V2 table": "### V2 table\nMeasured with `new v2`.\n| new |\n"}, kept)
    assert "`old v1`" in body and "`new v2`" in body
    assert "`old v2`" not in body and "Stale table" not in body and "old anchors" not in body
    assert body.index("### V1 table") < body.index("### V2 table") < body.index(f"### {bench_xnnpack.ANCHORS}")
    assert body.count(f"### {bench_xnnpack.ANCHORS}") == 1
    assert bench_xnnpack.EMULATED in body


@pytest.mark.slow
def test_quick_run_writes_a_fired_faster_row_and_keeps_other_sections(emulator_ready, tmp_path):
    from tools import bench_xnnpack

    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Core\nkept\n", encoding="utf-8")
    assert bench_xnnpack.main(["--quick", "--models=v1", "--sparsities=0.9", f"--output={output}"]) == 0
    text = output.read_text(encoding="utf-8")
    assert "## Core\nkept\n" in text
    assert f"## {bench_xnnpack.SECTION}\n" in text
    assert "### MobileNet-V1-style 0.5, 96x96x3, 1000 classes\n" in text
    assert "Emulated (qemu) ratios overstate real devices" in text
    assert "Measured with `python tools/bench_xnnpack.py --quick --models=v1 --sparsities=0.9" in text
    rows = [line for line in text.splitlines() if line.startswith("| 90% |")]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    header = next(line for line in text.splitlines() if line.startswith("| 1x1 sparsity |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    row = dict(zip(columns, cells, strict=True))
    speedup = next(value for name, value in row.items() if name.startswith("speedup, arm-emu"))
    assert float(speedup.rstrip("x")) > 1.0
    bound = float(row["Amdahl bound"].rstrip("x"))
    assert 1.0 < bound < 10.0
    assert row["check: fires"] == row["lint: fires"] == "yes"
    assert row["observed: fired"] == "yes"
    assert int(row["xnnpack bytes"].split()[0]) < int(row["dense fp32 bytes"])

"""`tools/bench_moe.py`: argument checks, and `--quick` end to end (slow, about 2 minutes on 2 cores)."""

import pytest


@pytest.mark.parametrize("argv,message", [
    (["--targets=2"], "--targets"),  # not more than top_k
    (["--targets=8"], "--targets"),  # not fewer than the experts
    (["--criteria=frequency,bogus"], "--criteria"),
    (["--epochs=0"], "--epochs"),
])
def test_bad_arguments(argv, message, capsys):
    from tools import bench_moe

    with pytest.raises(SystemExit):
        bench_moe.main(argv)
    assert message in capsys.readouterr().err


def test_every_target_and_criterion_runs_dropped_and_merged():
    from tools import bench_moe

    plan = bench_moe.plan_runs([6, 4], ["frequency", "reap"])
    assert plan[0] == (None, None, False) and len(plan) == 1 + 2 * 2 * 2
    assert {(c, t, m) for c, t, m in plan[1:]} == {(c, t, m) for c in ("frequency", "reap") for t in (6, 4)
                                                     for m in (False, True)}


@pytest.mark.slow
def test_quick_run_writes_the_section(tmp_path, vader_archive):
    from tools import bench_moe

    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Core\nkept\n", encoding="utf-8")
    assert bench_moe.main(["--quick", "--criteria=reap", f"--output={output}"]) == 0
    text = output.read_text(encoding="utf-8")
    assert "## Core\nkept\n" in text and f"## {bench_moe.SECTION}\n" in text
    assert "Measured with `python tools/bench_moe.py --quick --criteria=reap --output=" in text
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| reap |")]
    assert len(rows) == 2  # dropped and merged
    header = [cell.strip() for cell in next(line for line in text.splitlines()
                                           if line.startswith("| criterion |")).strip("|").split("|")]
    for row in rows:
        cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
        assert cells["experts per layer"] == "4"
        assert 0.5 < float(cells[".tflite ratio"]) < 0.97  # half the experts go; the embedding table stays
        assert 0 < float(cells["latency ratio"]) < 1.2
        assert float(cells["finalized vs masked"]) < 1e-5

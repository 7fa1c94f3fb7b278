"""`tools/bench_recovery.py --quick` end to end, and its frontier arithmetic (the quick run is slow: ~1 minute)."""

import pytest
from markdown_table import markdown_table, percent


@pytest.mark.slow
def test_quick_run_writes_the_ablation_section(tmp_path):
    from tools import bench_recovery

    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Core\nkept\n", encoding="utf-8")
    assert bench_recovery.main(["--quick", f"--workdir={tmp_path / 'work'}", f"--output={output}"]) == 0
    text = output.read_text(encoding="utf-8")
    assert "## Core\nkept\n" in text and f"## {bench_recovery.SECTION}\n" in text
    assert "python tools/bench_recovery.py --quick" in text
    rows = markdown_table(text, "| recipe | test accuracy |")
    assert set(rows) == {"dense (start of every run)", "dense + same epochs",
                         "GMP, uniform, cosine learning rate (as before)", "+ distillation"}
    for name in ("GMP, uniform, cosine learning rate (as before)", "+ distillation"):
        assert percent(rows[name]["1x1 sparsity"]) == pytest.approx(0.9, abs=0.001)
        assert 0 <= percent(rows[name]["after BN recalibration"]) <= 1
    assert rows["dense + same epochs"]["Δ vs dense + same epochs"] == "+0.00 pp"
    # a second run reuses every stored result: nothing trains again
    before = (tmp_path / "work" / "results.json").read_text()
    assert bench_recovery.main(["--quick", f"--workdir={tmp_path / 'work'}", f"--output={output}"]) == 0
    assert (tmp_path / "work" / "results.json").read_text() == before


def test_recipe_keys_differ_and_name_every_option():
    from tools import bench_recovery

    recipes = [*bench_recovery.ABLATION, *bench_recovery.CHANNEL, *bench_recovery.FRONTIER]
    assert len({recipe.key for recipe in recipes}) == len(recipes)
    assert bench_recovery.ALL.key == ("kind=gmp/target=0.9/distill=True/rewind=True/scope=layer/oneshot=None/"
                                      "regularize=None")


def test_unknown_stage_is_refused(tmp_path, capsys):
    from tools import bench_recovery

    with pytest.raises(SystemExit):
        bench_recovery.main(["--stages=ablation,typo", f"--workdir={tmp_path}", "--limit=64", "--test_limit=8",
                             "--dense_epochs=1", "--width=0.25"])
    assert "unknown stage 'typo'" in capsys.readouterr().err

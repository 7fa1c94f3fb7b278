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
    rows = markdown_table(text, "| recipe | seeds | test accuracy |")
    assert set(rows) == {"dense (start of every run)", "dense + same epochs",
                         "GMP, uniform, cosine learning rate (as before)", "+ distillation"}
    for name in ("GMP, uniform, cosine learning rate (as before)", "+ distillation"):
        assert percent(rows[name]["1x1 sparsity"]) == pytest.approx(0.9, abs=0.001)
        assert 0 <= percent(rows[name]["after BN recalibration"]) <= 1 and rows[name]["seeds"] == "1"
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


def _stub_runner(results):
    """A Runner with stored results only (nothing trains)."""
    import types

    import numpy as np
    from tools import bench_recovery

    runner = bench_recovery.Runner.__new__(bench_recovery.Runner)
    runner.results, runner.width, runner.finetune_epochs, runner.dense_epochs = results, 1.0, 1, 10
    runner.data = types.SimpleNamespace(x_train=np.zeros((1280, 1)))
    runner.total = 10
    return runner


def _key(recipe, seed, epochs=1):
    return f"run/w1.0/{recipe.key}/e{epochs}/s{seed}"


def test_frontier_compares_with_the_dense_curve_at_the_same_latency():
    from tools import bench_recovery

    results = {"dense/w0.5/e11/s0": {"accuracy": 0.80}, "latency/dense width 0.5/e1": _latency(0.2),
               "dense/w0.75/e11/s0": {"accuracy": 0.84}, "latency/dense width 0.75/e1": _latency(0.6)}
    for seed, accuracy in enumerate((0.85, 0.87)):
        results[_key(bench_recovery.ALL, seed)] = {"accuracy_recalibrated": accuracy}
    results[f"latency/{bench_recovery.ALL.name}/e1"] = _latency(0.4, fired=True)
    lines = bench_recovery._frontier_lines(_stub_runner(results), seeds=3, base_mean=88.0)
    rows = {line.split(" | ")[0]: line for line in lines if line.startswith("| ")}
    pruned = rows[f"| width 1, {bench_recovery.ALL.name}"]
    # the dense curve at 0.4x: halfway between 80% (0.2x) and 84% (0.6x) = 82%; pruned mean 86%: +4 pp
    assert "| 82.00% | +4.00 pp |" in pruned and "86.00% (85.00-87.00)" in pruned and "| yes |" in pruned
    assert rows["| dense width 0.5 (11 epochs from scratch)"].endswith("| - | - | - |")
    assert pruned.split(" | ")[1] == "2"  # seeds


def _latency(ratio, fired=None):
    return {"ratio": ratio, "ms": 1.0, "reference_ms": 1.0 / ratio, "fired": fired, "bytes": 1000, "lint_fires": None}


def test_budget_table_needs_two_budgets_and_reads_seed_zero():
    from tools import bench_recovery

    results = {}
    for epochs, (dense, gmp, best) in ((1, (0.89, 0.83, 0.86)), (3, (0.90, 0.86, 0.89))):
        for recipe, value in zip(bench_recovery.BUDGET_RECIPES, (dense, gmp, best)):
            results[_key(recipe, 0, epochs)] = {"accuracy": value, "accuracy_recalibrated": value}
    lines = bench_recovery._budget_lines(_stub_runner(results))
    assert "| 1 | 89.00% | 83.00% | -6.00 pp | 86.00% | -3.00 pp |" in lines
    assert "| 3 | 90.00% | 86.00% | -4.00 pp | 89.00% | -1.00 pp |" in lines
    del results[_key(bench_recovery.ALL, 0, 3)]
    assert bench_recovery._budget_lines(_stub_runner(results)) == []

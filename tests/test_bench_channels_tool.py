"""`tools/bench_channels.py`: its tables, and `--quick` end to end (slow, about 2-3 minutes on 2 shared cores)."""

import types

import pytest
from markdown_table import markdown_table, percent


def _fake_deployment(arm):
    from tools import bench_channels

    timing = types.SimpleNamespace
    local = types.SimpleNamespace(speedup=2.0, models=(timing(median_ms=0.5), timing(median_ms=1.0)))
    return bench_channels.Deployment("resnet", 0.5, 0.5, (1000, 250), (400, 100), (2000, 600), local, arm, None)


def test_deployment_table_says_when_the_emulator_is_missing():
    from tools import bench_channels

    settings = {"resnet_width": 1.0}
    text = "\n".join(bench_channels.deployment_table([_fake_deployment(bench_channels.NOT_INSTALLED)], settings))
    rows = markdown_table(text, "| model | channel reduction |", key=lambda cells: (cells[0], cells[1]))
    pruned = rows[("ResNet-style 1", "50.0%")]
    assert pruned["MACs ratio"] == "0.250" and pruned[".tflite ratio"] == "0.300"
    assert pruned["x86 ms, pruned / dense"] == "0.5 / 1"
    assert pruned["x86 latency ratio"] == "0.500"
    assert pruned["x86 time / MACs reduction"] == "0.67"  # (1 - 0.5) / (1 - 0.25)
    for column in bench_channels.ARM_COLUMNS:
        assert pruned[column] == "not measured: emulator not installed"
        assert rows[("ResNet-style 1", "0% (dense)")][column] == "not measured: emulator not installed"


def test_plan_runs_every_criterion_only_where_asked():
    from tools import bench_channels

    settings = {"criteria_models": ["resnet"], "criteria_at": [0.5]}
    criteria = bench_channels.CRITERIA
    assert bench_channels.plan_runs("resnet", settings, [0.25, 0.5], criteria) == [
        (None, None), ("l1", 0.25), ("l1", 0.5), ("bn_gamma", 0.5), ("taylor", 0.5), ("random", 0.5)]
    assert bench_channels.plan_runs("mobilenet_v2", settings, [0.25, 0.5], criteria) == [
        (None, None), ("l1", 0.25), ("l1", 0.5)]


@pytest.mark.parametrize("argv, message", [
    (["--models=vgg"], "--models"),
    (["--criteria=taylor"], "must include l1"),
    (["--reductions=0.5,1.5"], "--reductions"),
    (["--resnet_width=0"], "--resnet_width"),
])
def test_bad_arguments(argv, message, capsys):
    from tools import bench_channels

    with pytest.raises(SystemExit):
        bench_channels.main(argv)
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_quick_run_writes_the_section(tmp_path, capsys):
    from tools import bench_channels

    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Core\nkept\n", encoding="utf-8")
    assert bench_channels.main(["--quick", f"--output={output}"]) == 0

    text = output.read_text(encoding="utf-8")
    assert "## Core\nkept\n" in text
    assert f"## {bench_channels.SECTION}\n" in text
    assert "Measured with `python tools/bench_channels.py --quick --output=" in text
    assert 'scope="layer"' in text
    assert [line for line in text.splitlines() if line.startswith("### ")] == [
        "### Size and latency", "### Accuracy on Fashion-MNIST"]

    size = markdown_table(text, "| model | channel reduction |", key=lambda cells: (cells[0], cells[1]))
    models = ("MobileNet-V2-style 0.35", "ResNet-style 0.5")
    assert set(size) == {(model, reduction) for model in models for reduction in ("0% (dense)", "50.0%")}
    for model in models:
        dense, pruned = size[(model, "0% (dense)")], size[(model, "50.0%")]
        assert 0.2 < float(pruned["MACs ratio"]) < 0.35  # about (1 - 0.5)^2 between two pruned layers
        assert float(pruned["params ratio"]) < 0.5
        assert int(pruned[".tflite bytes"]) < 0.5 * int(dense[".tflite bytes"])
        assert abs(percent(pruned["removed channels"]) - 0.5) <= 0.01
        assert 0 < float(pruned["x86 latency ratio"]) < 2
        pruned_ms, dense_ms = (float(v) for v in pruned["x86 ms, pruned / dense"].split(" / "))
        assert 0 < pruned_ms and 0 < dense_ms
        float(pruned["x86 time / MACs reduction"])
        arm = pruned["arm-emu latency ratio"]
        if arm != bench_channels.NOT_INSTALLED:
            assert 0 < float(arm) < 1  # 4x fewer MACs is faster under the emulator
            float(pruned["arm-emu time / MACs reduction"])

    accuracy = markdown_table(text, "| model | criterion |", key=lambda cells: (cells[0], cells[1], cells[2]))
    expected = {(model, name, "-") for model in models for name in ("dense (start of every run)",
                                                                     "dense + same epochs")}
    expected |= {(models[0], "l1", "50.0%")} | {(models[1], c, "50.0%") for c in bench_channels.CRITERIA}
    assert set(accuracy) == expected
    for key, row in accuracy.items():
        assert 0.0 <= percent(row["test accuracy"]) <= 1.0
        assert row["Δ vs dense + same epochs"].endswith(" pp")
        if key[2] == "50.0%":
            assert row["MACs ratio"] == size[(key[0], "50.0%")]["MACs ratio"]  # same kept counts, every criterion
    assert "total" in capsys.readouterr().out

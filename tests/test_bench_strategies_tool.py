"""`tools/bench_strategies.py --quick` end to end with gmp and nm (slow, about 2 minutes on 2 cores)."""

import pytest
from markdown_table import markdown_table, percent

pytestmark = pytest.mark.slow


def test_quick_run_writes_the_section_rows_and_plot(tmp_path, capsys):
    from tools import bench_strategies

    output = tmp_path / "BENCHMARKS.md"
    plot = tmp_path / "strategies.png"
    output.write_text("# Benchmarks\n\n## Core\nkept\n", encoding="utf-8")
    argv = ["--quick", f"--output={output}", f"--plot={plot}", "--strategies=gmp,nm"]
    assert bench_strategies.main(argv) == 0

    text = output.read_text(encoding="utf-8")
    assert "## Core\nkept\n" in text
    assert f"## {bench_strategies.SECTION}\n" in text
    assert "python tools/bench_strategies.py --quick" in text
    assert "![Test accuracy vs sparsity](strategies.png)" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = markdown_table(text, "| strategy | target |")
    assert set(rows) == {"dense (start of every run)", "dense + same epochs", "gmp", "nm 2:4"}
    gmp, nm = rows["gmp"], rows["nm 2:4"]
    assert percent(gmp["target"]) == pytest.approx(0.75)
    assert abs(percent(gmp["measured sparsity"]) - 0.75) <= 0.01
    assert abs(percent(gmp["zero 1x1 weights"]) - 0.75) <= 0.01
    assert nm["measured sparsity"] == "50.0% (weights)"
    assert nm["zero 1x1 weights"] == "50.0%"
    for row in rows.values():
        assert 0.0 <= percent(row["test accuracy"]) <= 1.0
        assert row["Δ vs dense + same epochs"].endswith(" pp")
    assert rows["dense + same epochs"]["Δ vs dense + same epochs"] == "+0.00 pp"
    for row in (gmp, nm):
        assert float(row["train step vs dense"].split("x")[0]) > 0

    timing = markdown_table(text, "| strategy (timed config) |")
    assert set(timing) == {"dense", "gmp (target 0.75)", "nm (2:4)"}
    assert "total" in capsys.readouterr().out


def test_exact_nm_sparsity_of_the_selected_weights():
    """nm 2:4 on the tool's selection (the 1x1 convolutions) zeroes exactly half of every selected kernel."""
    import keras
    import numpy as np

    from tfsparse.model_source import load_model_source
    from tools import bench_strategies

    model = load_model_source(bench_strategies.MODEL_SPEC, input_shape=(32, 32, 3), num_classes=10, width=0.25)
    nm = bench_strategies._make("nm", None, {})
    model = nm.prepare(model)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    model.fit(x, np.arange(4), batch_size=2, verbose=0, callbacks=[nm])
    selected = [w.path for w in nm.weights]
    assert selected and all("_pw" in path for path in selected)
    for weight in nm.weights:
        kernel = weight.variable.numpy()
        assert np.count_nonzero(kernel) * 2 == kernel.size
    assert nm.current_sparsity() == 0.5
    assert bench_strategies._zero_1x1(model, nm) == 0.5

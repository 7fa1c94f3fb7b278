"""`tools/compare_tfmot.py` and `tools/tfmot_worker.py`: arguments, schedule, tables, the worker's model copy,
tfsparse's independence from tfmot, and `--quick` end to end (slow, about 3-4 minutes on 2 cores)."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tools import compare_tfmot
from tools.compare_tfmot import Run
from markdown_table import markdown_table, percent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_TFMOT = all(importlib.util.find_spec(n) for n in ("tf_keras", "tensorflow_model_optimization"))
needs_tfmot = pytest.mark.skipif(not HAS_TFMOT, reason="the compare extra (tf_keras, tfmot) is not installed")


def _ratio(cell):
    return float(cell.split("x")[0])


# -------------------------------------------------------------- arguments
def test_defaults_are_the_full_protocol_and_quick_is_small():
    _, full = compare_tfmot.parse([])
    assert full["width_values"] == [1.0, 0.5]
    assert full["seed_values"] == [0, 1, 2]
    assert full["sparsity_values"] == [0.5, 0.75, 0.9]
    assert full["frontier_values"] == [0.25, 0.35, 0.5, 0.75]
    _, quick = compare_tfmot.parse(["--quick", "--seed=3"])
    assert quick["width_values"] == [0.25] and quick["seed_values"] == [3] and quick["sparsity_values"] == [0.75]
    _, reduced = compare_tfmot.parse(["--widths=0.5", "--seeds=1", "--frontier_widths=", "--train_limit=100"])
    assert reduced["width_values"] == [0.5] and reduced["frontier_values"] == [] and reduced["train_limit"] == 100


@pytest.mark.parametrize("argv, message", [
    (["--sparsities=1.2"], "--sparsities: expected comma-separated numbers in (0, 1)"),
    (["--sparsities=ninety"], "--sparsities: expected"),
    (["--sparsities="], "--sparsities: expected"),
    (["--widths=0"], "--widths: expected"),
    (["--widths=0.5", "--frontier_widths=0.25,0.5"], "--frontier_widths: expected widths below the widest"),
    (["--calibration=0.5,0.9"], "--calibration: expected comma-separated numbers in (0.666667, 1)"),
    (["--calibration=0.9"], "--calibration: the frontier needs at least 2 sparsities"),
    (["--seeds=0"], "--seeds: expected an integer >= 1"),
    (["--rounds=-1"], "--rounds: expected an integer >= 0"),
])
def test_bad_arguments_are_refused_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        compare_tfmot.parse(argv)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_compare_extra_says_how_to_install_it(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow_model_optimization" else real(name, *a))
    with pytest.raises(SystemExit):
        compare_tfmot.parse(["--quick"])
    error = capsys.readouterr().err
    assert "tensorflow_model_optimization not installed" in error and ".[compare]" in error


# --------------------------------------------------------------- schedule
@pytest.mark.parametrize("num_samples, batch_size, epochs", [(20000, 128, 2), (1024, 32, 1), (100, 64, 1),
                                                             (60000, 128, 3), (4000, 128, 2)])
def test_both_sides_update_the_masks_at_the_same_steps(num_samples, batch_size, epochs):
    from tfsparse.schedules import PolynomialDecay

    total, steps = compare_tfmot.schedule_steps(num_samples, batch_size, epochs)
    begin, end, frequency = steps["begin_step"], steps["end_step"], steps["frequency"]
    assert 0 < end <= total and end % frequency == 0
    ours = PolynomialDecay(final_sparsity=0.9, power=3, **steps)
    tfsparse_updates = [t for t in range(total) if ours.is_update_step(t)]
    tfmot_updates = [t for t in range(total) if begin <= t <= end and (t - begin) % frequency == 0]  # tfmot's rule
    assert tfsparse_updates == tfmot_updates
    assert ours.sparsity(end) == pytest.approx(0.9)


def test_match_sparsity_interpolates_and_clips():
    calibration = [(0.7, 0.52), (0.8, 0.41), (0.9, 0.30), (0.95, 0.31)]  # last point: timing noise
    assert compare_tfmot.match_sparsity(calibration, 0.41) == (0.8, False)
    value, clipped = compare_tfmot.match_sparsity(calibration, 0.35)
    assert 0.8 < value < 0.9 and not clipped
    assert compare_tfmot.match_sparsity(calibration, 0.9) == (0.7, True)
    assert compare_tfmot.match_sparsity(calibration, 0.1) == (0.95, True)


# ----------------------------------------------------------------- tables
def _fake(emulated=True):
    layers = {"stem_conv": 0.0, "block1_dw": 0.0, "block1_pw": 0.9, "block2_pw": 0.9, "logits": 0.0}
    settings = compare_tfmot.parse(["--widths=1.0", "--seeds=2", "--sparsities=0.5,0.9",
                                    "--frontier_widths=0.5"])[1]
    runs = []
    for side, base in (("tfsparse", 0.86), ("tfmot", 0.85)):
        for seed in (0, 1):
            for target in (0.5, 0.9):
                pw = {k: (target if k.endswith("_pw") else 0.0) for k in layers}
                runs.append(Run(side, 1.0, seed, target, base - target / 100 + seed / 1000, pw, f"{side}.tflite",
                                size_bytes=1000000 - int(900000 * target), lint_fires=target > 2 / 3,
                                pooled=target, latency=(0.3 if target > 0.7 else 1.0) if emulated else None,
                                fired=(target > 0.7) if emulated else None))
    summaries = {1.0: {"dense_accuracy": 0.85, "dense_bytes": 1000000, "reference": "dense.tflite",
                       "baseline": {"tfsparse": [0.87, 0.869], "tfmot": [0.865, 0.866]}, "tfmot_start_accuracy": 0.85,
                       "max_abs_error": {"tfmot": 2e-6}, "dense_ms": 100.0 if emulated else None,
                       "timing": {"tfsparse": {"ratios": [1.1, 1.2, 1.0], "dense_ms": [300, 310, 305],
                                               "pruned_ms": [330, 360, 300]},
                                  "tfmot": {"ratios": [1.3, 1.25, 1.35], "dense_ms": [280, 285, 290],
                                            "pruned_ms": [364, 356, 392]}}}}
    front = None
    if emulated:
        front = {"wide": 1.0, "calibration": [(0.7, 0.55), (0.9, 0.3)],
                 "points": [{"family": "dense", "width": 0.5, "sparsity": None, "accuracy": 0.84, "latency": 0.4,
                             "matched": 0.82, "clipped": False},
                            {"family": "dense", "width": 1.0, "sparsity": None, "accuracy": 0.87, "latency": 1.0},
                            {"family": "tfsparse", "width": 1.0, "sparsity": 0.9, "accuracy": 0.86, "latency": 0.3,
                             "target": 0.9},
                            {"family": "tfmot", "width": 1.0, "sparsity": 0.9, "accuracy": 0.85, "latency": 0.31,
                             "target": 0.9},
                            {"family": "tfsparse", "width": 1.0, "sparsity": 0.82, "accuracy": 0.862, "latency": 0.4,
                             "target": 0.82, "matched_run": True, "fired": True}]}
    return dict(command="python tools/compare_tfmot.py --widths=1.0", settings=settings, summaries=summaries,
                runs=runs, front=front, emulated=emulated, minutes=12.0, plot_link="docs/frontier.png",
                num_train=20000, num_test=10000, total_steps=314,
                steps={"begin_step": 0, "end_step": 200, "frequency": 10},
                versions={"TF": "2.21.0", "tensorflow_model_optimization": "0.8.1"})


def test_render_gives_both_sides_with_mean_and_spread():
    text = compare_tfmot.render(**_fake())
    assert "Measured with `python tools/compare_tfmot.py --widths=1.0` (12 min in all)" in text
    assert "all 10000 test images" in text and "step 200, masks updated every 10 steps" in text
    rows = markdown_table(text, "| width | run |", key=lambda cells: cells[1])
    assert set(rows) == {"dense (start of every run)", "tfsparse: dense + same epochs", "tfmot: dense + same epochs",
                         "tfsparse GMP 50.0%", "tfsparse GMP 90.0%", "tfmot GMP 50.0%", "tfmot GMP 90.0%"}
    ours, theirs = rows["tfsparse GMP 90.0%"], rows["tfmot GMP 90.0%"]
    assert ours["test accuracy, mean (min-max)"] == "85.15% (85.10-85.20)"
    assert ours["Δ vs dense + same epochs (same side)"] == "-1.80 pp"  # against tfsparse's own baseline 86.95%
    assert theirs["Δ vs dense + same epochs (same side)"] == "-2.40 pp"  # 84.15% vs tfmot's own baseline 86.55%
    assert ours["1x1 sparsity reached"] == "90.0%" and ours["`.tflite` bytes"] == "190,000"
    assert ours["linter: fires (pooled 1x1 zeros)"] == "yes (90.0%)"
    assert rows["tfmot GMP 50.0%"]["linter: fires (pooled 1x1 zeros)"] == "no (50.0%)"
    assert ours["emulated aarch64 latency vs dense"] == "0.300x (0.300x-0.300x)"
    assert ours["sparse path observed"] == "yes" and rows["tfsparse GMP 50.0%"]["sparse path observed"] == "no"
    timing = markdown_table(text, "| width | side |", key=lambda cells: cells[1])
    assert timing["tfsparse"]["ratio to own dense, median (min-max)"] == "1.100x (1.000x-1.200x)"
    assert timing["tfmot"]["dense step (own framework), median"] == "285.0 ms (tf_keras)"
    layers = markdown_table(text, "| layer | tfsparse | tfmot |")
    assert set(layers) == {"block1_pw", "block2_pw"} and layers["block1_pw"]["tfmot"] == "90.0%"
    assert "All 3 other kernels (stem, depthwise, classifier) are dense on both sides." in text
    assert "within 2.0e-06" in text and "At a target of 2/3 or less XNNPACK runs dense" in text
    frontier = markdown_table(text, "| family | width |", key=lambda cells: (cells[0], cells[1], cells[2]))
    assert frontier[("dense", "0.5", "0%")]["matching sparsity"] == "82.0%"
    assert frontier[("tfsparse (latency-matched run)", "1", "82.0%")]["emulated latency vs dense 1"] == "0.400x"
    assert "![Accuracy vs emulated latency](docs/frontier.png)" in text


def test_render_without_the_emulator_says_what_was_not_measured():
    text = compare_tfmot.render(**_fake(emulated=False))
    assert "not measured (the emulated aarch64 runtime is not set up" in text
    assert "Frontier: not measured (it needs the emulated aarch64 runtime)." in text
    rows = markdown_table(text, "| width | run |", key=lambda cells: cells[1])
    assert rows["tfmot GMP 90.0%"]["emulated aarch64 latency vs dense"] == "-"
    assert rows["tfmot GMP 90.0%"]["sparse path observed"] == "-"


def test_plot_writes_a_png_with_both_families(tmp_path):
    path = tmp_path / "frontier.png"
    compare_tfmot.plot(_fake()["front"], str(path), title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------- isolation and the worker
def _python(code, **env):
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env))
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_tfsparse_and_the_driver_never_import_tfmot_or_tf_keras():
    code = ("import sys, tfsparse\n"
            "tfsparse.get_strategy('gmp'); tfsparse.export; tfsparse.xnnpack.lint; tfsparse.bench.bench\n"
            "import tools.compare_tfmot\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tf_keras', 'tensorflow_model_optimization')))")
    assert _python(code).strip().splitlines()[-1] == "[]"


@needs_tfmot
def test_worker_model_reproduces_the_keras3_model_from_the_saved_weights(tmp_path):
    import keras

    from tfsparse.model_source import load_model_source

    model = load_model_source(compare_tfmot.MODEL_SPEC, input_shape=(32, 32, 3), num_classes=10, width=0.35)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial BatchNormalization statistics, so every weight matters
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in v.path
                           else rng.normal(0, 0.3, w.shape).astype("float32")
                           for v, w in zip(layer.weights, layer.get_weights())])
    names = compare_tfmot.save_weights(model, str(tmp_path / "w.npz"))
    x = rng.random((4, 32, 32, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    code = ("import importlib.util, json, sys, numpy as np\n"
            f"spec = importlib.util.spec_from_file_location('tfmot_worker', {compare_tfmot.WORKER!r})\n"
            "worker = importlib.util.module_from_spec(spec); spec.loader.exec_module(worker)\n"
            f"job = {{'input_shape': [32, 32, 3], 'num_classes': 10, 'width': 0.35, "
            f"'dense_weights': {str(tmp_path / 'w.npz')!r}, 'layer_names': {json.dumps(names)}}}\n"
            "model = worker.build_dense(job)\n"
            f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
            f"np.save({str(tmp_path / 'y.npy')!r}, model(x, training=False).numpy())\n"
            "print(type(model).__module__.split('.')[0])\n")
    assert _python(code, TF_USE_LEGACY_KERAS="1").strip().splitlines()[-1] == "tf_keras"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------- end to end
@pytest.mark.slow
@needs_tfmot
def test_quick_run_writes_the_section(tmp_path, capsys):
    from tfsparse.emulator import status

    output, plot = tmp_path / "BENCHMARKS.md", tmp_path / "frontier.png"
    output.write_text("# Benchmarks\n\n## Core\nkept\n", encoding="utf-8")
    assert compare_tfmot.main(["--quick", f"--output={output}", f"--plot={plot}"]) == 0

    text = output.read_text(encoding="utf-8")
    assert "## Core\nkept\n" in text and f"## {compare_tfmot.SECTION}\n" in text
    assert "python tools/compare_tfmot.py --quick" in text
    rows = markdown_table(text, "| width | run |", key=lambda cells: cells[1])
    assert set(rows) == {"dense (start of every run)", "tfsparse: dense + same epochs", "tfmot: dense + same epochs",
                         "tfsparse GMP 75.0%", "tfmot GMP 75.0%"}
    dense_bytes = int(rows["dense (start of every run)"]["`.tflite` bytes"].replace(",", ""))
    for row in rows.values():
        assert 0.0 <= percent(row["test accuracy, mean (min-max)"]) <= 1.0
    for name in ("tfsparse", "tfmot"):
        row = rows[f"{name} GMP 75.0%"]
        assert abs(percent(row["1x1 sparsity reached"]) - 0.75) <= 0.01
        assert int(row["`.tflite` bytes"].replace(",", "")) < 0.6 * dense_bytes
        assert row["linter: fires (pooled 1x1 zeros)"].startswith("yes")
    timing = markdown_table(text, "| width | side |", key=lambda cells: cells[1])
    assert set(timing) == {"tfsparse", "tfmot"}
    assert all(_ratio(row["ratio to own dense, median (min-max)"]) > 0 for row in timing.values())
    layers = markdown_table(text, "| layer | tfsparse | tfmot |")
    assert len(layers) == 13 and all(abs(percent(r[s]) - 0.75) <= 0.01 for r in layers.values()
                                      for s in ("tfsparse", "tfmot"))
    if status().ready:
        for name in ("tfsparse", "tfmot"):
            row = rows[f"{name} GMP 75.0%"]
            assert 0 < _ratio(row["emulated aarch64 latency vs dense"]) < 1 and row["sparse path observed"] == "yes"
        assert "### Frontier" in text and "![Accuracy vs emulated latency](frontier.png)" in text
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        frontier = markdown_table(text, "| family | width |", key=lambda cells: (cells[0], cells[1]))
        assert ("dense", "0.125") in frontier and ("dense", "0.25") in frontier
    assert "total" in capsys.readouterr().out

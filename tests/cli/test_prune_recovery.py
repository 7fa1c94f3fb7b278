"""`tfsparse prune` with the accuracy-recovery options: --distill, --recovery_lr, --recalibrate, --oneshot."""

import json
import textwrap

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.learning_rate import RecoverySchedule


@pytest.fixture
def bn_builder(tmp_path):
    """A tiny CNN for 8x8x1 digits with BatchNormalization after its 1x1 convolution."""
    path = tmp_path / "bn_cnn.py"
    path.write_text(textwrap.dedent(
        """
        import keras

        def bn_cnn(input_shape=(8, 8, 1), num_classes=10):
            inputs = keras.Input(input_shape)
            x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
            x = keras.layers.Conv2D(32, 1, name="pw")(x)
            x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="pw_bn")(x))
            x = keras.layers.GlobalAveragePooling2D()(x)
            return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
        """
    ))
    return f"{path}:bn_cnn"


def _report(directory):
    return json.loads((directory / "report.json").read_text())


def test_distill_with_recovery_schedule_writes_a_plain_student(cli, bn_builder, tmp_path):
    out = tmp_path / "run"
    status, _, err = cli("prune", f"--model={bn_builder}", "--target_sparsity=0.75", "--data=digits", "--epochs=2",
                         "--batch_size=64", "--distill", "--distill_alpha=0.7", "--recovery_lr",
                         "--strategy_args=layers='pw'", f"--output={out}")
    assert status == 0, err
    report = _report(out)
    assert report["recovery"] == {"distill": True, "teacher": None, "distill_alpha": 0.7, "distill_temperature": 4.0,
                                  "recovery_lr": True, "recalibrated": True, "oneshot": None}
    model = keras.saving.load_model(out / "pruned.keras")
    assert not isinstance(model, tfsparse.Distiller) and [layer.name for layer in model.layers][-1] == "logits"
    assert isinstance(model.optimizer._learning_rate, RecoverySchedule)
    assert int(model.optimizer.iterations) > 0  # the student keeps the optimizer, so a later run resumes
    kernel = model.get_layer("pw").kernel.numpy()
    assert 1 - np.count_nonzero(kernel) / kernel.size == pytest.approx(0.75, abs=0.01)


def test_recalibration_is_on_by_default_and_can_be_switched_off(cli, bn_builder, tmp_path):
    status, _, err = cli("prune", f"--model={bn_builder}", "--target_sparsity=0.5", "--data=digits", "--epochs=1",
                         "--batch_size=64", "--norecalibrate", f"--output={tmp_path / 'off'}")
    assert status == 0, err
    assert _report(tmp_path / "off")["recovery"]["recalibrated"] is False
    status, _, err = cli("prune", f"--model={bn_builder}", "--target_sparsity=0.5", "--data=digits", "--epochs=1",
                         "--batch_size=64", f"--output={tmp_path / 'on'}")
    assert status == 0, err
    assert _report(tmp_path / "on")["recovery"]["recalibrated"] is True


def test_distill_from_a_teacher_file(cli, bn_builder, tmp_path):
    first = tmp_path / "first"
    assert cli("prune", f"--model={bn_builder}", "--target_sparsity=0.5", "--data=digits", "--epochs=1",
               "--batch_size=64", f"--output={first}")[0] == 0
    teacher = first / "pruned.keras"
    out = tmp_path / "second"
    status, _, err = cli("prune", f"--model={bn_builder}", "--target_sparsity=0.5", "--data=digits", "--epochs=1",
                         "--batch_size=64", "--distill", f"--teacher={teacher}", f"--output={out}")
    assert status == 0, err
    assert _report(out)["recovery"]["teacher"] == str(teacher)


def test_oneshot_prunes_before_training_and_keeps_the_target(cli, bn_builder, tmp_path):
    out = tmp_path / "run"
    status, stdout, err = cli("prune", f"--model={bn_builder}", "--target_sparsity=0.75", "--data=digits",
                              "--epochs=1", "--batch_size=64", "--oneshot=sparsegpt",
                              "--strategy_args=layers='pw'", f"--output={out}")
    assert status == 0, err
    report = _report(out)
    assert report["recovery"]["oneshot"] == "sparsegpt"
    assert report["history"][0][1] == pytest.approx(0.75, abs=0.01)  # at the target from the first step
    kernel = keras.saving.load_model(out / "pruned.keras").get_layer("pw").kernel.numpy()
    assert 1 - np.count_nonzero(kernel) / kernel.size == pytest.approx(0.75, abs=0.01)
    assert "pw" in stdout


@pytest.mark.parametrize("args, message", [
    (("--teacher=x.keras",), "flag --teacher. Expected it only with --distill"),
    (("--oneshot=sparsegpt", "--strategy=l1"), "flag --oneshot. Expected it only with --strategy=gmp"),
    (("--distill", "--distill_alpha=2"), "flag --distill_alpha"),
    (("--distill", "--distill_temperature=0"), "flag --distill_temperature"),
])
def test_bad_recovery_options_fail_before_training(cli, bn_builder, tmp_path, args, message):
    out = tmp_path / "run"
    status, _, err = cli("prune", f"--model={bn_builder}", "--data=digits", "--epochs=1", *args, f"--output={out}")
    assert status == 1 and message in err
    assert not (out / "pruned.keras").exists()


def test_recovery_lr_refuses_a_compiled_model(cli, bn_builder, tmp_path):
    first = tmp_path / "first"
    assert cli("prune", f"--model={bn_builder}", "--target_sparsity=0.5", "--data=digits", "--epochs=1",
               "--batch_size=64", f"--output={first}")[0] == 0
    status, _, err = cli("prune", f"--model={first / 'pruned.keras'}", "--data=digits", "--epochs=1",
                         "--recovery_lr", f"--output={tmp_path / 'second'}")
    assert status == 1 and "flag --recovery_lr" in err and "compiled" in err


def test_channel_with_a_mac_target_and_growing_regularization(cli, bn_builder, tmp_path):
    out = tmp_path / "run"
    status, stdout, err = cli("prune", f"--model={bn_builder}", "--strategy=channel", "--data=digits", "--epochs=2",
                              "--batch_size=64", "--strategy_args=target_macs=0.6,regularize='growing',round_to=1",
                              f"--output={out}")
    assert status == 0, err
    report = _report(out)
    assert report["strategy_config"]["target_macs"] == 0.6 and report["strategy_config"]["regularize"] == "growing"
    assert report["shrink"]["shrunk_macs"] / report["shrink"]["macs"] == pytest.approx(0.6, abs=0.05)


def test_gmp_allocation_from_the_command_line(cli, bn_builder, tmp_path):
    out = tmp_path / "run"
    status, _, err = cli("prune", f"--model={bn_builder}", "--target_sparsity=0.8", "--data=digits", "--epochs=1",
                         "--batch_size=64", "--strategy_args=scope='erk',layers='conv|pw'", f"--output={out}")
    assert status == 0, err
    model = keras.saving.load_model(out / "pruned.keras")
    conv, pw = (model.get_layer(name).kernel.numpy() for name in ("conv", "pw"))
    zeros = conv.size - np.count_nonzero(conv) + pw.size - np.count_nonzero(pw)
    assert zeros == round(0.8 * (conv.size + pw.size))  # the pooled count is exact
    assert 1 - np.count_nonzero(conv) / conv.size < 1 - np.count_nonzero(pw) / pw.size  # ERK: the small layer denser

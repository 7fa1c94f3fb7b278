"""`tfsparse.RecoverySchedule`: constant while pruning, rewind at end_step, cosine to the end; serializable."""

import keras
import numpy as np
import pytest

from tfsparse.learning_rate import RecoverySchedule
from tfsparse.training import pruning_steps


def _rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_phases():
    schedule = RecoverySchedule(pruning_rate=2e-4, peak_rate=1e-3, end_step=50, total_steps=150, final_fraction=0.1)
    np.testing.assert_allclose(_rates(schedule, [0, 25, 49]), 2e-4, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(50)), 1e-3, rtol=1e-6)
    recovery = _rates(schedule, range(50, 151))
    assert np.all(np.diff(recovery) <= 1e-12)  # decays monotonically
    np.testing.assert_allclose(float(schedule(100)), 1e-3 * (0.1 + 0.9 * 0.5), rtol=1e-5)
    np.testing.assert_allclose(_rates(schedule, [150, 400]), 1e-4, rtol=1e-5)


def test_fit_to_pruning_steps():
    steps = pruning_steps(num_samples=1000, batch_size=10, epochs=3)
    schedule = RecoverySchedule.fit_to(steps, total_steps=300, peak_rate=1e-3, pruning_fraction=0.25)
    assert schedule.end_step == steps["end_step"] == 200
    assert float(schedule(199)) == pytest.approx(2.5e-4) and float(schedule(200)) == pytest.approx(1e-3)


def test_optimizer_uses_it_and_round_trips(tmp_path):
    schedule = RecoverySchedule(pruning_rate=1e-2, peak_rate=1e-1, end_step=2, total_steps=10)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(schedule), "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=2, epochs=1, verbose=0)
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(4)))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.optimizer._learning_rate
    assert isinstance(restored, RecoverySchedule) and restored.get_config() == schedule.get_config()
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert again.get_config() == schedule.get_config()


@pytest.mark.parametrize("kwargs, argument", [
    ({"pruning_rate": 0}, "pruning_rate"), ({"peak_rate": -1.0}, "peak_rate"),
    ({"peak_rate": float("inf")}, "peak_rate"), ({"end_step": -1}, "end_step"),
    ({"total_steps": 10}, "total_steps"), ({"final_fraction": 1.5}, "final_fraction"),
])
def test_bad_arguments_name_the_argument(kwargs, argument):
    config = {"pruning_rate": 1e-3, "peak_rate": 1e-3, "end_step": 10, "total_steps": 20, **kwargs}
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        RecoverySchedule(**config)


def test_fit_to_needs_a_step_dictionary():
    with pytest.raises(ValueError, match="argument `steps`"):
        RecoverySchedule.fit_to(100, total_steps=200, peak_rate=1e-3)

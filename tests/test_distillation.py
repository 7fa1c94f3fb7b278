"""`tfsparse.Distiller`: labels plus a frozen teacher, every strategy prunes the student, round trips."""

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.distillation import distillation_loss

L = keras.layers


def _teacher(softmax=False, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((16,)), L.Dense(32, activation="relu", name="hidden"),
                             L.Dense(3, activation="softmax" if softmax else None, name="out")], name="teacher")


def _student_of(teacher):
    student = keras.models.clone_model(teacher)
    student.name = "student"
    student.set_weights(teacher.get_weights())
    return student


def _loss(from_logits=True):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def test_distillation_loss_is_scaled_kl_divergence():
    t, s = np.array([[2.0, 0.0, -1.0]]), np.array([[0.0, 1.0, 0.5]])
    temperature = 3.0
    p = np.exp(t / temperature) / np.exp(t / temperature).sum()
    q = np.exp(s / temperature) / np.exp(s / temperature).sum()
    expected = temperature**2 * np.sum(p * np.log(p / q))
    assert float(distillation_loss(t, s, temperature)) == pytest.approx(expected, rel=1e-5)
    assert float(distillation_loss(t, t, temperature)) == pytest.approx(0.0, abs=1e-7)


def test_loss_is_the_weighted_sum_of_label_and_teacher_terms(classification_data):
    x, y = classification_data
    teacher = _teacher()
    student = _teacher(seed=1)
    distiller = tfsparse.Distiller(student, teacher, alpha=0.3, temperature=2.0)
    distiller.compile("sgd", _loss())
    got = distiller.evaluate(x, y, batch_size=len(x), verbose=0)
    hard = float(keras.ops.convert_to_numpy(_loss()(y, student(x))))
    soft = float(keras.ops.convert_to_numpy(distillation_loss(teacher(x), student(x), 2.0)))
    assert got == pytest.approx(0.7 * hard + 0.3 * soft, rel=1e-4)


def test_teacher_never_trains_and_student_learns_the_teacher(classification_data):
    x, y = classification_data
    teacher = _teacher()
    keras.Model.compile(teacher, "adam", _loss())
    teacher.fit(x, y, epochs=30, verbose=0)
    before = [w.copy() for w in teacher.get_weights()]
    student = _teacher(seed=3)
    distiller = tfsparse.Distiller(student, teacher, alpha=1.0, temperature=1.0)
    distiller.compile(keras.optimizers.Adam(1e-2))
    start = float(keras.ops.convert_to_numpy(distillation_loss(teacher(x), student(x), 1.0)))
    assert teacher.trainable is False and not teacher.trainable_weights  # frozen by the constructor
    distiller.fit(x, epochs=40, verbose=0)  # no labels at alpha=1
    for old, new in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert float(keras.ops.convert_to_numpy(distillation_loss(teacher(x), student(x), 1.0))) < 0.2 * start
    agreement = np.mean(keras.ops.convert_to_numpy(teacher(x)).argmax(1)
                        == keras.ops.convert_to_numpy(student(x)).argmax(1))
    assert agreement > 0.9


def test_softmax_outputs_are_treated_as_probabilities(classification_data):
    x, _ = classification_data
    teacher = _teacher(softmax=True)
    distiller = tfsparse.Distiller(_student_of(teacher), teacher, alpha=1.0)
    distiller.compile("sgd")
    assert distiller.evaluate(x, verbose=0) == pytest.approx(0.0, abs=1e-4)  # log-probabilities stand in for logits


@pytest.mark.parametrize("name, kwargs", [
    ("gmp", {"target_sparsity": 0.75, "begin_step": 0, "end_step": 4, "frequency": 2}),
    ("l1", {"target_sparsity": 0.5, "begin_step": 0, "end_step": 4, "frequency": 2}),
    ("nm", {}),
])
def test_strategies_prune_the_student_only(classification_data, name, kwargs):
    x, y = classification_data
    teacher = _teacher()
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distiller = tfsparse.Distiller(_student_of(teacher), teacher)
    distiller.compile("adam", _loss(), metrics=["accuracy"])
    strategy = tfsparse.get_strategy(name)(**kwargs)
    history = distiller.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[strategy])
    assert {"loss", "accuracy", "sparsity"} <= set(history.history)
    assert all(weight.layer.name in {layer.name for layer in distiller.student.layers} for weight in strategy.weights)
    assert tfsparse.sparsity_report(distiller.student).sparsity == pytest.approx(strategy.current_sparsity(), abs=0.01)
    assert strategy.current_sparsity() > 0.3
    for old, new in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert all(np.count_nonzero(w) == w.size for w in teacher.get_weights() if w.ndim == 2)


def test_l0_prepare_then_distill(classification_data):
    x, y = classification_data
    inputs = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 1, name="pw")(inputs)
    h = L.BatchNormalization(name="pw_bn")(h)
    outputs = L.Dense(3, name="out")(L.GlobalAveragePooling2D()(L.ReLU()(h)))
    teacher = keras.Model(inputs, outputs)
    images = np.random.default_rng(0).random((64, 8, 8, 3)).astype("float32")
    l0 = tfsparse.get_strategy("l0")(target_sparsity=0.5, begin_step=0, end_step=6, frequency=2)
    student = l0.prepare(_student_of(teacher))
    distiller = tfsparse.Distiller(student, teacher)
    distiller.compile("adam", _loss())
    distiller.fit(images, y[:64], batch_size=8, epochs=1, verbose=0, callbacks=[l0])
    assert l0.current_sparsity() == pytest.approx(0.5)


def test_keras_round_trip_and_plain_student(tmp_path, classification_data):
    x, y = classification_data
    teacher = _teacher()
    distiller = tfsparse.Distiller(_student_of(teacher), teacher, alpha=0.25, temperature=3.0)
    distiller.compile("adam", _loss())
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.5, begin_step=0, end_step=2, frequency=1)
    distiller.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[gmp])
    config = distiller.get_config()
    again = tfsparse.Distiller.from_config(config)
    assert (again.alpha, again.temperature) == (0.25, 3.0)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, tfsparse.Distiller)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-6)
    assert loaded.student.get_layer("hidden").kernel.numpy().size - np.count_nonzero(
        loaded.student.get_layer("hidden").kernel.numpy()) == distiller.student.get_layer("hidden").kernel.numpy().size // 2
    student_path = tmp_path / "student.keras"
    distiller.student.save(student_path)
    plain = keras.saving.load_model(student_path)
    assert type(plain) is keras.Sequential and "teacher" not in [layer.name for layer in plain.layers]


@pytest.mark.parametrize("kwargs, argument", [
    ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"), ({"temperature": 0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
])
def test_bad_arguments_name_the_argument(kwargs, argument):
    teacher = _teacher()
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        tfsparse.Distiller(_student_of(teacher), teacher, **kwargs)


def test_mismatched_outputs_and_non_models_are_refused():
    teacher = _teacher()
    other = keras.Sequential([keras.Input((16,)), L.Dense(5)])
    with pytest.raises(ValueError, match="argument `teacher`.*outputs"):
        tfsparse.Distiller(other, teacher)
    with pytest.raises(ValueError, match="argument `student`"):
        tfsparse.Distiller("model.keras", teacher)


def test_labels_required_unless_alpha_is_one(classification_data):
    x, _ = classification_data
    teacher = _teacher()
    distiller = tfsparse.Distiller(_student_of(teacher), teacher, alpha=0.5)
    distiller.compile("sgd", _loss())
    with pytest.raises(ValueError, match="argument `y`.*alpha=1"):
        distiller.fit(x, epochs=1, verbose=0)

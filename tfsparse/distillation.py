"""`Distiller`: train a pruned student on labels plus its dense teacher's outputs.

Knowledge distillation (Hinton et al. 2015) is the cheapest accuracy recovery
for pruning: the dense model you started from becomes the teacher, and the
student (the same model, being pruned) learns from the teacher's softened
outputs as well as from the labels. `Distiller` is a `keras.Model` that wraps
the two, so everything else stays plain Keras: `compile` takes the student's
loss and metrics, `fit` takes the usual data and any tfsparse strategy (the
strategy prunes the student only: `Strategy.target_model`), and the result is
`distiller.student`, a plain model with nothing of the teacher in it.

Loss per batch, with temperature `T` and weight `alpha`:

    (1 - alpha) * compiled_loss(y, student(x))
      + alpha * T**2 * KL(softmax(teacher(x) / T) || softmax(student(x) / T))

With `alpha=1` the labels are not needed (`fit(x)` with no `y`): the student
only imitates the teacher (for example on unlabelled images). The teacher is
frozen: the constructor sets `teacher.trainable = False` (so clone the
student from it before, or set it back after), and it is called with
`training=False`. Models that end in a softmax are handled (their
log-probabilities stand in for logits).

Example:

>>> import keras, numpy as np, tfsparse
>>> teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
>>> student = keras.models.clone_model(teacher)
>>> distiller = tfsparse.Distiller(student, teacher, alpha=0.5, temperature=2.0)
>>> distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.5, begin_step=0, end_step=2, frequency=1)
>>> x, y = np.random.default_rng(0).random((16, 8)), np.zeros(16, "int32")
>>> _ = distiller.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[gmp])
>>> float(tfsparse.sparsity_report(distiller.student).sparsity)
0.5
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tfsparse.errors import invalid_argument as _invalid
from tfsparse.training import outputs_probabilities



def _check_model(argument, model):
    if not isinstance(model, keras.Model):
        raise _invalid(argument, "a keras.Model", type(model).__name__)
    return model


def distillation_loss(teacher_logits, student_logits, temperature):
    """`T**2 * KL(softmax(t / T) || softmax(s / T))`, averaged over the batch.

    >>> import numpy as np
    >>> float(distillation_loss(np.array([[1.0, 2.0]]), np.array([[1.0, 2.0]]), 2.0))
    0.0
    """
    teacher = ops.log_softmax(ops.convert_to_tensor(teacher_logits, "float32") / temperature, axis=-1)
    student = ops.log_softmax(ops.convert_to_tensor(student_logits, "float32") / temperature, axis=-1)
    divergence = ops.sum(ops.exp(teacher) * (teacher - student), axis=-1)
    return ops.mean(divergence) * temperature**2


def pruning_target_of(model):
    """The model whose weights are pruned when `model` trains: its `pruning_target` (a Distiller's student) or itself.

    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> pruning_target_of(model) is model
    True
    """
    return getattr(model, "pruning_target", model)


def _logits(outputs, model):
    """The model's outputs as logits: log-probabilities for a model ending in softmax."""
    return ops.log(ops.maximum(outputs, 1e-7)) if outputs_probabilities(model) else outputs


@keras.saving.register_keras_serializable(package="tfsparse")
class Distiller(keras.Model):
    """A student trained on labels and a frozen teacher's softened outputs.

    Args:
        student: The model to train (and prune); a `keras.Model` with one
            output of class scores (logits or softmax probabilities).
        teacher: The model to imitate, usually the dense model the student
            started from; frozen here (`teacher.trainable = False`). Its
            output shape must match the student's.
        alpha: Weight of the distillation term, in [0, 1]; `1` means no
            label loss (labels optional). Defaults to `0.5`.
        temperature: Softmax temperature `T > 0` of the distillation term.
            Defaults to `4.0`.

    Raises:
        ValueError: for a non-model, output shapes that differ, `alpha`
            outside [0, 1] or `temperature <= 0`.
    """

    def __init__(self, student, teacher, *, alpha=0.5, temperature=4.0, **kwargs):
        super().__init__(**kwargs)
        self.student = _check_model("student", student)
        self.teacher = _check_model("teacher", teacher)
        if tuple(student.output_shape[1:]) != tuple(teacher.output_shape[1:]):
            raise _invalid("teacher", f"a model whose outputs match the student's {tuple(student.output_shape)}",
                           f"{teacher.name} with outputs {tuple(teacher.output_shape)}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise _invalid("alpha", "a float in [0, 1]", alpha)
        if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                or not math.isfinite(temperature) or temperature <= 0):
            raise _invalid("temperature", "a float > 0 (typically 2 to 8)", temperature)
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.teacher.trainable = False

    @property
    def pruning_target(self):
        """The model tfsparse strategies prune: the student."""
        return self.student

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None and self.alpha < 1:
            raise _invalid("y", f"labels, or alpha=1 to distill without them (alpha={self.alpha})", None)
        teacher = self.teacher(x, training=False)
        soft = distillation_loss(_logits(teacher, self.teacher), _logits(y_pred, self.student), self.temperature)
        extra = ops.sum([ops.sum(loss) for loss in self.losses]) if self.losses else 0.0  # e.g. l0's penalty
        if self.alpha == 1:
            return soft + extra
        total = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return (1 - self.alpha) * (total - extra) + self.alpha * soft + extra  # `extra` is not down-weighted

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if y is None:  # unlabelled distillation: only the loss is known
            return {metric.name: metric.result() for metric in self.metrics if metric.name == "loss"}
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        return {
            **super().get_config(),
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "alpha": self.alpha,
            "temperature": self.temperature,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        student = keras.saving.deserialize_keras_object(config.pop("student"))
        teacher = keras.saving.deserialize_keras_object(config.pop("teacher"))
        return cls(student, teacher, **config)

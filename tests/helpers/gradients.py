"""Test helper: the gradient of a scalar with respect to one `keras.Variable`, on every Keras 3 backend.

TensorFlow records `fn()` on a `tf.GradientTape`; JAX differentiates `fn`
evaluated statelessly, with the variable's value as the argument (a
`keras.StatelessScope` that also collects the losses layers add, so
`layer.losses` works inside `fn`); PyTorch uses `torch.autograd.grad` on the
variable's tensor.

Example:

>>> import keras
>>> v = keras.Variable([1.0, -2.0])
>>> gradient(lambda: keras.ops.sum(v * v), v).tolist()
[2.0, -4.0]
"""

import keras
import numpy as np


def gradient(fn, variable):
    """`d fn() / d variable` as a float NumPy array; `fn` takes no argument and reads `variable`."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = fn()
        return np.asarray(keras.ops.convert_to_numpy(tape.gradient(value, variable.value)))
    if backend == "jax":
        import jax

        def stateless(value):
            with keras.StatelessScope(state_mapping=[(variable, value)], collect_losses=True):
                return fn()

        return np.asarray(jax.grad(stateless)(variable.value))
    if backend == "torch":
        import torch

        (grad,) = torch.autograd.grad(fn(), variable.value)
        return grad.detach().cpu().numpy()
    raise NotImplementedError(f"no gradient helper for the {backend!r} backend")

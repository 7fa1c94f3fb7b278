"""Test helper: a built subclassed model (no layer graph), for the errors of graph-based tools."""

import keras


class _Sub(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x):
        return self.dense(x)


def built_subclassed_model():
    model = _Sub()
    model.build((None, 3))
    return model

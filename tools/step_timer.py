"""`StepTimer`: wall time per training batch, for the benchmark tools.

Example:

>>> import keras, numpy as np
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> model.compile("sgd", "mse")
>>> timer = StepTimer()
>>> _ = model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=2, verbose=0, callbacks=[timer])
>>> len(timer.times)
2
"""

import time

import keras


class StepTimer(keras.callbacks.Callback):
    """Records wall time per training batch (seconds) in `times`."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)

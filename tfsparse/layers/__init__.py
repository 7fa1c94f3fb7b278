"""Serializable Keras layers that some strategies insert into models.

A public namespace: each layer lives with its strategy (`L0Gate` in
`tfsparse.strategies.l0.gate`). Importing this package registers them with
Keras (`keras.saving.register_keras_serializable(package="tfsparse")`), so a
saved `.keras` file that contains them loads, and registers the finalizers
that fold them into the weights (`tfsparse.strategies.l0.fold`). Mask-only
strategies such as GMP insert no layers.
"""

from tfsparse.strategies.l0 import L0Gate

__all__ = ["L0Gate"]

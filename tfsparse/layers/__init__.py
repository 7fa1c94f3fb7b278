"""Serializable Keras layers that some strategies insert into models.

Importing this package registers them with Keras
(`keras.saving.register_keras_serializable(package="tfsparse")`), so a saved
`.keras` file that contains them loads. Mask-only strategies such as GMP
insert no layers.
"""

from tfsparse.layers.l0_gate import L0Gate

# Registers the finalizer that folds L0 gates, wherever a model can hold them.
from tfsparse import l0_fold as _l0_fold  # noqa: E402,F401

__all__ = ["L0Gate"]

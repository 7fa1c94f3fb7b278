"""Serializable Keras layers that some strategies insert into models.

Importing this package registers them with Keras
(`keras.saving.register_keras_serializable(package="tfsparse")`), so a saved
`.keras` file that contains them loads. Mask-only strategies such as GMP
insert no layers.
"""

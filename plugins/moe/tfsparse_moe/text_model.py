"""The reference MoE text classifier and its bag-of-words baseline.

`moe_text_classifier` is a small pre-norm transformer encoder over int32
token ids (0 = padding, masked throughout): token + learned position
embeddings, then `num_layers` blocks of multi-head self-attention and an
`MoE` feed-forward layer (named `moe_0`, `moe_1`, ...), each with a
residual connection, a final LayerNormalization, masked mean pooling and
a Dense layer to `num_classes` logits.

`bow_classifier` is the baseline: logistic regression (one Dense layer) on
the token counts of `bag_of_words(ids, vocab_size)`.

Example:

>>> import numpy as np
>>> from tfsparse_moe.text_model import moe_text_classifier
>>> model = moe_text_classifier(vocab_size=50, sequence_length=6, embed_dim=8, num_heads=2, hidden_units=16)
>>> [layer.name for layer in model.layers if type(layer).__name__ == "MoE"]
['moe_0', 'moe_1']
>>> model(np.array([[5, 7, 9, 0, 0, 0]], "int32")).shape[-1]
2
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from tfsparse_moe.layer import MoE


@keras.saving.register_keras_serializable(package="tfsparse_moe")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus a learned position embedding; masks id 0.

    Args:
        vocab_size: Ids in use (padding included).
        sequence_length: Positions (the input length).
        embed_dim: Embedding width.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, *, vocab_size, sequence_length, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.sequence_length, self.embed_dim = int(vocab_size), int(sequence_length), int(embed_dim)
        self.tokens = layers.Embedding(self.vocab_size, self.embed_dim, name="tokens")
        self.positions = layers.Embedding(self.sequence_length, self.embed_dim, name="positions")

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((self.sequence_length,))

    def call(self, inputs):
        length = ops.shape(inputs)[-1]
        return self.tokens(inputs) + self.positions(ops.arange(length))

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.embed_dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "sequence_length": self.sequence_length,
                "embed_dim": self.embed_dim}


def moe_text_classifier(*, vocab_size, sequence_length=48, embed_dim=32, num_heads=2, num_layers=2, num_experts=8,
                        hidden_units=64, top_k=2, activation="gelu", dropout=0.4, num_classes=2,
                        load_balance_weight=0.01, router_z_loss_weight=0.001, seed=0):
    """Builds the transformer encoder classifier with MoE feed-forward layers (see the module docstring).

    Args:
        vocab_size: Ids in use (`Vocabulary.size`).
        sequence_length: Input length. Defaults to `48`.
        embed_dim: Model width. Defaults to `32`.
        num_heads: Attention heads. Defaults to `2`.
        num_layers: Encoder blocks. Defaults to `2`.
        num_experts: Experts per MoE layer. Defaults to `8`.
        hidden_units: Hidden width of each expert. Defaults to `64`.
        top_k: Experts per token. Defaults to `2`.
        activation: Expert activation (`gelu`, `relu`, `swiglu`). Defaults to `"gelu"`.
        dropout: Dropout rate (the data set is small). Defaults to `0.4`.
        num_classes: Output logits. Defaults to `2`.
        load_balance_weight: `MoE` load-balancing loss weight. Defaults to `0.01`.
        router_z_loss_weight: `MoE` router z-loss weight. Defaults to `0.001`.
        seed: Seed of the MoE initializers. Defaults to `0`.

    Returns:
        A Functional `keras.Model` from int32 ids `[batch, sequence_length]` to logits.
    """
    inputs = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    x = TokenAndPositionEmbedding(vocab_size=vocab_size, sequence_length=sequence_length, embed_dim=embed_dim,
                                  name="embedding")(inputs)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    for index in range(num_layers):
        h = layers.LayerNormalization(epsilon=1e-5, name=f"attention_norm_{index}")(x)
        h = layers.MultiHeadAttention(num_heads, embed_dim // num_heads, dropout=dropout,
                                      name=f"attention_{index}")(h, h)
        x = layers.Add(name=f"attention_residual_{index}")([x, layers.Dropout(dropout)(h)])
        h = layers.LayerNormalization(epsilon=1e-5, name=f"moe_norm_{index}")(x)
        h = MoE(num_experts=num_experts, hidden_units=hidden_units, top_k=top_k, activation=activation,
                load_balance_weight=load_balance_weight, router_z_loss_weight=router_z_loss_weight,
                seed=None if seed is None else seed + 1000 * index, name=f"moe_{index}")(h)
        x = layers.Add(name=f"moe_residual_{index}")([x, layers.Dropout(dropout)(h)])
    x = layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="moe_text")


def bag_of_words(ids, vocab_size) -> np.ndarray:
    """`[N, vocab_size]` float32 token counts of id rows (padding and unknown ids not counted)."""
    ids = np.asarray(ids)
    counts = np.zeros((ids.shape[0], vocab_size), np.float32)
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    np.add.at(counts, (rows, ids.ravel()), 1.0)
    counts[:, :2] = 0.0
    return counts


def bow_classifier(*, vocab_size, num_classes=2, l2=1e-4):
    """Logistic regression on token counts: one Dense layer with L2 regularization."""
    inputs = keras.Input((vocab_size,), name="token_counts")
    outputs = layers.Dense(num_classes, kernel_regularizer=keras.regularizers.L2(l2), name="logits")(inputs)
    return keras.Model(inputs, outputs, name="bag_of_words")

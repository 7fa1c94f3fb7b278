"""The reference Mixture-of-Experts model: a small transformer encoder for movie-review sentiment.

A model source for the command line and the benchmarks
(`models/moe_text.py:moe_text`). The layers, the tokenizer and the data live
in the `tfsparse-moe` plugin (`plugins/moe`), so that the installed
distribution is self-contained: `moe_text` builds
`tfsparse_moe.moe_text_classifier` (token + position embeddings, two blocks
of self-attention and an `MoE` feed-forward layer with E = 8 experts and
top-2 routing, mean pooling, 2 logits) over int32 token ids that
`tfsparse_moe.Vocabulary` makes outside the model, and `load_data` gives
the seeded split of the 10,605 movie-review snippets of the vaderSentiment
archive (valence > 0 is positive) encoded with the training split's
vocabulary. Training it: `python -m tfsparse_moe.reference` (a few minutes
on 2 cores, with the bag-of-words baseline).

Example:

>>> from tfsparse.model_source import load_model_source
>>> model = load_model_source("models/moe_text.py:moe_text", vocab_size=100)
>>> model.input.dtype, model.output_shape, sorted(layer.num_experts for layer in model.layers
...                                                if type(layer).__name__ == "MoE")
('int32', (None, 2), [8, 8])
"""

from tfsparse_moe.reference import SEQUENCE_LENGTH, encoded_reviews
from tfsparse_moe.text_model import moe_text_classifier


def moe_text(vocab_size=8000, num_classes=2, sequence_length=SEQUENCE_LENGTH, num_experts=8, top_k=2, **kwargs):
    """The reference classifier (`tfsparse_moe.moe_text_classifier` with E = 8, top-2 routing)."""
    return moe_text_classifier(vocab_size=vocab_size, num_classes=num_classes, sequence_length=sequence_length,
                               num_experts=num_experts, top_k=top_k, **kwargs)


def load_data(sequence_length=SEQUENCE_LENGTH, seed=0):
    """`(vocabulary, (x_train, y_train), (x_test, y_test))`: the snippets as int32 ids (see the module docstring)."""
    return encoded_reviews(sequence_length=sequence_length, seed=seed)

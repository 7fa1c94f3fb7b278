"""`Vocabulary`: word tokenization into integer ids, outside the model.

Texts are lowercased and split into words (letters and digits, with an
inner apostrophe: `don't`) and the punctuation marks `!` and `?`. Id 0 is
padding, id 1 an unknown word; the vocabulary holds the training split's
words seen at least `min_count` times, most frequent first. The model (and
its TFLite file) takes the int32 ids, so tokenization stays in Python.

Example:

>>> from tfsparse_moe.tokenizer import Vocabulary, tokenize
>>> tokenize("A gorgeous, witty film -- isn't it?")
['a', 'gorgeous', 'witty', 'film', "isn't", 'it', '?']
>>> vocab = Vocabulary.fit(["good film", "bad film", "good"], min_count=2)
>>> vocab.words, vocab.encode(["good bad film"], length=5).tolist()
(['film', 'good'], [[3, 1, 2, 0, 0]])
>>> Vocabulary.from_config(vocab.get_config()).words == vocab.words
True
"""

from __future__ import annotations

import collections
import re

import numpy as np

PAD, UNKNOWN = 0, 1
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list:
    """The lowercased words and `!`/`?` marks of `text`."""
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Maps words to ids (0: padding, 1: unknown, then `words` in order).

    Args:
        words: The known words, most frequent first.
    """

    def __init__(self, words):
        self.words = list(words)
        self._ids = {word: index + 2 for index, word in enumerate(self.words)}

    @classmethod
    def fit(cls, texts, *, max_size=20000, min_count=2):
        """The vocabulary of `texts`: words seen `min_count` times or more, at most `max_size` of them.

        Ties in frequency are broken alphabetically, so the result is deterministic.
        """
        counts = collections.Counter(word for text in texts for word in tokenize(text))
        ranked = sorted((word for word, count in counts.items() if count >= min_count),
                        key=lambda word: (-counts[word], word))
        return cls(ranked[:max_size])

    @property
    def size(self) -> int:
        """Ids in use, padding and unknown included (the embedding's `input_dim`)."""
        return len(self.words) + 2

    def encode(self, texts, *, length) -> np.ndarray:
        """`[len(texts), length]` int32 ids, truncated or padded with 0 at the end."""
        ids = np.zeros((len(texts), length), np.int32)
        for row, text in enumerate(texts):
            tokens = [self._ids.get(word, UNKNOWN) for word in tokenize(text)][:length]
            ids[row, :len(tokens)] = tokens
        return ids

    def get_config(self) -> dict:
        return {"words": list(self.words)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

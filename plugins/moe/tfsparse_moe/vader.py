"""The movie-review sentiment snippets of the VADER paper (Hutto & Gilbert 2014).

The vaderSentiment 3.3.2 source archive holds
`additional_resources/hutto_ICWSM_2014.tar.gz`, whose
`movieReviewSnippets_GroundTruth.txt` has 10,605 Rotten-Tomatoes review
snippets, tab-separated `id, mean human valence in [-4, 4], text`. A snippet
is positive (label 1) when its valence is > 0 (5,242 of them), otherwise
negative (label 0, 5,363). `load_movie_reviews` reads it from the archive
that `bash tools/setup.sh` downloads into `~/.cache/tfsparse/vader/` (this
module never downloads anything) and splits it with a fixed seeded
permutation.

Example:

>>> from tfsparse_moe.vader import load_movie_reviews
>>> try:
...     reviews = load_movie_reviews()
... except FileNotFoundError:  # setup not run: nothing to show
...     reviews = None
>>> reviews is None or (len(reviews.train_texts), len(reviews.test_texts)) == (8484, 2121)
True
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile

import numpy as np

ARCHIVE_NAME = "vaderSentiment-3.3.2.tar.gz"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "tfsparse", "vader")
_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
NUM_SNIPPETS = 10605


@dataclasses.dataclass(frozen=True)
class MovieReviews:
    """A seeded train/test split of the snippets.

    Attributes:
        train_texts, test_texts: Lists of strings.
        train_labels, test_labels: int32 arrays, 1 = positive (valence > 0).
        train_valence, test_valence: float32 arrays, the mean human valence.
    """

    train_texts: list
    train_labels: np.ndarray
    test_texts: list
    test_labels: np.ndarray
    train_valence: np.ndarray
    test_valence: np.ndarray

    def __repr__(self):
        return (f"MovieReviews({len(self.train_texts)} train / {len(self.test_texts)} test snippets, "
                f"{float(np.mean(self.train_labels)):.3f} positive in train)")


def archive_path(cache_dir=None) -> str:
    """Where the vaderSentiment source archive is expected."""
    return os.path.join(os.path.expanduser(cache_dir or DEFAULT_CACHE_DIR), ARCHIVE_NAME)


def read_snippets(cache_dir=None):
    """`(texts, valence)` of all 10,605 snippets, in file order.

    Raises:
        FileNotFoundError: if the archive is missing (run `bash tools/setup.sh`).
        ValueError: if the archive is not the expected one.
    """
    path = archive_path(cache_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"The movie-review sentiment data is missing: {path} does not exist. Run `bash tools/setup.sh` from "
            "the tfsparse checkout (it downloads the vaderSentiment 3.3.2 source archive with `pip download "
            f"--no-deps --no-binary :all: vaderSentiment==3.3.2` into {os.path.dirname(path)}); tfsparse-moe "
            "never downloads at run time."
        )
    try:
        with tarfile.open(path) as outer:
            inner_name = next(name for name in outer.getnames() if name.endswith(_INNER))
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(inner_name).read())) as inner:
                text = inner.extractfile(_MEMBER).read().decode("utf-8")
    except (tarfile.TarError, StopIteration, KeyError, OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"Invalid value received for argument `cache_dir`. Expected {path} to be the vaderSentiment 3.3.2 "
            f"source archive with {_INNER} inside ({type(error).__name__}: {error}); delete it and run "
            f"`bash tools/setup.sh` again. Received: cache_dir={cache_dir!r}"
        ) from error
    texts, valence = [], []
    for line in text.splitlines():
        if line.strip():
            _, score, snippet = line.split("\t", 2)
            texts.append(snippet.strip())
            valence.append(float(score))
    if len(texts) != NUM_SNIPPETS:
        raise ValueError(f"Invalid value received for argument `cache_dir`. Expected {NUM_SNIPPETS} snippets in "
                         f"{path}, found {len(texts)}. Received: cache_dir={cache_dir!r}")
    return texts, np.asarray(valence, np.float32)


def load_movie_reviews(*, cache_dir=None, test_fraction=0.2, seed=0) -> MovieReviews:
    """The snippets with binary labels, split by a permutation seeded with `seed`.

    Args:
        cache_dir: Directory holding the archive. Defaults to `None`
            (`~/.cache/tfsparse/vader`).
        test_fraction: Fraction of snippets in the test split, in (0, 1).
            Defaults to `0.2`.
        seed: Seed of the split. Defaults to `0`.

    Returns:
        A `MovieReviews`.

    Raises:
        FileNotFoundError: if the archive is missing (run `bash tools/setup.sh`).
        ValueError: for a `test_fraction` outside (0, 1) or a wrong archive.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, float) or not 0 < test_fraction < 1:
        raise ValueError("Invalid value received for argument `test_fraction`. Expected a float in (0, 1). "
                         f"Received: test_fraction={test_fraction!r}")
    texts, valence = read_snippets(cache_dir)
    order = np.random.default_rng(seed).permutation(len(texts))
    test_size = int(round(test_fraction * len(texts)))
    test, train = order[:test_size], order[test_size:]
    labels = (valence > 0).astype(np.int32)
    return MovieReviews(train_texts=[texts[i] for i in train], train_labels=labels[train],
                        test_texts=[texts[i] for i in test], test_labels=labels[test],
                        train_valence=valence[train], test_valence=valence[test])

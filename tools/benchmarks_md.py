"""Shared by the benchmark tools: BENCHMARKS.md sections and the sparse encoding limit.

Each tool owns one `## <title>` section of BENCHMARKS.md and replaces only
that one (`write_section`), so tools can be rerun in any order.

The encoding limit is the smallest `.tflite` the TFLite sparse encoding can
give: every pruned weight tensor stored as a float32 value plus one index per
non-zero (uint8 when the tensor's innermost dimension, its input channels, is
at most 256, uint16 up to 65536), or dense where that is not smaller; the
per-row segment arrays and the file's bookkeeping are not counted (see
`shared/design/xnnpack-sparse.md`, "Sparse tensor size").

Example:

>>> import numpy as np
>>> kernel = np.zeros((1, 1, 300, 10), np.float32)  # a 1x1 conv: 300 input channels, so uint16 indices
>>> kernel[0, 0, :30, 0] = 1.0
>>> limit = encoding_limit([kernel])
>>> limit.nonzeros, limit.dense_bytes, limit.sparse_bytes, limit.file_bytes(20000)
(30, 12000, 180, 8180)
>>> list(subsections("intro\\n### A\\n| table |\\n### B\\ntext\\n"))
['A', 'B']
>>> print(replace_section("# Benchmarks\\n\\n## Core\\nold\\n", "Other", "new"), end="")
# Benchmarks
<BLANKLINE>
## Core
old
<BLANKLINE>
## Other
new
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re

import numpy as np

from tfsparse.outputs import write_text

#: The repository's BENCHMARKS.md.
BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BENCHMARKS.md")
HEADER = "# Benchmarks\n\nEvery figure here was measured by the command given with it.\n"
FLOAT32_BYTES = 4


def _section_pattern(title):
    return re.compile(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", re.S | re.M)


def replace_section(text, title, body) -> str:
    """`text` with its `## title` section (up to the next `## `) replaced by `body`, or appended."""
    block = f"## {title}\n{body.rstrip()}\n"
    pattern = _section_pattern(title)
    if pattern.search(text):
        return pattern.sub(lambda _: block + "\n", text).rstrip() + "\n"
    header = text if text.strip() else HEADER
    return header.rstrip() + "\n\n" + block


def write_section(title, body, path=BENCHMARKS) -> None:
    """Replaces (or appends) the `## title` section of the markdown file `path`, atomically."""
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            old = handle.read()
    write_text(path, replace_section(old, title, body))


def read_section(title, path=BENCHMARKS) -> str:
    """The body of the `## title` section of the markdown file `path` ("" if either is missing)."""
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as handle:
        match = _section_pattern(title).search(handle.read())
    return match.group(1) if match else ""


def subsections(body) -> dict:
    """`{heading: text}` of the `### heading` subsections of a section body, in order (text includes the heading)."""
    parts = re.split(r"^(?=### )", body, flags=re.M)
    return {part.splitlines()[0][4:].strip(): part.rstrip() + "\n" for part in parts if part.startswith("### ")}


def index_bytes(innermost) -> int:
    """Bytes of one sparse index for a tensor whose innermost dimension is `innermost`."""
    return 1 if innermost <= 256 else 2 if innermost <= 65536 else 4


@dataclasses.dataclass(frozen=True)
class EncodingLimit:
    """What a set of pruned float32 weight tensors costs, dense and at the sparse encoding limit.

    Attributes:
        nonzeros: Non-zero values over the tensors.
        dense_bytes: Their bytes stored dense (4 per value).
        sparse_bytes: Their bytes at the limit: per tensor, 4 + index bytes
            per non-zero, or dense where that is not smaller.
    """

    nonzeros: int
    dense_bytes: int
    sparse_bytes: int

    @property
    def uint8_bytes(self) -> int:
        """5 bytes per non-zero (float32 value + uint8 index)."""
        return 5 * self.nonzeros

    @property
    def uint16_bytes(self) -> int:
        """6 bytes per non-zero (float32 value + uint16 index)."""
        return 6 * self.nonzeros

    def file_bytes(self, dense_file_bytes) -> int:
        """The limit for a whole file: the dense fp32 file with these tensors at their limit."""
        return int(dense_file_bytes) - self.dense_bytes + self.sparse_bytes


def encoding_limit(kernels) -> EncodingLimit:
    """The `EncodingLimit` of Keras conv or dense kernels (arrays).

    Args:
        kernels: Float32 kernels in Keras layout (`(..., in, out)`); TFLite
            stores them with the input channels (`shape[-2]`) innermost.

    Returns:
        An `EncodingLimit`.
    """
    nonzeros = dense = sparse = 0
    for kernel in kernels:
        kernel = np.asarray(kernel)
        count = int(np.count_nonzero(kernel))
        size = FLOAT32_BYTES * kernel.size
        nonzeros += count
        dense += size
        sparse += min(size, count * (FLOAT32_BYTES + index_bytes(kernel.shape[-2] if kernel.ndim > 1 else kernel.size)))
    return EncodingLimit(nonzeros, dense, sparse)


def parse_list(text, kind, name, example):
    """`text` split at commas into `kind` values, for an argparse option `--name` (`example` shows the form)."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"--{name} expects a comma-separated list, e.g. {example}; received {text!r}")
    return values

"""Reading IDX files (the MNIST / Fashion-MNIST format), gzipped or not.

An IDX file starts with two zero bytes, a type byte, a byte holding the number
of dimensions, then one big-endian uint32 per dimension, then the data in C
order (big-endian for multi-byte types).

Example:

>>> import gzip, os, tempfile
>>> import numpy as np
>>> from tfsparse.data.idx import read_idx, write_idx
>>> path = os.path.join(tempfile.mkdtemp(), "tiny-idx2-ubyte.gz")
>>> write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
>>> read_idx(path).tolist()
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

#: IDX type byte -> big-endian numpy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}


def _corrupt(path, problem) -> ValueError:
    return ValueError(
        f"Invalid IDX file {path}: {problem}. The file is corrupt or not an IDX "
        "file; download or reinstall it (for Fashion-MNIST: "
        "`apt-get install --reinstall -y dataset-fashion-mnist`)."
    )


def _read_bytes(path) -> bytes:
    if not str(path).endswith(".gz"):
        with open(path, "rb") as file:
            return file.read()
    try:
        with gzip.open(path, "rb") as file:
            return file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise _corrupt(path, f"gzip decompression failed ({type(error).__name__}: {error})") from error


def read_idx(path) -> np.ndarray:
    """Reads an IDX file (`.gz` files are decompressed) into a numpy array.

    Args:
        path: The file; names ending in `.gz` are read with gzip.

    Returns:
        An array with the file's shape and native-endian dtype.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the magic number, type, dimensions or size are wrong
            (truncated or trailing data).

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from tfsparse.data.idx import read_idx, write_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    >>> read_idx(path)
    array([3, 1, 4], dtype=uint8)
    """
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0":
        raise _corrupt(path, f"bad magic number {data[:4].hex() or '(empty file)'}; expected 0000TTNN")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_TYPES:
        raise _corrupt(path, f"unknown data type byte 0x{type_code:02x}; expected one of "
                             f"{', '.join(f'0x{c:02x}' for c in IDX_TYPES)}")
    if ndim == 0:
        raise _corrupt(path, "zero dimensions in the header")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _corrupt(path, f"truncated header ({len(data)} bytes; {ndim} dimensions need {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise _corrupt(path, f"{what}: shape {shape} needs {expected} data bytes, found {actual}")
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable native-endian copy


def write_idx(path, array) -> None:
    """Writes `array` as an IDX file (gzipped when `path` ends in `.gz`).

    Args:
        path: The file to write.
        array: An array of uint8, int8, int16, int32, float32 or float64 with
            at least one dimension.

    Raises:
        ValueError: if the dtype or rank cannot be stored as IDX.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from tfsparse.data.idx import read_idx, write_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "x-idx1-float.gz")
    >>> write_idx(path, np.array([0.5], dtype=np.float32))
    >>> float(read_idx(path)[0])
    0.5
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None or not 1 <= array.ndim <= 255:
        raise ValueError(
            "Invalid value received for argument `array`. Expected an array of "
            "uint8, int8, int16, int32, float32 or float64 with 1 to 255 "
            f"dimensions. Received: array with dtype={array.dtype}, ndim={array.ndim}"
        )
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(IDX_TYPES[code]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(os.fspath(path), "wb") as file:
        file.write(payload)

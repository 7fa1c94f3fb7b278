"""IDX parsing on small synthetic files (hand-built headers, gzipped or not)."""

import gzip
import struct

import numpy as np
import pytest

from tfsparse.data import read_idx, write_idx


def _idx(type_code, shape, payload):
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def _write(path, content, gz=True):
    if gz:
        with gzip.open(path, "wb") as file:
            file.write(content)
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("gz", [True, False])
def test_reads_uint8_images(tmp_path, gz):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8)
    path = _write(tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte"), _idx(0x08, (2, 3, 4), pixels.tobytes()), gz)
    array = read_idx(path)
    assert array.dtype == np.uint8 and array.shape == (2, 3, 4)
    np.testing.assert_array_equal(array, pixels.reshape(2, 3, 4))
    array[0, 0, 0] = 7  # a writable copy, not a view of the file buffer


def test_multibyte_types_are_big_endian(tmp_path):
    path = _write(tmp_path / "i.gz", _idx(0x0C, (3,), struct.pack(">3i", 1, -2, 70000)))
    array = read_idx(path)
    assert array.tolist() == [1, -2, 70000] and array.dtype == np.int32 and array.dtype.isnative
    path = _write(tmp_path / "f.gz", _idx(0x0D, (1, 2), struct.pack(">2f", 0.25, -3.5)))
    assert read_idx(path).tolist() == [[0.25, -3.5]]


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_write_read_round_trip(tmp_path, dtype):
    sign = 1 if dtype == "uint8" else -1
    array = (sign * np.arange(24).reshape(2, 3, 4)).astype(dtype)
    write_idx(tmp_path / "a.gz", array)
    result = read_idx(tmp_path / "a.gz")
    assert result.dtype == array.dtype
    np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "bad magic number"),
        (b"\x08\x03\x00\x00" + b"\0" * 20, "bad magic number"),
        (bytes([0, 0, 0x42, 1]) + struct.pack(">I", 1) + b"\0", "unknown data type byte 0x42"),
        (bytes([0, 0, 0x08, 0]), "zero dimensions"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">I", 5), "truncated header"),
        (_idx(0x08, (2, 5), b"\0" * 9), r"truncated: shape \(2, 5\) needs 10 data bytes, found 9"),
        (_idx(0x08, (2,), b"\0" * 3), "trailing bytes"),
    ],
)
def test_bad_files_are_rejected_with_the_problem(tmp_path, content, problem):
    path = _write(tmp_path / "bad-idx.gz", content)
    with pytest.raises(ValueError, match=problem) as error:
        read_idx(path)
    assert str(path) in str(error.value) and "reinstall" in str(error.value)


def test_truncated_gzip_stream(tmp_path):
    whole = gzip.compress(_idx(0x08, (100, 10), bytes(range(250)) * 4))
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="gzip decompression failed"):
        read_idx(path)


def test_not_gzip_despite_the_name(tmp_path):
    path = _write(tmp_path / "plain.gz", _idx(0x08, (1,), b"\1"), gz=False)
    with pytest.raises(ValueError, match="gzip decompression failed"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing.gz")


@pytest.mark.parametrize("array", [np.zeros(3, bool), np.zeros(3, np.uint16), np.float32(1)])
def test_write_rejects_unstorable_arrays(tmp_path, array):
    with pytest.raises(ValueError, match="Invalid value received for argument `array`"):
        write_idx(tmp_path / "a.gz", array)

"""Scaling, centred zero padding and channel replication."""

import numpy as np
import pytest

from tfsparse.data.preprocess import to_images


def test_uint8_is_scaled_and_gets_a_channel_axis():
    x = np.array([[[0, 51], [255, 102]]], dtype=np.uint8)
    out = to_images(x)
    assert out.shape == (1, 2, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, :, 0], [[0.0, 0.2], [1.0, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("size, before, after", [(32, 2, 2), (31, 1, 2), (28, 0, 0)])
def test_padding_is_centred_zeros(size, before, after):
    x = np.full((3, 28, 28), 255, np.uint8)
    out = to_images(x, image_size=size)
    assert out.shape == (3, size, size, 1)
    rows = out[0, :, size // 2, 0]
    assert rows[:before].sum() == 0 and rows[size - after:].sum() == 0
    assert (rows[before:size - after] == 1.0).all()
    np.testing.assert_array_equal(out[0, :, :, 0], out[0, :, :, 0].T)  # the same padding on both axes


def test_grayscale_is_replicated_to_three_channels():
    x = np.random.default_rng(0).integers(0, 256, (4, 5, 5, 1), dtype=np.uint8)
    out = to_images(x, channels=3)
    assert out.shape == (4, 5, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], out[..., 0])
    np.testing.assert_allclose(out[..., 0], x[..., 0] / 255.0, rtol=1e-6)


def test_rgb_is_kept():
    x = np.random.default_rng(0).random((2, 4, 4, 3))
    np.testing.assert_allclose(to_images(x, channels=3), x.astype(np.float32))


def test_image_size_smaller_than_the_source_is_an_error():
    with pytest.raises(ValueError, match=r"Expected at least the source image size 28x28.*image_size=28 or more.*"
                                         r"Received: image_size=16"):
        to_images(np.zeros((1, 28, 28), np.uint8), image_size=16)


def test_colour_images_cannot_change_channels():
    with pytest.raises(ValueError, match=r"has 3 channels. Pass channels=3.*Received: channels=1"):
        to_images(np.zeros((1, 4, 4, 3), np.uint8), channels=1)


@pytest.mark.parametrize("argument, value", [("image_size", 0), ("image_size", 2.5), ("channels", True),
                                             ("channels", -3)])
def test_bad_argument_values(argument, value):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{argument}`"):
        to_images(np.zeros((1, 4, 4), np.uint8), **{argument: value})


@pytest.mark.parametrize("x", [np.full((1, 2, 2), 300), np.full((1, 2, 2), -0.5), np.zeros((1, 2, 2), bool)])
def test_values_outside_the_supported_range(x):
    with pytest.raises(ValueError, match="Dataset 'data'"):
        to_images(x)


def test_integer_arrays_within_0_255_are_scaled_like_uint8():
    np.testing.assert_allclose(to_images(np.array([[[255, 0]]], np.int64))[0, 0, :, 0], [1.0, 0.0])

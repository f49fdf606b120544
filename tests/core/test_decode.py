import io

import numpy as np
import pytest
from PIL import Image

from conftest import lesion_like
from dermalens.core.decode import MAX_PIXELS, ImageDecodeError, decode_image
from dermalens.core.preprocess import Preprocessing, canonical, crop_to_aspect, prepare, shades_of_gray


def _bytes(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    image = Image.fromarray(lesion_like(1, (80, 40)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    rgb = decode_image(_bytes(image, "JPEG", exif=exif))
    assert rgb.shape == (80, 40, 3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA"])
def test_modes_become_rgb(mode):
    base = Image.fromarray(lesion_like(2))
    image = (
        base.convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257)
    )
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    rgb = decode_image(_bytes(image, fmt))
    assert rgb.dtype == np.uint8 and rgb.shape == (90, 120, 3)
    assert rgb.std() > 5


def test_transparent_palette_and_multiframe_gif():
    frames = [Image.fromarray(lesion_like(i)).convert("P") for i in range(3)]
    data = _bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], transparency=0)
    assert decode_image(data).shape == (90, 120, 3)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "empty"),
        (b"hello, this is text", "unsupported"),
        (b"%PDF-1.4 fake", "unsupported"),
        (_bytes(Image.fromarray(lesion_like(3)), "JPEG")[:300], "corrupt"),
        (_bytes(Image.fromarray(lesion_like(3)), "PNG")[:200], "corrupt"),
    ],
)
def test_bad_inputs_raise_with_kind(data, kind):
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data)
    assert err.value.kind == kind


def test_pixel_bomb_is_refused_without_decoding():
    side = int(np.sqrt(MAX_PIXELS)) + 100
    header = _bytes(Image.new("1", (side, side)), "PNG")
    with pytest.raises(ImageDecodeError) as err:
        decode_image(header)
    assert err.value.kind == "too_large"


def test_jpeg_draft_keeps_at_least_min_size():
    data = _bytes(Image.fromarray(lesion_like(4, (600, 450))), "JPEG")
    rgb = decode_image(data, min_size=(160, 120))
    assert rgb.shape == (225, 300, 3)  # decoded at 1/2, not 1/4 (150×112 would be below 160×120)


def test_arrays_and_float_input():
    assert decode_image(np.zeros((10, 12), np.uint8)).shape == (10, 12, 3)
    assert decode_image(np.ones((10, 12, 3), np.float32)).max() == 255


def test_preprocessing_shapes_and_constancy():
    spec = Preprocessing(input_size=(64, 48))
    wide = lesion_like(5, (300, 100))
    assert crop_to_aspect(wide, 4 / 3).shape == (100, 133, 3)
    assert canonical(wide, spec).shape == (48, 64, 3)
    x = prepare(wide, spec)
    assert x.shape == (3, 48, 64) and x.dtype == np.float32 and x.min() >= -1.01 and x.max() <= 1.01
    tinted = (lesion_like(6).astype(float) * [1.3, 1.0, 0.7]).clip(0, 255).astype(np.uint8)
    balanced = shades_of_gray(tinted).reshape(-1, 3).astype(float)
    means = balanced.mean(0)
    assert means.max() - means.min() < np.ptp(tinted.reshape(-1, 3).mean(0)) / 2

"""The working size makes the pixels the network sees independent of the camera's resolution."""

import numpy as np
import pytest
from PIL import Image

from conftest import lesion_like
from dermalens.core.preprocess import Preprocessing, resize_to_input


def _at(image: np.ndarray, width: int) -> np.ndarray:
    height = width * image.shape[0] // image.shape[1]
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def _textured(seed: int) -> np.ndarray:
    """A lesion with fine skin texture (detail that a 600-px photo keeps and a 200-px file loses)."""
    rng = np.random.default_rng(seed)
    texture = Image.fromarray(rng.integers(0, 256, (225, 300), dtype=np.uint8)).resize((1200, 900))
    base = lesion_like(seed, (1200, 900)).astype(float)
    return np.clip(base + 0.25 * (np.asarray(texture, dtype=float)[..., None] - 128), 0, 255).astype(np.uint8)


def test_same_field_of_view_at_two_resolutions_gives_nearly_the_same_input():
    original = _textured(7)
    spec = Preprocessing(input_size=(224, 168), working_size=(200, 150))
    legacy = Preprocessing(input_size=(224, 168))
    full, small = _at(original, 600), _at(original, 200)
    with_ws = np.abs(resize_to_input(full, spec).astype(int) - resize_to_input(small, spec)).mean()
    without = np.abs(resize_to_input(full, legacy).astype(int) - resize_to_input(small, legacy)).mean()
    assert with_ws < 0.65 * without  # the sharper 600-px copy is reduced to the 200-px look first


def test_working_size_leaves_small_images_and_round_trips():
    spec = Preprocessing(input_size=(64, 48), working_size=(100, 75))
    small = lesion_like(1, (80, 60))
    assert resize_to_input(small, spec).shape == (48, 64, 3)
    assert np.array_equal(
        resize_to_input(small, spec), resize_to_input(small, Preprocessing(input_size=(64, 48)))
    )
    assert Preprocessing.from_dict(spec.to_dict()) == spec
    assert Preprocessing.from_dict({"input_size": [64, 48]}).working_size is None  # older artifacts


def test_stretch_keeps_the_whole_frame_of_a_square_image():
    """A square image (Derm7pt, ISIC 2019, most exports) fed to a 4:3 input: the centre crop
    throws away its top and bottom eighths, where the lesion's border often is; stretching keeps
    every row (issue #17)."""
    square = np.full((96, 96, 3), 128, np.uint8)
    square[:8] = (250, 0, 0)  # a red band along the top edge
    square[-8:] = (0, 0, 250)  # a blue one along the bottom
    crop = resize_to_input(square, Preprocessing(input_size=(64, 48), resize="crop_to_aspect"))
    stretch = resize_to_input(square, Preprocessing(input_size=(64, 48), resize="stretch"))
    assert crop.shape == stretch.shape == (48, 64, 3)
    assert crop[:, :, 0].max() < 200 and crop[:, :, 2].max() < 200  # both bands cut away
    assert stretch[0, :, 0].min() > 200 and stretch[-1, :, 2].min() > 200  # both kept, at the edges
    wide = np.zeros((48, 64, 3), np.uint8)  # a 4:3 image: both modes give the same pixels
    assert np.array_equal(
        resize_to_input(wide, Preprocessing(input_size=(64, 48), resize="stretch")),
        resize_to_input(wide, Preprocessing(input_size=(64, 48), resize="crop_to_aspect")),
    )


def test_the_jpeg_path_makes_a_full_size_photo_look_like_a_small_training_file(tmp_path):
    """Issue #34: reduced to the working size *and* re-encoded at the training files' JPEG quality,
    a 600-px photo gives the network nearly the pixels of the same view saved as a 200-px q75 file."""
    import io

    from dermalens.core.preprocess import prepare

    original = _textured(3)
    full = _at(original, 600)
    buffer = io.BytesIO()
    Image.fromarray(_at(original, 600)).resize((200, 150), Image.Resampling.BILINEAR).save(
        buffer, format="JPEG", quality=75
    )
    small = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    path = Preprocessing(
        input_size=(192, 144), working_size=(200, 150), working_jpeg_quality=75, resize="stretch"
    )
    plain = Preprocessing(input_size=(192, 144), working_size=(200, 150), resize="stretch")
    gap_path = np.abs(resize_to_input(full, path).astype(int) - resize_to_input(small, path)).mean()
    gap_plain = np.abs(resize_to_input(full, plain).astype(int) - resize_to_input(small, plain)).mean()
    assert gap_path < 0.2 * gap_plain  # the same path: nearly identical (the encoder is deterministic)
    assert np.array_equal(
        resize_to_input(small, path), resize_to_input(small, plain)
    )  # small files untouched
    jpeg_file = tmp_path / "square.jpg"
    Image.fromarray(_at(original, 384)[:, :384]).save(jpeg_file, quality=90)
    assert path.decode_floor == (200, 150)  # draft decoding never goes below the working size
    assert prepare(jpeg_file, path).shape == (3, 144, 192)


def test_a_jpeg_quality_outside_1_to_95_is_refused():
    with pytest.raises(ValueError, match="1-95"):
        Preprocessing(working_size=(200, 150), working_jpeg_quality=100).validate()

"""Robust image decoding: whatever a user uploads becomes an RGB uint8 array, or a clear error.

Handles EXIF orientation, grayscale, palette/alpha (composited on white), 16-bit,
CMYK, multi-frame files (first frame) and decompression bombs (a pixel limit).
JPEG draft mode decodes large JPEGs at a reduced scale directly (much faster than
a full decode followed by a downscale), but never below `min_size`, so the model
still gets at least the resolution it was trained at.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dermalens.core.dicom import DicomError, dicom_pixels, is_dicom, read_dataset
from dermalens.core.formats import ACCEPTED_HELP, HEAD_BYTES, IMAGE_SUFFIXES, Sniffed, describe, sniff

__all__ = ["ACCEPTED_HELP", "IMAGE_SUFFIXES", "ImageDecodeError", "ImageInput", "decode_image", "identify"]

#: Largest image accepted, in pixels (a 12,000 × 8,000 photo); larger is refused, not decoded.
MAX_PIXELS = 100_000_000

ImageInput = str | os.PathLike[str] | bytes | Sniffed | Image.Image | np.ndarray[Any, Any]


class ImageDecodeError(ValueError):
    """An input that cannot be turned into an image; `kind` says why (the server's HTTP status),
    and `detail()` adds what to send instead. The one error type from the decoder to an API answer,
    a CLI row and a Python exception."""

    def __init__(self, message: str, kind: str = "corrupt") -> None:
        super().__init__(message)
        #: one of: "empty", "missing", "unsupported", "corrupt", "too_large"
        self.kind = kind

    def detail(self) -> str:
        """The message and what is accepted (not for a missing file, nor a too-large image, whose
        message gives the limit)."""
        return str(self) if self.kind in ("too_large", "missing") else f"{self}; send {ACCEPTED_HELP}"


def identify(data: bytes) -> str:
    """The accepted format of an image's bytes (its first `HEAD_BYTES` are enough), from its
    content; `ImageDecodeError` for an empty file or one that is not an accepted image, naming
    what it is ("a PDF document is not an accepted image")."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)", "empty")
    fmt = sniff(data)
    if fmt is None:
        raise ImageDecodeError(f"{describe(data)} is not an accepted image", "unsupported")
    return fmt


def _open(source: str | os.PathLike[str] | bytes | Sniffed) -> Image.Image:
    if isinstance(source, Sniffed):  # the upload check read its format: not again
        fmt = source.format
        stream: Any = io.BytesIO(source.data)
    elif isinstance(source, bytes):
        fmt = identify(source)
        stream = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"{path}: no such file", "missing")
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES + 1)
        try:
            fmt = identify(head)
        except ImageDecodeError as err:
            raise ImageDecodeError(f"{path}: {err}", err.kind) from None
        stream = path
    try:
        with _bomb_guard():
            image = Image.open(stream, formats=(fmt,))
    except UnidentifiedImageError:  # it starts like `fmt` but its header cannot be read: damaged
        raise ImageDecodeError(f"damaged {fmt} file (its header cannot be read)", "corrupt") from None
    except Image.DecompressionBombError as err:
        raise ImageDecodeError(f"image too large ({err}); limit {MAX_PIXELS:,} pixels", "too_large") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageDecodeError(f"cannot read image: {err}", "corrupt") from None
    if image.width * image.height > MAX_PIXELS:
        raise ImageDecodeError(
            f"image is {image.width}×{image.height} = {image.width * image.height:,} pixels; "
            f"limit {MAX_PIXELS:,}",
            "too_large",
        )
    if image.width < 8 or image.height < 8:
        raise ImageDecodeError(
            f"image is {image.width}×{image.height} pixels; at least 8×8 needed", "corrupt"
        )
    return image


class _bomb_guard:
    """Make PIL raise (not warn) above our own limit, for this call only."""

    def __enter__(self) -> None:
        self._saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2  # PIL raises at 2× this value

    def __exit__(self, *exc: object) -> None:
        Image.MAX_IMAGE_PIXELS = self._saved


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size else 0.0
        scaled = array * (255.0 / peak) if peak > 255 else array
        image = Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def decode_image(source: ImageInput, *, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a path, bytes, PIL image or array into an H×W×3 uint8 RGB array.

    `min_size` (width, height) enables JPEG draft mode: the JPEG is decoded at the
    smallest 1/2, 1/4 or 1/8 scale that is still at least that size.
    Raises `ImageDecodeError` with a user-readable message.
    """
    return decode_with_size(source, min_size=min_size)[0]


def decode_with_size(
    source: ImageInput, *, min_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """`decode_image`, plus the image's full upright (width, height) before any draft-mode
    reduction: what the server reports for an upload, from the one decode it makes."""
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source)
        return rgb, (rgb.shape[1], rgb.shape[0])
    if isinstance(source, Image.Image):
        rgb = np.asarray(_to_rgb(ImageOps.exif_transpose(source) or source))
        return rgb, (rgb.shape[1], rgb.shape[0])
    if is_dicom(source):
        return _decode_dicom(source)  # type: ignore[arg-type]
    image = _open(source)
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        width, height = image.size
        if image.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF says: shown turned by 90°
            width, height = height, width
        if min_size is not None and image.format == "JPEG":
            # EXIF rotation by 90° swaps axes: ask for the larger side in both directions.
            side = max(min_size)
            image.draft("RGB", (side, side))
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return np.asarray(_to_rgb(image)), (width, height)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageDecodeError(f"image too large ({err})", "too_large") from None
    except (OSError, SyntaxError, ValueError, IndexError, EOFError) as err:
        raise ImageDecodeError(f"corrupt or truncated image: {err}", "corrupt") from None


def _decode_dicom(source: str | os.PathLike[str] | bytes | Sniffed) -> tuple[np.ndarray, tuple[int, int]]:
    """A DICOM file's first frame as RGB, and its (width, height); its faults as `ImageDecodeError`."""
    try:
        rgb = _array_to_rgb(dicom_pixels(read_dataset(source), MAX_PIXELS))
    except DicomError as err:
        where = f"{source}: " if not isinstance(source, bytes) else ""
        raise ImageDecodeError(f"{where}{err}", err.kind) from None
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise ImageDecodeError(
            f"image is {rgb.shape[1]}×{rgb.shape[0]} pixels; at least 8×8 needed", "corrupt"
        )
    return rgb, (rgb.shape[1], rgb.shape[0])


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageDecodeError(f"array of shape {array.shape}; expected H×W, H×W×3 or H×W×4", "unsupported")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / (65535.0 if array.dtype == np.uint16 else 255.0)
        array = array[:, :, :3] * alpha + (1 - alpha) * (65535 if array.dtype == np.uint16 else 255)
    if array.dtype == np.uint16 or (array.dtype != np.uint8 and array.max() > 255):
        array = array / 257.0
    elif array.dtype.kind == "f" and array.max() <= 1.0:
        array = array * 255.0
    return np.ascontiguousarray(np.clip(array, 0, 255).astype(np.uint8))


def probe_image(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Check that an image decodes (cheaply: JPEG at 1/8 scale); return its full (width, height)."""
    if is_dicom(path):
        return _decode_dicom(path)[1]
    image = _open(path)
    size = image.size
    try:
        if image.format == "JPEG":
            image.draft("RGB", (max(8, size[0] // 8), max(8, size[1] // 8)))
        image.load()
    except (OSError, SyntaxError, ValueError, IndexError, EOFError) as err:
        raise ImageDecodeError(f"corrupt or truncated image: {err}", "corrupt") from None
    return size

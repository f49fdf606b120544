"""Preprocessing, defined once: training, evaluation, export checks, the predictor and the server
all call these functions with the `Preprocessing` stored in the model artifact.

Pipeline: decoded RGB uint8 → centre-crop to the model's aspect ratio → antialiased
reduction to the working size (when the image is larger) → resize to the input size →
optional Shades-of-Gray colour constancy → normalise to float32 CHW. Training inserts its
augmentation between `canonical` and `normalize`.

Why a working size: training images of 200×150 are *upsampled* to the input, while a
user's 600×450 photo is *downsampled* to it, so the same field of view looked sharper at
serving than anything the network saw. Reducing every larger image to one working size
first makes the pixels the network sees independent of the camera's resolution.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic.dataclasses import dataclass

from dermalens.core.decode import ImageInput, decode_image
from dermalens.core.schema import STRICT, load


@dataclass(frozen=True, config=STRICT)
class Preprocessing:
    """How raw images become model input; stored in (and read from) the model artifact."""

    #: (width, height). HAM10000 images are 4:3; a 4:3 input keeps the whole field of view.
    input_size: tuple[int, int] = (224, 168)
    #: efficientnet-lite weights were trained with mean = std = 0.5.
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    #: "shades_of_gray" (Finlayson & Trezzi 2004) or "none": removes the colour cast of a camera/light.
    color_constancy: Literal["shades_of_gray", "none"] = "shades_of_gray"
    #: Minkowski norm of Shades of Gray (6 is the usual choice in ISIC-winning pipelines).
    sog_power: float = 6.0
    #: "crop_to_aspect": centre-crop to the input's aspect ratio, then resize (no distortion).
    resize: Literal["crop_to_aspect", "stretch"] = "crop_to_aspect"
    #: (width, height) every larger image is first reduced to (antialiased); None = straight to
    #: the input size (the models before issue #14).
    working_size: tuple[int, int] | None = None
    #: JPEG quality of a re-encode after that reduction (None = none). Why: the network learnt from
    #: small JPEG files (HAM10000's 200×150 and ISIC 2019's 256×256 are quality 75); a full-size
    #: photo reduced to the same size but not compressed still looks different to it (its 8×8
    #: block texture is part of what it learnt). Training and serving both take this path.
    working_jpeg_quality: int | None = None
    #: "none" or "clahe": contrast-limited adaptive histogram equalisation of the lightness (CIELAB L),
    #: after colour constancy, at training and serving alike. Needs OpenCV (`dermalens[clahe]`).
    contrast: Literal["none", "clahe"] = "none"
    #: CLAHE tiles (columns, rows) and clip limit (OpenCV's: multiples of a uniform histogram bin).
    clahe_tiles: tuple[int, int] = (8, 8)
    clahe_clip: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def decode_floor(self) -> tuple[int, int]:
        """The smallest size a JPEG may be draft-decoded to without changing what this pipeline
        makes: the input size, or the working size where it is larger (draft mode's DCT scaling
        is itself a reduction; below the working size it would replace the one the network learnt)."""
        if self.working_size is None:
            return self.input_size
        return max(self.input_size[0], self.working_size[0]), max(self.input_size[1], self.working_size[1])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return load(cls, data, "preprocessing")

    def validate(self) -> None:
        """What types cannot say (choices and types are checked on construction): the JPEG quality,
        CLAHE's parameters, and that OpenCV, which CLAHE needs, is installed."""
        if self.working_jpeg_quality is not None and not 1 <= self.working_jpeg_quality <= 95:
            raise ValueError(
                f"working_jpeg_quality must be 1-95 (PIL's useful range), got {self.working_jpeg_quality}"
            )
        if self.contrast == "clahe":
            if not (self.clahe_clip > 0 and min(self.clahe_tiles) >= 1):
                raise ValueError(
                    f"clahe_clip must be > 0 and clahe_tiles ≥ 1, got {self.clahe_clip}, {self.clahe_tiles}"
                )
            _opencv()


def crop_to_aspect(rgb: np.ndarray, aspect: float) -> np.ndarray:
    """Centre-crop an H×W×3 image to width/height == `aspect`."""
    height, width = rgb.shape[:2]
    if width / height > aspect:
        new_w = max(1, round(height * aspect))
        left = (width - new_w) // 2
        return rgb[:, left : left + new_w]
    new_h = max(1, round(width / aspect))
    top = (height - new_h) // 2
    return rgb[top : top + new_h]


def shades_of_gray(rgb: np.ndarray, power: float = 6.0) -> np.ndarray:
    """Shades-of-Gray colour constancy: scale channels so their p-norm means are equal.

    Why: dermatoscopes and clinics differ in white balance; normalising the
    illuminant makes a model less sensitive to the camera it was trained on.
    Computed on the 3×256 histogram and applied as a lookup table (PIL, in C): the same
    arithmetic as the per-pixel formula, about 10× faster on a 224×168 image.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"shades_of_gray needs an H×W×3 uint8 image, got {rgb.dtype} {rgb.shape}")
    image = Image.fromarray(np.ascontiguousarray(rgb))
    counts = np.asarray(image.histogram(), dtype=np.float64).reshape(3, 256)
    levels = np.arange(256, dtype=np.float64)
    moments = counts @ (levels / 255.0) ** power / counts.sum(axis=1)  # p-th power means, 0-1 scale
    norm = 255.0 * moments ** (1.0 / power)
    gain = np.sqrt(3.0) * norm / max(float(np.sqrt(np.sum(norm**2))), 1e-6)
    table = np.clip(levels[None, :] / np.maximum(gain, 1e-6)[:, None], 0, 255).astype(np.uint8)
    return np.asarray(image.point(table.ravel().tolist()))


def resize_to_input(rgb: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Crop to the input's aspect ratio (per `spec.resize`), reduce to the working size when larger,
    and resize to the input size. PIL's resampling widens its filter when it shrinks, so both
    reductions are antialiased."""
    width, height = spec.input_size
    if spec.resize == "crop_to_aspect":
        rgb = crop_to_aspect(rgb, width / height)
    image: Image.Image | None = None
    if spec.working_size is not None and rgb.shape[1] > spec.working_size[0]:
        image = Image.fromarray(rgb).resize(spec.working_size, Image.Resampling.BILINEAR)
        if spec.working_jpeg_quality is not None:
            image = jpeg_roundtrip(image, spec.working_jpeg_quality)
    if (image.size if image is not None else (rgb.shape[1], rgb.shape[0])) != (width, height):
        image = (image or Image.fromarray(rgb)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image) if image is not None else rgb


def jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """Encode and decode as baseline JPEG (PIL's 4:2:0 chroma subsampling, as the training files)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def _opencv() -> Any:
    """OpenCV, only for models that use CLAHE: the light serving install goes without it."""
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "this model's preprocessing uses CLAHE contrast enhancement, which needs OpenCV: "
            "pip install 'dermalens[clahe]' (opencv-python-headless)"
        ) from None
    cv2.setNumThreads(1)  # images are already processed in parallel threads; no nested pool
    return cv2


def clahe(rgb: np.ndarray, tiles: tuple[int, int] = (8, 8), clip: float = 2.0) -> np.ndarray:
    """CLAHE on the CIELAB lightness only, so hues (the pigment network's browns, a lesion's red)
    keep their colour while local contrast rises. OpenCV's: about 1 ms on a 224×168 image."""
    cv2 = _opencv()
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=tuple(tiles)).apply(lab[..., 0])
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


def color_correct(rgb: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """The artifact's photometric steps: colour constancy, then CLAHE if it asks for it (training
    applies its colour augmentation before this, so both see the same pipeline)."""
    if spec.color_constancy == "shades_of_gray":
        rgb = shades_of_gray(rgb, spec.sog_power)
    return clahe(rgb, spec.clahe_tiles, spec.clahe_clip) if spec.contrast == "clahe" else rgb


def canonical(rgb: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Crop, resize and colour-correct a decoded image to the model's input size (uint8 H×W×3)."""
    return color_correct(resize_to_input(rgb, spec), spec)


def normalize(rgb: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """uint8 H×W×3 → float32 3×H×W, scaled to [0, 1] then standardised with the artifact's mean/std.

    A 256-entry table per channel holds (v / 255 − mean) / std computed in float32, so the
    result is bit-identical to the elementwise formula while reading each pixel once.
    """
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1)
    table = (np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0) - mean) / std
    height, width = rgb.shape[:2]
    chw = np.empty((3, height, width), dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], rgb[:, :, channel], out=chw[channel])
    return chw


def load_canonical(source: ImageInput, spec: Preprocessing) -> np.ndarray:
    """Decode (JPEG draft mode: never below the input size) and make canonical."""
    return canonical(decode_image(source, min_size=spec.decode_floor), spec)


def prepare(source: ImageInput, spec: Preprocessing) -> np.ndarray:
    """Everything from raw input to one model-ready 3×H×W float32 array."""
    return normalize(load_canonical(source, spec), spec)

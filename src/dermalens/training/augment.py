"""Training augmentation: the cameras, dermatoscopes and files that users have, drawn per sample.

Order, and why:
1. colour (white balance, exposure): before colour constancy, which then sees them as it would
   at test time;
2. geometry (rotation, zoom in, zoom out, flips): the lesion filling 20-100 % of the frame, as
   between dermatoscopes and between clinics that crop to the lesion;
3. device artefacts fixed to the frame, not to the lesion (a dark circular rim, a ruler);
4. resolution and compression last, as a camera and its file format would: blur, a reduction
   to as little as a third of the size and back, JPEG re-encoding over a range of qualities.
   Without step 4 the network learnt the texture of the training files' compression (issue #14:
   full-size photos lost 0.08 balanced accuracy against their own small JPEG copies).

Every function takes a seeded `numpy` generator, so an epoch is reproducible (training/data.py).
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from dermalens.training.config import AugmentConfig


def augment(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of an H×W×3 uint8 image, of the same size."""
    image = _colour(Image.fromarray(rgb), cfg, rng)
    image = _geometry(image, cfg, rng)
    array = np.asarray(image)
    if cfg.hflip and rng.random() < 0.5:
        array = array[:, ::-1]
    if cfg.vflip and rng.random() < 0.5:
        array = array[::-1]
    image = Image.fromarray(np.ascontiguousarray(array))
    if cfg.rim and rng.random() < cfg.rim:
        image = dark_rim(image, rng)
    if cfg.ruler and rng.random() < cfg.ruler:
        image = ruler(image, rng)
    return np.ascontiguousarray(np.asarray(_resolution(image, cfg, rng)))


def _colour(image: Image.Image, cfg: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    if cfg.color_cast and rng.random() < cfg.color_cast:
        strength = cfg.color_cast_strength
        gains = rng.uniform(1 - strength, 1 + strength, 3)
        image = Image.fromarray(np.clip(np.asarray(image) * gains, 0, 255).astype(np.uint8))
    for enhancer, amount in (
        (ImageEnhance.Brightness, cfg.brightness),
        (ImageEnhance.Contrast, cfg.contrast),
        (ImageEnhance.Color, cfg.saturation),
    ):
        if amount:
            image = enhancer(image).enhance(rng.uniform(1 - amount, 1 + amount))
    if cfg.hue:
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.uniform(-cfg.hue, cfg.hue) * 255)) % 256
        image = Image.fromarray(hsv, "HSV").convert("RGB")
    return image


def _geometry(image: Image.Image, cfg: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    if cfg.rotate:
        # Corners are filled with the image's mean colour (skin), not black, which would look
        # like a dermatoscope rim.
        angle = float(rng.uniform(-cfg.rotate, cfg.rotate))
        image = image.rotate(
            angle,
            resample=Image.Resampling.BILINEAR,
            expand=False,
            fillcolor=tuple(int(c) for c in np.asarray(image).reshape(-1, 3).mean(0)),
        )
    wider = bool(cfg.zoom_out) and rng.random() < cfg.zoom_out
    if wider:
        image = zoom_out(image, rng.uniform(cfg.zoom_out_min, 1.0), rng)
    elif cfg.scale[0] < 1.0:
        area = rng.uniform(*cfg.scale) * width * height
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3))) * width / height
        crop_w = min(width, round(math.sqrt(area * ratio)))
        crop_h = min(height, round(math.sqrt(area / ratio)))
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        image = image.resize(
            (width, height), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h)
        )
    return image


def zoom_out(image: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """Shrink the content by `factor`, at a random offset, on a canvas of the image's border
    colour with a little smooth mottling: skin continues as skin, with no mirrored copy of the
    lesion beside it (a reflected border showed one); the seam is feathered over a few pixels."""
    width, height = image.size
    small_w, small_h = max(1, round(width * factor)), max(1, round(height * factor))
    small = np.asarray(image.resize((small_w, small_h), Image.Resampling.BILINEAR), dtype=np.float32)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    noise = Image.fromarray(
        rng.normal(128, 40, (height // 8 + 1, width // 8 + 1)).clip(0, 255).astype(np.uint8)
    )
    mottle = np.asarray(noise.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32) - 128
    canvas = np.median(border, axis=0)[None, None, :] + 0.15 * mottle[..., None]
    left = int(rng.integers(0, width - small_w + 1))
    top = int(rng.integers(0, height - small_h + 1))
    feather = max(1.0, 0.03 * width)
    yy, xx = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    edge = np.minimum.reduce([xx + 1, yy + 1, small_w - xx, small_h - yy])
    alpha = np.clip(edge / feather, 0, 1)[..., None]
    window = canvas[top : top + small_h, left : left + small_w]
    canvas[top : top + small_h, left : left + small_w] = alpha * small + (1 - alpha) * window
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def dark_rim(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The dark circular vignette of a contact dermatoscope: black outside a soft-edged circle
    whose radius is 55-100 % of the half-diagonal, centred near the middle."""
    width, height = image.size
    half_diag = math.hypot(width, height) / 2
    radius = rng.uniform(0.55, 1.0) * half_diag
    cx = width / 2 + rng.uniform(-0.05, 0.05) * width
    cy = height / 2 + rng.uniform(-0.05, 0.05) * height
    feather = max(1.0, rng.uniform(0.01, 0.06) * half_diag)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    keep = np.clip((radius - dist) / feather, 0.0, 1.0)[..., None]
    floor = rng.uniform(0, 25)
    array = np.asarray(image, dtype=np.float32)
    noise = rng.normal(0, 2.0, array.shape).astype(np.float32)
    out = array * keep + (floor + noise) * (1 - keep)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def ruler(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A millimetre ruler along one edge: a dark or light band with ticks of the other shade."""
    width, height = image.size
    draw_on = image.copy()
    draw = ImageDraw.Draw(draw_on)
    horizontal = bool(rng.random() < 0.5)
    length, across = (width, height) if horizontal else (height, width)
    band = max(3, round(rng.uniform(0.04, 0.09) * across))
    start = round(rng.uniform(0.0, 0.1) * across)
    at_end = rng.random() < 0.5
    offset = across - start - band if at_end else start
    dark = rng.random() < 0.5
    base = tuple(int(v) for v in (rng.uniform(10, 50, 3) if dark else rng.uniform(200, 250, 3)))
    tick = tuple(255 - v for v in base)
    step = max(2, round(rng.uniform(0.02, 0.04) * length))
    if horizontal:
        draw.rectangle((0, offset, width, offset + band), fill=base)
        for i, x in enumerate(range(0, width, step)):
            draw.line((x, offset, x, offset + band * (0.8 if i % 5 == 0 else 0.45)), fill=tick)
    else:
        draw.rectangle((offset, 0, offset + band, height), fill=base)
        for i, y in enumerate(range(0, height, step)):
            draw.line((offset, y, offset + band * (0.8 if i % 5 == 0 else 0.45), y), fill=tick)
    return draw_on


def _resolution(image: Image.Image, cfg: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    size = image.size
    if cfg.blur and rng.random() < cfg.blur:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(*cfg.blur_sigma))))
    rescaled = bool(cfg.rescale) and rng.random() < cfg.rescale
    if rescaled:
        factor = rng.uniform(cfg.rescale_min, 1.0)
        small = (max(8, round(size[0] * factor)), max(8, round(size[1] * factor)))
        image = image.resize(small, Image.Resampling.BILINEAR)
    if cfg.jpeg and rng.random() < cfg.jpeg:
        image = jpeg_roundtrip(image, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    if rescaled:
        filters = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)
        image = image.resize(size, filters[int(rng.integers(len(filters)))])
    return image


def jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """Encode as JPEG at `quality` and decode again (4:2:0 chroma, as cameras and ISIC files)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")

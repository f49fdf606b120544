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

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dermalens.core.preprocess import jpeg_roundtrip
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


#: RGB → YIQ (NTSC): hue turns the chroma plane (I, Q) about the grey axis (Y).
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_LUMA = _YIQ[0]


def colour_matrix(cfg: AugmentConfig, rng: np.random.Generator, mean_rgb: np.ndarray) -> np.ndarray:
    """The 3×4 affine RGB map of one draw of white balance (per-channel gains), brightness,
    contrast (about the image's mean lightness, as PIL's `ImageEnhance.Contrast`), saturation
    (towards its luma, as `ImageEnhance.Color`) and hue (a turn of the YIQ chroma plane).

    Why one matrix: applied by PIL in a single C pass (0.4 ms on a 224×168 image, against 6.7 ms
    for the five steps one after another); values are clipped once, at the end."""
    gains = np.ones(3)
    if cfg.color_cast and rng.random() < cfg.color_cast:
        gains = rng.uniform(1 - cfg.color_cast_strength, 1 + cfg.color_cast_strength, 3)
    factor = [rng.uniform(1 - a, 1 + a) if a else 1.0 for a in (cfg.brightness, cfg.contrast, cfg.saturation)]
    brightness, contrast, saturation = factor
    linear = brightness * np.diag(gains)
    grey = float(_LUMA @ (linear @ mean_rgb))  # mean lightness after cast and brightness
    linear = saturation * linear + (1 - saturation) * np.outer(np.ones(3), _LUMA @ linear)
    if cfg.hue:
        angle = 2 * math.pi * rng.uniform(-cfg.hue, cfg.hue)
        turn = np.array(
            [[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]]
        )
        linear = np.linalg.inv(_YIQ) @ turn @ _YIQ @ linear
    # Grey stays grey under saturation and hue, so contrast about `grey` commutes with both.
    return np.hstack([contrast * linear, np.full((3, 1), (1 - contrast) * grey)])


def mean_colour(image: Image.Image) -> np.ndarray:
    """The image's mean RGB (a box filter down to one pixel: 0.07 ms)."""
    return np.asarray(image.resize((1, 1), Image.Resampling.BOX), dtype=np.float64).reshape(3)


def _colour(image: Image.Image, cfg: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    matrix = colour_matrix(cfg, rng, mean_colour(image))
    return image.convert("RGB", tuple(float(v) for v in matrix.ravel()))


def _geometry(image: Image.Image, cfg: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    """Rotation and zoom (in: a random crop, RandomResizedCrop-style; or out) in one resample."""
    width, height = image.size
    angle = math.radians(float(rng.uniform(-cfg.rotate, cfg.rotate))) if cfg.rotate else 0.0
    box = (0.0, 0.0, float(width), float(height))  # the crop (left, top, width, height) to fill the frame
    wider = bool(cfg.zoom_out) and rng.random() < cfg.zoom_out
    if not wider and cfg.scale[0] < 1.0:
        area = rng.uniform(*cfg.scale) * width * height
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3))) * width / height
        crop_w = min(width, round(math.sqrt(area * ratio)))
        crop_h = min(height, round(math.sqrt(area / ratio)))
        box = (
            float(rng.integers(0, width - crop_w + 1)),
            float(rng.integers(0, height - crop_h + 1)),
            float(crop_w),
            float(crop_h),
        )
    if angle or box[2:] != (width, height):
        # Output (x, y) → crop point (u, v) → turned about the image centre: one affine map. Corners
        # are filled with the image's mean colour (skin), not black, which would look like a rim.
        cx, cy = width / 2, height / 2
        cos, sin = math.cos(angle), math.sin(angle)
        sx, sy = box[2] / width, box[3] / height
        du, dv = box[0] - cx, box[1] - cy
        image = image.transform(
            (width, height),
            Image.Transform.AFFINE,
            (cos * sx, -sin * sy, cx + cos * du - sin * dv, sin * sx, cos * sy, cy + sin * du + cos * dv),
            resample=Image.Resampling.BILINEAR,
            fillcolor=tuple(int(c) for c in mean_colour(image)),
        )
    if wider:
        image = zoom_out(image, rng.uniform(cfg.zoom_out_min, 1.0), rng)
    return image


def zoom_out(image: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """Shrink the content by `factor`, at a random offset, on a canvas of the image's border
    colour with a little smooth mottling: skin continues as skin, with no mirrored copy of the
    lesion beside it (a reflected border showed one); the seam is feathered over a few pixels."""
    width, height = image.size
    small_w, small_h = max(1, round(width * factor)), max(1, round(height * factor))
    small = image.resize((small_w, small_h), Image.Resampling.BILINEAR)
    pixels = np.asarray(small)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.float32)
    # Mottling drawn at 1/8 scale and smoothed up: the canvas costs a few small arrays.
    mottle = rng.normal(0, 6, (height // 8 + 1, width // 8 + 1, 1)).astype(np.float32)
    low = np.clip(np.median(border, axis=0)[None, None, :] + mottle, 0, 255).astype(np.uint8)
    canvas = Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC)
    left = int(rng.integers(0, width - small_w + 1))
    top = int(rng.integers(0, height - small_h + 1))
    feather = max(1.0, 0.03 * width)
    ramp_x = np.minimum(np.arange(1, small_w + 1), np.arange(small_w, 0, -1)) / feather
    ramp_y = np.minimum(np.arange(1, small_h + 1), np.arange(small_h, 0, -1)) / feather
    alpha = np.clip(np.minimum.outer(ramp_y, ramp_x), 0, 1)
    canvas.paste(small, (left, top), Image.fromarray((alpha * 255).astype(np.uint8)))
    return canvas


def dark_rim(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The dark circular vignette of a contact dermatoscope: black outside a soft-edged circle
    whose radius is 55-100 % of the half-diagonal, centred near the middle."""
    width, height = image.size
    half_diag = math.hypot(width, height) / 2
    radius = rng.uniform(0.55, 1.0) * half_diag
    cx = width / 2 + rng.uniform(-0.05, 0.05) * width
    cy = height / 2 + rng.uniform(-0.05, 0.05) * height
    feather = max(1.0, rng.uniform(0.01, 0.06) * half_diag)
    # The kept disc, drawn in C and softened by a blur of about the feather's width.
    inner = radius - feather / 2
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(feather / 2))
    floor = rng.uniform(0, 25)
    noise = np.clip(rng.normal(floor, 2.0, (height, width)), 0, 255).astype(np.uint8)
    dark = Image.fromarray(noise).convert("RGB")
    return Image.composite(image, dark, mask)


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

"""Images that are not dermoscopy, for checking that an out-of-distribution gate still refuses them.

Why in the package: `benchmarks/ood_gate.py` measures the bundled gate on them, and `dermalens
adapt` must show that a gate re-centred on a clinic's images still refuses them (≥ 98 %) before it
keeps it. Every photo that ships with scikit-image (cats, cups, people, documents, microscopy,
space...) in three crops, and synthetic images (noise, flat colours, gradients, stripes,
screenshot-like text pages); nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def natural_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled photos (those present offline), each whole, centre-cropped and flipped."""
    from skimage import data

    names = [
        "astronaut",
        "brick",
        "camera",
        "cat",
        "checkerboard",
        "chelsea",
        "clock",
        "coffee",
        "coins",
        "colorwheel",
        "grass",
        "gravel",
        "horse",
        "hubble_deep_field",
        "immunohistochemistry",
        "logo",
        "microaneurysms",
        "moon",
        "page",
        "retina",
        "rocket",
        "shepp_logan_phantom",
        "skin",
        "text",
    ]
    photos = {}
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            image = np.asarray(loader())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # some need optional downloads (pooch); skip those offline.
            continue  # Under pytest scikit-image's fetcher raises pytest's Skipped (a BaseException).
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        height, width = image.shape[:2]
        photos[name] = image
        photos[f"{name}-centre"] = image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
        photos[f"{name}-flipped"] = image[::-1, ::-1]
    return photos


def synthetic_images(seed: int = 0) -> dict[str, np.ndarray]:
    """Noise, flat colours, gradients, stripes, text pages, black, white and grey: 63 images."""
    rng = np.random.default_rng(seed)
    images: dict[str, np.ndarray] = {}
    for i in range(10):
        images[f"uniform-noise-{i}"] = rng.integers(0, 256, (450, 600, 3), dtype=np.uint8)
        images[f"gaussian-noise-{i}"] = np.clip(rng.normal(128, 40, (450, 600, 3)), 0, 255).astype(np.uint8)
        colour = rng.integers(0, 256, 3)
        images[f"flat-{i}"] = np.broadcast_to(colour, (450, 600, 3)).astype(np.uint8)
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0, 1, 600)[None, :, None]
        images[f"gradient-{i}"] = np.broadcast_to(a * (1 - ramp) + b * ramp, (450, 600, 3)).astype(np.uint8)
        stripes = ((np.arange(600) // (5 + 3 * i)) % 2)[None, :, None] * 255
        images[f"stripes-{i}"] = np.broadcast_to(stripes, (450, 600, 3)).astype(np.uint8)
        page = Image.new("RGB", (600, 450), tuple(int(v) for v in rng.integers(200, 256, 3)))
        draw = ImageDraw.Draw(page)
        draw.rectangle((0, 0, 600, 40), fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
        for line in range(12):
            draw.text(
                (20, 60 + 30 * line),
                f"Settings  option {line}  value {rng.integers(1000)}",
                fill=(20, 20, 20),
            )
        images[f"screenshot-{i}"] = np.asarray(page)
    for name in ("black", "white", "grey"):
        value = {"black": 0, "white": 255, "grey": 128}[name]
        images[name] = np.full((450, 600, 3), value, np.uint8)
    return images


def not_dermoscopy() -> dict[str, np.ndarray]:
    """Every image of `natural_photos` and `synthetic_images`, by name."""
    return natural_photos() | synthetic_images()

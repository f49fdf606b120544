"""How well the out-of-distribution gate separates dermoscopy images from everything else.

    python benchmarks/ood_gate.py [--model DIR] [--data ../shared/data/ham10000]

Rejected (should be ≥ 98 %): every photo that ships with scikit-image (cats, cups,
people, documents, microscopy, space...) in several crops, and synthetic images
(noise, flat colours, gradients, stripes, screenshot-like text pages). Accepted
(should be ≥ 98 %): the HAM10000 *test* split of configs/splits/ham10000-seed0.json,
which the gate's threshold never saw (it was set on validation). Then ordinary dermoscopy from
elsewhere, which should be accepted too: Derm7pt (another clinic; target ≤ 3 % refused) and each
ISIC 2019 source's validation split (target ≤ 2 %). Then, as information on how other clinics'
cameras might fare, the share of every 3rd test image refused after camera-like shifts (colour
cast, gamma, blur, sharpening, zoom, under-exposure; target for the σ 1.5 px blur ≤ 5 %).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

ROOT = Path(__file__).resolve().parents[1]


def _zoom(image: np.ndarray, keep: float = 0.7) -> np.ndarray:
    height, width = image.shape[:2]
    top, left = int(height * (1 - keep) / 2), int(width * (1 - keep) / 2)
    return image[top : height - top, left : width - left]


def _pil(op):  # type: ignore[no-untyped-def]
    return lambda image: np.asarray(op(Image.fromarray(image)))


#: Camera-like shifts of a dermoscopy image (not out-of-distribution: the gate should accept them).
SHIFTS = {
    "colour cast (R×1.25, B×0.8)": lambda a: np.clip(a * [1.25, 1.0, 0.8], 0, 255).astype(np.uint8),
    "gamma 0.7": lambda a: (255 * (a / 255.0) ** 0.7).astype(np.uint8),
    "Gaussian blur σ 1.5 px": _pil(lambda im: im.filter(ImageFilter.GaussianBlur(1.5))),
    "unsharp mask": _pil(lambda im: im.filter(ImageFilter.UnsharpMask(2, 150))),
    "zoom ×1.4 (centre 70 %)": _zoom,
    "under-exposed (×0.6)": _pil(lambda im: ImageEnhance.Brightness(im).enhance(0.6)),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="artifact folder (default: bundled)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ham10000"))
    parser.add_argument("--split", default=str(ROOT / "configs" / "splits" / "ham10000-seed0.json"))
    args = parser.parse_args()

    from dermalens import Classifier
    from dermalens.data.readers import load_dataset
    from dermalens.data.splits import Split
    from dermalens.evaluation.not_dermoscopy import natural_photos, synthetic_images

    clf = Classifier.load(args.model)
    for title, images in (
        ("natural photos (scikit-image)", natural_photos()),
        ("synthetic images", synthetic_images()),
    ):
        results = clf.predict(list(images.values()))
        flags = [getattr(r, "ood", True) for r in results]
        missed = [name for name, flag in zip(images, flags, strict=True) if not flag]
        print(
            f"{title}: {sum(flags)}/{len(flags)} rejected ({100 * sum(flags) / len(flags):.1f} %)"
            + (f"; accepted: {', '.join(missed)}" if missed else "")
        )
    test_ids = Split.load(args.split).ids("test")
    dataset = load_dataset(args.data, verify=False)
    paths = [r.path for r in dataset.records if r.image_id in test_ids]
    rejected = 0
    for start in range(0, len(paths), 64):
        rejected += sum(getattr(r, "ood", True) for r in clf.predict(list(paths[start : start + 64])))
    print(
        f"HAM10000 test split (dermoscopy): {rejected}/{len(paths)} rejected ({100 * rejected / len(paths):.2f} %)"
    )
    shared = Path(args.data).parent
    others: dict[str, list[Path]] = {}
    if (shared / "derm7pt").is_dir():
        others["Derm7pt (another clinic)"] = [
            r.path for r in load_dataset(shared / "derm7pt", verify=False).records
        ]
    isic_split = ROOT / "configs" / "splits" / "isic2019-seed0.json"
    if (shared / "isic2019").is_dir() and isic_split.is_file():
        val_ids = Split.load(isic_split).ids("val")
        for record in load_dataset(shared / "isic2019", verify=False).records:
            if record.image_id in val_ids:
                others.setdefault(f"ISIC 2019 validation, {record.source}", []).append(record.path)
    for name, files in others.items():
        flags = [
            getattr(r, "ood", True)
            for start in range(0, len(files), 64)
            for r in clf.predict(list(files[start : start + 64]))
        ]
        print(f"{name} (dermoscopy): {sum(flags)}/{len(flags)} rejected ({100 * np.mean(flags):.2f} %)")
    originals = [np.asarray(Image.open(path).convert("RGB")) for path in paths[::3]]
    for name, shift in SHIFTS.items():
        flags = [getattr(r, "ood", True) for r in clf.predict([shift(a) for a in originals])]
        print(f"  shifted test images, {name}: {100 * np.mean(flags):.1f} % rejected (n={len(flags)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does a prediction depend on how many pixels the same field of view has? And on the framing?

    python benchmarks/invariance.py [--model DIR] [--limit N]

For Derm7pt (another clinic, 383×384) and the 256-px ISIC 2019 validation images (MSK and the
ISIC archive), every image is scored as given and as a 3× smaller copy, saved as JPEG q90 (the
look of the 200×150 HAM10000 training files) and as lossless PNG. Printed per set and copy:
median |Δ p_malignant| against the original, AUC, 7-class balanced accuracy and refusal rate,
with their differences. Targets (issue #14): median |Δ| ≤ 0.01, AUC within 0.01, balanced
accuracy within 0.02, refusals within 1 point.

Then the field of view: Derm7pt's lesion-centred crops padded out to 1/0.7 of their size (the
lesion then fills about as much of the frame as in HAM10000), and a 70 % centre crop (zoomed in).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def smaller(path: Path, fmt: str, factor: int = 3) -> bytes:
    """The image reduced `factor`× (antialiased) and encoded as JPEG q90 or PNG."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        small = rgb.resize(
            (max(1, rgb.width // factor), max(1, rgb.height // factor)), Image.Resampling.LANCZOS
        )
    buffer = io.BytesIO()
    small.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def padded(path: Path, keep: float = 0.7) -> np.ndarray:
    """The image shrunk to `keep` of the frame on a border-coloured canvas (wider field of view)."""
    from dermalens.training.augment import zoom_out

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return np.asarray(zoom_out(rgb, keep, np.random.default_rng(0)))


def centre(path: Path, keep: float = 0.7) -> np.ndarray:
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    top, left = int(h * (1 - keep) / 2), int(w * (1 - keep) / 2)
    return rgb[top : h - top, left : w - left]


def score(clf, items: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """p_malignant, class probabilities and refusal flags of `items`, in batches."""
    p_mal, probs, ood = [], [], []
    for start in range(0, len(items), 64):
        for result in clf.predict(list(items[start : start + 64])):
            p_mal.append(result.p_malignant)
            probs.append([result.probabilities[c] for c in clf.classes])
            ood.append(bool(result.ood))
    return np.asarray(p_mal), np.asarray(probs), np.asarray(ood)


def figures(labels: list[str], probs: np.ndarray, ood: np.ndarray, meta) -> dict:  # type: ignore[no-untyped-def]
    """AUC, balanced accuracy (the artifact's decision rule, as the app names diagnoses) and refusals."""
    from dermalens.evaluation.metrics import compute_metrics

    m = compute_metrics(labels, probs, meta.classes, meta.malignant, meta.threshold, meta.decision_bias)
    return {
        "auc": m["binary"]["auc"],
        "ba": (m["multiclass"] or {}).get("balanced_accuracy", float("nan")),
        "refused": float(ood.mean()),
    }


def report(name: str, records, variants: dict[str, Callable], clf) -> None:  # type: ignore[no-untyped-def]
    from dermalens.evaluation.run import model_label

    labels = [model_label(r.label, clf.classes) for r in records]
    base_p, base_probs, base_ood = score(clf, [r.path for r in records])
    base = figures(labels, base_probs, base_ood, clf.meta)
    print(
        f"\n{name} (n={len(records)}): as given AUC {base['auc']:.3f}, balanced accuracy "
        f"{base['ba']:.3f}, refused {base['refused']:.1%}"
    )
    print(
        f"  {'copy':<34} {'median |Δp|':>11} {'AUC':>7} {'ΔAUC':>7} {'bal.acc':>8} {'ΔBA':>7} {'refused':>8} {'Δpts':>6}"
    )
    for title, make in variants.items():
        p, probs, ood = score(clf, [make(r.path) for r in records])
        fig = figures(labels, probs, ood, clf.meta)
        print(
            f"  {title:<34} {np.median(np.abs(p - base_p)):>11.4f} {fig['auc']:>7.3f} "
            f"{fig['auc'] - base['auc']:>+7.3f} {fig['ba']:>8.3f} {fig['ba'] - base['ba']:>+7.3f} "
            f"{fig['refused']:>8.1%} {100 * (fig['refused'] - base['refused']):>+6.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="artifact folder (default: bundled)")
    parser.add_argument("--limit", type=int, default=0, help="score only every k-th image so that N remain")
    args = parser.parse_args()

    from dermalens import Classifier
    from dermalens.data.readers import load_dataset
    from dermalens.data.splits import Split

    clf = Classifier.load(args.model)
    print(f"model: {clf.meta.name}; preprocessing: {clf.meta.preprocessing}")
    copies = {
        "3× smaller, JPEG q90": lambda p: smaller(p, "JPEG"),
        "3× smaller, PNG (lossless)": lambda p: smaller(p, "PNG"),
    }
    derm = load_dataset(DATA / "derm7pt", verify=False).records
    val_ids = Split.load(ROOT / "configs" / "splits" / "isic2019-seed0.json").ids("val")
    isic = [
        r
        for r in load_dataset(DATA / "isic2019", verify=False).records
        if r.image_id in val_ids and Image.open(r.path).size == (256, 256)
    ]
    if args.limit:
        derm = derm[:: max(1, len(derm) // args.limit)]
        isic = isic[:: max(1, len(isic) // args.limit)]
    report("Derm7pt (383×384)", derm, copies, clf)
    report("ISIC 2019 validation, 256×256 (MSK + archive)", isic, copies, clf)
    report(
        "Derm7pt field of view",
        derm,
        {"padded out (lesion at 70 % of frame)": padded, "centre 70 % (zoomed in)": centre},
        clf,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which diagnoses the out-of-distribution gate refuses, and whether it still refuses non-dermoscopy.

    python benchmarks/gate_classes.py [--model DIR] [--data-root ../shared/data]

Issue #34: a gate that refuses rare diagnoses (vascular lesions, BCC, akiec) is a missed diagnosis.
Prints the share of each class refused on each source's validation and test split (HAM10000 and
ISIC 2019 by source, configs/splits/*-seed0.json), pooled over sources, and on Derm7pt (another
clinic: evaluation only, never used to fit or choose a gate); then the share of
`benchmarks/ood_gate.py`'s non-dermoscopy images refused (target ≥ 98 %). The bound: no class
refused more than max(2 × nevi, 2 %) of the time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def refused_by_class(engine, records, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(refused flag, class index or -1) per readable record, through the engine: the combined
    refusal, so that an ensemble is measured by its own gate rule (`EnsembleSpec.gate`)."""
    from dermalens.evaluation.outputs import collect

    combined = collect(engine, records).combined
    label = {r.image_id: r.label for r in records}
    index = [classes.index(label[i]) if label[i] in classes else -1 for i in combined.image_ids]
    return combined.ood, np.asarray(index)


def row(name: str, refused: np.ndarray, index: np.ndarray, classes: list[str]) -> str:
    """One line: overall and per-class refusal % (count), and whether the class bound holds."""
    cells, rates = [], {}
    for k, c in enumerate(classes):
        n = int((index == k).sum())
        rates[c] = 100 * float(refused[index == k].mean()) if n else float("nan")
        cells.append(f"{c} {rates[c]:5.1f} ({n:4d})" if n else f"{c}   –          ")
    bound = max(2 * rates.get("nv", float("nan")), 2.0)
    worst = max((r for r in rates.values() if not np.isnan(r)), default=0.0)
    flag = "" if np.isnan(bound) or worst <= bound else f"  ✗ > {bound:.1f}"
    return f"{name:28s} {100 * refused.mean():5.2f} %  " + "  ".join(cells) + flag


def dermoscopy_rows(engine, data_root: Path, classes: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Rows for each dataset's val and test split per source (and pooled), then Derm7pt."""
    from dermalens.data.readers import load_dataset
    from dermalens.data.splits import Split

    parts = {
        name: (
            load_dataset(data_root / name, verify=False),
            Split.load(ROOT / "configs" / "splits" / f"{name}-seed0.json"),
        )
        for name in ("ham10000", "isic2019")
        if (data_root / name).is_dir()
    }
    lines = []
    for part in ("val", "test"):
        pooled = []
        for dataset, split in parts.values():
            records = [r for r in dataset.subset(split.ids(part)).records if r.label in classes]
            for source in sorted({r.source for r in records}):
                got = refused_by_class(engine, [r for r in records if r.source == source], classes)
                pooled.append(got)
                lines.append(row(f"{part} {source}", *got, classes))
        if pooled:
            lines.append(
                row(f"{part}, all sources", *map(np.concatenate, zip(*pooled, strict=True)), classes)
            )
    if (data_root / "derm7pt").is_dir():  # reported only: never fitted, tuned or chosen on
        records = load_dataset(data_root / "derm7pt", verify=False).records
        lines.append(row("Derm7pt (report only)", *refused_by_class(engine, records, classes), classes))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="artifact folder (default: bundled)")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    from dermalens.evaluation.not_dermoscopy import natural_photos, synthetic_images
    from dermalens.inference.engine import Engine

    engine = Engine.load(args.model)
    classes = engine.meta.classes
    print(f"{engine.meta.name}: {engine.meta.ood_method}")
    for line in dermoscopy_rows(engine, args.data_root, classes):
        print(line)
    images = {**natural_photos(), **synthetic_images()}
    refused = engine.run(list(images.values()), ids=list(images)).combined.ood
    accepted = [name for name, flag in zip(images, refused, strict=True) if not flag]
    print(
        f"non-dermoscopy: {int(refused.sum())}/{len(refused)} refused ({100 * refused.mean():.1f} %)"
        + (f"; accepted: {', '.join(accepted)}" if accepted else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

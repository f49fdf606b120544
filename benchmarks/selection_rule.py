"""The selection rule (issue #34, docs/proxy.md): is a candidate better than the reference, by more
than the noise of the validation splits?

    python benchmarks/selection_rule.py REFERENCE_EVAL CANDIDATE_EVAL [--n-boot 1000] [--json out.json]

Each argument is a folder of `dermalens evaluate` outputs as `benchmarks/proxy.py --score NAME=DIR`
writes them (`DIR/../eval-NAME`): `ham-val/` and `isic-val/` (the validation splits: they decide)
and `derm7pt/` (evaluation only: printed, decides nothing). Prints, for both models and their
paired difference (lesion-grouped bootstrap within each source, 95 % interval): the AUC of each
rule group (HAM10000, BCN, MSK+archive pooled), their mean (the rule's figure), 7-class balanced
accuracy, BCC and melanoma recall; then the verdict and its reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dermalens.data.readers import load_dataset
from dermalens.evaluation.selection import paired_comparison, read_predictions, verdict

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DECIDING = ("ham-val", "isic-val")


def lesion_groups() -> dict[str, str]:
    """image id → lesion id for every dataset the rule reads (without decoding the images)."""
    groups: dict[str, str] = {}
    for name in ("ham10000", "isic2019", "derm7pt"):
        if (DATA / name).is_dir():
            groups.update({r.image_id: r.group for r in load_dataset(DATA / name, verify=False).records})
    return groups


def table(comparison: dict, title: str) -> str:
    lines = [
        f"## {title}",
        "| figure | reference | candidate | Δ | 95 % interval of Δ |",
        "|---|---|---|---|---|",
    ]
    for key, v in comparison.items():
        ci = "—" if v["ci"] is None else f"{v['ci'][0]:+.4f} … {v['ci'][1]:+.4f}"
        lines.append(f"| {key} | {v['reference']:.4f} | {v['candidate']:.4f} | {v['delta']:+.4f} | {ci} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reference", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="write both comparisons and the verdict here")
    args = parser.parse_args()
    groups = lesion_groups()
    result = {}
    for name, splits in (("validation", DECIDING), ("derm7pt", ("derm7pt",))):
        paths = [
            [folder / s / "predictions.csv" for s in splits] for folder in (args.reference, args.candidate)
        ]
        if not all(p.is_file() for p in paths[0] + paths[1]):
            print(f"{name}: predictions missing under {args.reference} or {args.candidate}; skipped")
            continue
        reference, candidate = (read_predictions(p) for p in paths)
        result[name] = paired_comparison(reference, candidate, groups, n_boot=args.n_boot)
        print(table(result[name], f"{name} ({len(reference.ids)} images)"), "\n")
    if "validation" not in result:
        return 2
    replaces, why = verdict(result["validation"])
    print(f"verdict: {'REPLACES' if replaces else 'does not replace'} the reference — {why}")
    if args.json:
        args.json.write_text(json.dumps({**result, "replaces": replaces, "why": why}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

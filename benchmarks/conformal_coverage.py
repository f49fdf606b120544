"""The prediction sets' coverage, measured: the table of docs/conformal.md.

    python benchmarks/conformal_coverage.py [--model models/default] [--data-root ../shared/data]
                                            [--coverage 0.9 0.95] [--n-boot 1000]

Runs the model through the one engine on the HAM10000 test split, each ISIC 2019 source's test split
and all of Derm7pt (another clinic; evaluation only), and prints, per stated coverage, the empirical
coverage and mean set size with 95 % bootstrap intervals by lesion (`evaluation.conformal`), on all
labelled images and on those the OOD gate accepts (what a user is shown). Nothing is fitted here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dermalens.evaluation.conformal import coverage_figures
from dermalens.evaluation.outputs import collect
from dermalens.evaluation.run import load_eval_data, model_label
from dermalens.inference.combined import combine
from dermalens.inference.engine import Engine

ROOT = Path(__file__).resolve().parents[1]


def splits(data_root: Path) -> list[tuple[str, Path, Path | None]]:
    return [
        ("HAM10000 test", data_root / "ham10000", ROOT / "configs/splits/ham10000-seed0.json"),
        ("ISIC 2019 test", data_root / "isic2019", ROOT / "configs/splits/isic2019-seed0.json"),
        ("Derm7pt (all)", data_root / "derm7pt", None),
    ]


def cell(figures: dict[str, Any], key: str) -> str:
    low, high = figures["ci"][key] or (float("nan"), float("nan"))
    return f"{figures[key]:.3f} ({low:.3f}-{high:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models/default")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--coverage", type=float, nargs="+", default=[0.9, 0.95])
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    engine = Engine.load(args.model)
    print(
        "| split | source | n | stated | coverage (95% CI) | mean set size (95% CI) | accepted by the gate: coverage |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, data, split in splits(args.data_root):
        records = load_eval_data(data, split, "test").records
        run = collect(engine, records)
        by_id = {r.image_id: r for r in records}
        kept = [by_id[i] for i in run.combined.image_ids]
        labels = [model_label(r.label, run.combined.classes) for r in kept]
        for coverage in args.coverage:
            combined = combine(run.members, coverage, engine.ensemble)
            figures = coverage_figures(
                labels, [r.source for r in kept], combined, n_boot=args.n_boot, groups=[r.group for r in kept]
            )
            if figures is None:
                raise SystemExit(f"{args.model}: no prediction sets fitted (run `dermalens conformal`)")
            for source, part in figures["by_source"].items():
                print(
                    f"| {name} | {source} | {part['n']} | {coverage:.2f} | {cell(part, 'coverage')} | "
                    f"{cell(part, 'mean_set_size')} | |"
                )
            accepted = figures["accepted"]
            shown = f"{accepted['coverage']:.3f} (n {accepted['n']})" if accepted else "n/a"
            print(
                f"| {name} | all | {figures['all']['n']} | {coverage:.2f} | {cell(figures['all'], 'coverage')} | "
                f"{cell(figures['all'], 'mean_set_size')} | {shown} |"
            )


if __name__ == "__main__":
    main()

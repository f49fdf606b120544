"""The proxy protocol (issue #17): cheap runs that rank recipe choices before a long run is spent.

    python benchmarks/proxy.py [VARIANT ...] [--runs ../runs/proxy] [--n-boot 200] [--markdown]

Each variant is ``configs/proxy/VARIANT.yaml``: the reference recipe with one choice changed, the
same budget of source-balanced draws (or the same wall time, where a choice changes the speed) from
one starting point. For each, in the order given (default: every file, reference first):
``dermalens train`` (or ``--resume`` of a run that was killed; a finished one is kept), then
``dermalens evaluate`` on HAM10000's and ISIC 2019's validation splits (per source: HAM10000, BCN,
MSK, the ISIC archive) and on Derm7pt. Selection reads the validation columns only; Derm7pt,
evaluation only, is printed beside them and chooses nothing. Prints one row per variant (and a
markdown table with ``--markdown``); results stay in each run directory, so a re-run only adds
what is missing.

    python benchmarks/proxy.py --score NAME=ARTIFACT_DIR [...]

scores finished artifacts (a full-length run, a soup, the bundled model) the same way, without
training: their evaluations go to ``ARTIFACT_DIR/../eval-NAME``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ROOT / "configs" / "proxy"
#: The validation splits the proxy is scored on: (name, dataset, split file).
SPLITS = (
    ("ham-val", "../shared/data/ham10000", "configs/splits/ham10000-seed0.json"),
    ("isic-val", "../shared/data/isic2019", "configs/splits/isic2019-seed0.json"),
)
EXTERNAL = ("derm7pt", "../shared/data/derm7pt")
VAL_SOURCES = ("ham10000", "bcn", "msk", "isic-archive")


def dermalens(*args: str) -> None:
    """One `dermalens` command in the checkout, as a user would run it; fails loudly."""
    subprocess.run([sys.executable, "-m", "dermalens.cli", *args], cwd=ROOT, check=True)


def train(variant: Path, runs: Path) -> Path:
    """Train (or resume, or keep) the variant's run; its artifact folder."""
    run_dir = runs / variant.stem
    artifact = run_dir / "artifact"
    if (artifact / "artifact.json").is_file():
        return artifact
    started = time.time()
    if (run_dir / "last.pt").is_file():
        dermalens("train", "--resume", str(run_dir), "--no-progress")
    else:
        dermalens(
            "train", "--config", str(variant), "--set", f"out_dir={runs}", "--set", f"name={variant.stem}",
            "--no-progress",
        )  # fmt: skip
    (run_dir / "proxy-wall-seconds.txt").write_text(f"{time.time() - started:.0f}\n")
    return artifact


def evaluate(artifact: Path, out: Path, n_boot: int) -> dict[str, dict[str, Any]]:
    """{split name: metrics.json} for the validation splits and the external set."""
    results = {}
    jobs = [(name, ["--data", data, "--split", split, "--split-name", "val"]) for name, data, split in SPLITS]
    jobs.append((EXTERNAL[0], ["--data", EXTERNAL[1]]))
    for name, data_args in jobs:
        target = out / name
        if not (target / "metrics.json").is_file():
            dermalens(
                "evaluate", "--model", str(artifact), *data_args, "--n-boot", str(n_boot), "--out", str(target),
                "--no-progress",
            )  # fmt: skip
        results[name] = json.loads((target / "metrics.json").read_text())
    return results


def row(name: str, run_dir: Path, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The variant's figures: per validation source, the mean AUC over them, Derm7pt, speed."""
    by_source = {s: m for r in (results["ham-val"], results["isic-val"]) for s, m in r["by_source"].items()}
    history = (
        json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else []
    )
    out: dict[str, Any] = {"variant": name}
    for source in VAL_SOURCES:
        figures = by_source[source]
        out[f"{source}_auc"] = figures["binary"]["auc"]
        out[f"{source}_ba"] = figures["multiclass"]["balanced_accuracy"]
        out[f"{source}_refused"] = figures["refused_rate"]
    out["mean_val_auc"] = sum(out[f"{s}_auc"] for s in VAL_SOURCES) / len(VAL_SOURCES)
    ham = by_source["ham10000"]["multiclass"]["per_class"]
    out["ham_bcc_recall"] = ham["bcc"]["recall"]
    derm = results[EXTERNAL[0]]
    out["derm7pt_auc"] = derm["binary"]["auc"]
    out["derm7pt_mel_auc"] = derm["mel_vs_rest_auc"]
    out["derm7pt_ba"] = derm["multiclass"]["balanced_accuracy"]
    out["derm7pt_refused"] = derm["ood"]["rate"]
    rates = [h["train_images_per_second"] for h in history if "train_images_per_second" in h]
    out["train_img_s"] = sorted(rates)[len(rates) // 2] if rates else float("nan")
    wall = run_dir / "proxy-wall-seconds.txt"
    out["wall_min"] = float(wall.read_text()) / 60 if wall.is_file() else float("nan")
    return out


COLUMNS = (
    ("variant", "variant", "{}"),
    ("train_img_s", "train img/s", "{:.1f}"),
    ("wall_min", "wall min", "{:.0f}"),
    *((f"{s}_auc", f"{s} AUC", "{:.3f}") for s in VAL_SOURCES),
    ("mean_val_auc", "mean val AUC", "**{:.3f}**"),
    ("ham10000_ba", "HAM BA", "{:.3f}"),
    ("bcn_ba", "BCN BA", "{:.3f}"),
    ("ham_bcc_recall", "HAM BCC recall", "{:.2f}"),
    ("derm7pt_auc", "Derm7pt AUC", "{:.3f}"),
    ("derm7pt_mel_auc", "Derm7pt mel AUC", "{:.3f}"),
    ("derm7pt_ba", "Derm7pt BA", "{:.3f}"),
    ("derm7pt_refused", "Derm7pt refused", "{:.1%}"),
)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def score(named: list[str], n_boot: int, as_markdown: bool) -> int:
    """The proxy's row for finished artifacts (`NAME=DIR`), trained nowhere here."""
    rows = []
    for item in named:
        name, _, folder = item.partition("=")
        artifact = Path(folder)
        if not name or not (artifact / "artifact.json").is_file():
            raise SystemExit(f"--score wants NAME=ARTIFACT_DIR with an artifact.json there, got {item!r}")
        result = row(name, artifact.parent, evaluate(artifact, artifact.parent / f"eval-{name}", n_boot))
        rows.append(result)
        print(json.dumps(result), flush=True)
    if as_markdown and rows:
        print(markdown(rows))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variants", nargs="*", help="names in configs/proxy/ (default: all, reference first)")
    parser.add_argument("--runs", type=Path, default=ROOT.parent / "runs" / "proxy", help="run directories")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of each evaluation")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument("--report-only", action="store_true", help="train nothing: tabulate finished runs")
    parser.add_argument(
        "--score", action="append", default=[], metavar="NAME=ARTIFACT_DIR",
        help="score a finished artifact instead of training variants (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.score:
        return score(args.score, args.n_boot, args.markdown)
    names = args.variants or sorted((p.stem for p in VARIANTS.glob("*.yaml")), key=lambda n: n != "reference")
    rows = []
    for name in names:
        variant = VARIANTS / f"{name}.yaml"
        if not variant.is_file():
            parser.error(
                f"no variant {variant}; known: {', '.join(sorted(p.stem for p in VARIANTS.glob('*.yaml')))}"
            )
        run_dir = args.runs / name
        if args.report_only and not (run_dir / "artifact" / "artifact.json").is_file():
            continue
        artifact = train(variant, args.runs)
        result = row(name, run_dir, evaluate(artifact, run_dir / "eval", args.n_boot))
        rows.append(result)
        print(json.dumps(result), flush=True)
    if args.markdown and rows:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

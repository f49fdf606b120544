"""`dermalens predict PATH...` and `dermalens export`."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from dermalens.data.records import IMAGE_SUFFIXES
from dermalens.inference.metadata import METADATA_FIELDS, PatientMetadata
from dermalens.inference.results import (
    DISCLAIMER,
    REFUSAL_REASON,
    REFUSED,
    Prediction,
    PredictionError,
    correctness,
)
from dermalens.taxonomy import label_from_filename


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    predict = sub.add_parser("predict", help="predict images or folders (recursive); table, CSV, heatmaps")
    predict.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    predict.add_argument(
        "--model", action="append", help="artifact folder (repeat for an ensemble); default: bundled"
    )
    predict.add_argument("--csv", type=Path, help="write results as CSV (UTF-8 with BOM, opens in Excel)")
    predict.add_argument("--tta", type=int, default=1, help="test-time augmentation views, 1-8 (default 1)")
    predict.add_argument(
        "--heatmaps", type=Path, help="write a heatmap overlay PNG per image into this folder"
    )
    predict.add_argument(
        "--threshold", type=float, help="operating threshold on p_malignant (default: the model's)"
    )
    predict.add_argument("--age", help="patient age in years, for every image (models that read metadata)")
    predict.add_argument("--sex", help="patient sex for every image: male, female (or empty)")
    predict.add_argument("--site", help="body site for every image, e.g. back, face, lower extremity")
    predict.add_argument(
        "--metadata",
        type=Path,
        help="CSV of per-image patient data: an image_id/file column (file name or stem) and any of "
        "age/age_approx, sex, site/localization/anatom_site_general (HAM10000/ISIC metadata files work)",
    )
    predict.add_argument(
        "--compare",
        action="store_true",
        help="with several --model: one table per image, a row per model and the ensemble "
        "(verdict, confidence, P(benign), P(malignant)); the CSV gets one row per (image, model)",
    )
    predict.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    predict.add_argument("--batch", type=int, default=32, help="images per inference batch")
    predict.add_argument("--quiet", action="store_true", help="no table, no progress bar")
    predict.set_defaults(func=run_predict)

    export = sub.add_parser("export", help="export an artifact's network to ONNX or TorchScript")
    export.add_argument("--model", help="artifact folder (default: bundled)")
    export.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(func=run_export)

    quant = sub.add_parser(
        "quantize", help="write an INT8 copy of an artifact (static, calibrated on a split)"
    )
    quant.add_argument("--model", help="artifact folder (default: bundled)")
    quant.add_argument("--data", type=Path, required=True, help="dataset with the calibration images")
    quant.add_argument("--split", type=Path, help="split file; calibrate on --split-name (default val)")
    quant.add_argument("--split-name", default="val")
    quant.add_argument("--n", type=int, default=200, help="calibration images (spread evenly)")
    quant.add_argument("--out", type=Path, required=True, help="folder of the INT8 artifact")
    quant.set_defaults(func=run_quantize)


def iter_images(paths: list[Path]) -> Iterator[Path]:
    """Files as given, and every image below each folder (sorted); a missing path is yielded too
    so that it is reported, not silently skipped."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        else:
            yield path


_ID_COLUMNS = ("image_id", "file", "image", "path", "filename")
_FIELD_COLUMNS = {
    "age": ("age", "age_approx"),
    "sex": ("sex",),
    "site": ("site", "localization", "anatom_site_general", "anatom_site_general_challenge"),
}


def patients_for(files: list[Path], args: argparse.Namespace) -> list[PatientMetadata]:
    """Each file's patient data: its row of `--metadata` when present, else `--age/--sex/--site`."""
    default = PatientMetadata.parse(args.age, args.sex, args.site)
    if args.metadata is None:
        return [default] * len(files)
    table = read_metadata_csv(args.metadata)
    found = [table.get(p.name) or table.get(p.stem) for p in files]
    missing = sum(f is None for f in found)
    if missing:
        print(f"note: {missing} of {len(files)} images have no row in {args.metadata}", file=sys.stderr)
    return [f if f is not None else default for f in found]


def read_metadata_csv(path: Path) -> dict[str, PatientMetadata]:
    """{image name or stem: PatientMetadata}; an invalid value is an error naming row and column."""
    if not path.is_file():
        raise ValueError(f"{path}: no such metadata CSV")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = {h.strip().lower(): h for h in reader.fieldnames or []}
        id_col = next((header[c] for c in _ID_COLUMNS if c in header), None)
        if id_col is None:
            raise ValueError(f"{path}: needs an image id column, one of {', '.join(_ID_COLUMNS)}")
        cols = {
            f: next((header[c] for c in names if c in header), None) for f, names in _FIELD_COLUMNS.items()
        }
        table: dict[str, PatientMetadata] = {}
        for line, row in enumerate(reader, start=2):
            try:
                patient = PatientMetadata.parse(**{f: row.get(c) if c else None for f, c in cols.items()})
            except ValueError as err:
                raise ValueError(f"{path} line {line}: {err}") from None
            key = Path(str(row[id_col]).strip().replace("\\", "/")).name
            table[key] = table[Path(key).stem] = patient
    return table


def _row(path: Path, result: Prediction | PredictionError, classes: list[str]) -> dict[str, object]:
    truth = label_from_filename(path.name)
    if isinstance(result, PredictionError):
        return {"file": str(path), "error": result.error, "true_label": truth or ""}
    correct, _ = correctness(truth, result)
    row: dict[str, object] = {
        "file": str(path),
        "prediction": result.diagnosis or "",
        "p_malignant": f"{result.p_malignant:.4f}",
        "decision": result.decision,
        "reason": result.reason or "",
        **{f"p_{c}": f"{result.probabilities[c]:.4f}" for c in classes},
        "ood": result.ood,
        "ood_score": f"{result.ood_score:.3f}",
        "true_label": truth or "",
        "correct": "" if correct is None else correct,
        "error": "",
    }
    if result.metadata is not None:
        row.update({k: "" if v is None else v for k, v in result.metadata.to_dict().items()})
    return row


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dermalens.inference.predictor import Classifier

    clf = Classifier.load(args.model, runtime=args.runtime, tta=args.tta)
    files = list(iter_images(args.paths))
    if not files:
        print("no images found (accepted: " + ", ".join(IMAGE_SUFFIXES) + ")", file=sys.stderr)
        return 2
    try:
        patients = patients_for(files, args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not clf.uses_metadata and any(not p.is_empty for p in patients):
        print("note: this model reads images only; the patient metadata given is ignored", file=sys.stderr)
    rows: list[dict[str, object]] = []
    compared: list[tuple[Path, list[Prediction]]] = []
    if args.compare and len(clf.members) < 2:
        print(
            "note: --compare needs two or more --model; comparing the one model with itself", file=sys.stderr
        )
    want_maps = args.heatmaps is not None
    for start in tqdm(range(0, len(files), args.batch), unit="batch", disable=args.quiet, desc="predicting"):
        chunk = files[start : start + args.batch]
        results = clf.predict(
            list(chunk),
            heatmap=want_maps,
            threshold=args.threshold,
            keep_image=want_maps,
            metadata=patients[start : start + args.batch],
            compare=args.compare,
        )
        for path, result in zip(chunk, results, strict=True):
            rows.append(_row(path, result, clf.classes))
            if args.compare and isinstance(result, Prediction):
                compared.append((path, [*(result.members or []), result]))
            if want_maps and isinstance(result, Prediction):
                from dermalens.inference.overlay import save_overlay

                save_overlay(result, args.heatmaps / f"{path.stem}_heatmap.png")
    if not args.quiet:
        if args.compare:
            for path, models in compared:
                _print_comparison(path, models)
        else:
            _print_table(rows)
    _print_summary(rows, clf.threshold if args.threshold is None else args.threshold)
    if args.csv:
        if args.compare:
            rows = [
                {**_row(path, one, clf.classes), "model": one.model}
                for path, models in compared
                for one in models
            ] + [r for r in rows if r.get("error")]
        _write_csv(args.csv, rows, clf.classes, with_model=args.compare)
        print(f"CSV: {args.csv}")
    print(DISCLAIMER)
    return 0


def _print_table(rows: list[dict[str, object]]) -> None:
    print(f"{'file':<40} {'prediction':<10} {'p_malig':>7}  {'decision':<9} {'ood':<4} truth")
    for row in rows:
        name = Path(str(row["file"])).name[:40]
        if row.get("error"):
            print(f"{name:<40} ERROR: {row['error']}")
            continue
        mark = {True: "✓", False: "✗"}.get(row["correct"], "")  # type: ignore[call-overload]
        ood = "OOD" if row["ood"] else ""
        refused = row["decision"] == REFUSED  # no verdict: neither diagnosis nor probability shown
        print(
            f"{name:<40} {'—' if refused else row['prediction']!s:<10} "
            f"{'—' if refused else row['p_malignant']!s:>7}  {row['decision']!s:<9} {ood:<4} "
            f"{row['true_label']} {mark}"
        )


def _print_comparison(path: Path, results: list[Prediction]) -> None:
    """One image: a row per model and the ensemble (last). A refused row has no verdict."""
    print(f"\n{path.name}")
    print(
        f"  {'model':<28} {'verdict':<10} {'diagnosis':<10} {'confidence':>10} {'P(benign)':>10} {'P(malig.)':>10}"
    )
    for one in results:
        if one.refused:
            print(f"  {one.model[:28]:<28} {'refused':<10} {'—':<10} {'—':>10} {'—':>10} {'—':>10}")
            continue
        confidence = one.probabilities[one.prediction]
        print(
            f"  {one.model[:28]:<28} {one.decision:<10} {one.prediction:<10} {confidence:>10.3f} "
            f"{1 - one.p_malignant:>10.3f} {one.p_malignant:>10.3f}"
        )


def _print_summary(rows: list[dict[str, object]], threshold: float) -> None:
    ok = [r for r in rows if not r.get("error")]
    errors = len(rows) - len(ok)
    malignant = sum(r["decision"] == "malignant" for r in ok)
    refused = [r for r in ok if r["decision"] == REFUSED]
    print(
        f"\n{len(ok)} images read, {errors} unreadable; {len(ok) - len(refused)} assessed, {malignant} of them "
        f"malignant at threshold {threshold:.3f}; {len(refused)} refused (not dermoscopy: no verdict)"
    )
    if refused:
        print(f"refused: {REFUSAL_REASON}")
    judged = [r for r in ok if r["correct"] != ""]
    labelled_refused = sum(bool(r["true_label"]) for r in refused)
    if judged or labelled_refused:
        right = sum(r["correct"] is True for r in judged)
        accuracy = f"{right / len(judged):.3f}" if judged else "n/a"
        print(
            f"accuracy (benign/malignant) on {len(judged)} assessed labelled file names: {accuracy}"
            + (f"; {labelled_refused} labelled file(s) refused, not counted" if labelled_refused else "")
        )


def _write_csv(
    path: Path, rows: list[dict[str, object]], classes: list[str], with_model: bool = False
) -> None:
    fields = [
        "file",
        *(["model"] if with_model else []),
        "prediction",
        "p_malignant",
        "decision",
        "reason",
        *[f"p_{c}" for c in classes],
        "ood",
        "ood_score",
        *(METADATA_FIELDS if any("site" in r for r in rows) else ()),
        "true_label",
        "correct",
        "error",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:  # BOM: Excel reads UTF-8
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def run_export(args: argparse.Namespace) -> int:
    from dermalens.models.artifact import WEIGHTS_FILE, load_meta
    from dermalens.models.export import export
    from dermalens.models.factory import build_from_meta

    folder, meta = load_meta(args.model)
    model = build_from_meta(meta, folder / WEIGHTS_FILE)
    out = export(model, args.out, args.format, meta.preprocessing.input_size)
    print(f"exported {meta.name} ({meta.architecture}) to {out} [{args.format}]")
    return 0


def run_quantize(args: argparse.Namespace) -> int:
    from dermalens.data.readers import load_dataset
    from dermalens.data.splits import Split
    from dermalens.models.quantize import quantize_artifact

    records = load_dataset(args.data, verify=False).records
    if args.split:
        ids = Split.load(args.split).ids(args.split_name)
        records = [r for r in records if r.image_id in ids]
    step = max(1, len(records) // max(1, args.n))
    paths = [r.path for r in records[::step]][: args.n]
    out = quantize_artifact(args.model, args.out, paths)
    print(f"INT8 artifact: {out} (calibrated on {len(paths)} images); measure it with `dermalens compare`")
    return 0

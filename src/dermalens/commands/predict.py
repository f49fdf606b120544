"""`dermalens predict PATH...` (export and quantize: `dermalens artifact`, `commands.artifact_build`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dermalens.archive.sources import Item, items
from dermalens.core.columns import LAYOUTS, read_table
from dermalens.core.decode import IMAGE_SUFFIXES
from dermalens.core.metadata import PatientMetadata
from dermalens.core.record import with_patient
from dermalens.inference.results import (
    DISCLAIMER,
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    predict = sub.add_parser(
        "predict", help="predict images, folders (recursive) or manifests; table, CSV/Parquet, heatmaps"
    )
    predict.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="image files, folders, or manifest CSVs (a path column; optional label, age, sex, site)",
    )
    predict.add_argument(
        "--model", action="append", help="artifact folder (repeat for an ensemble); default: bundled"
    )
    predict.add_argument(
        "--out",
        type=Path,
        help="write rows as batches finish: results.csv (UTF-8 with BOM, opens in Excel) or "
        "results.parquet (a folder of typed part files); bounded memory for any number of images",
    )
    predict.add_argument("--csv", type=Path, help="the same as --out with a .csv name")
    predict.add_argument(
        "--resume", action="store_true", help="continue --out: skip images whose (path, SHA-256) it holds"
    )
    _ray_options(predict)
    _patient_options(predict)
    predict.add_argument("--tta", type=int, default=1, help="test-time augmentation views, 1-8 (default 1)")
    predict.add_argument(
        "--coverage", type=float, help="prediction sets' coverage, e.g. 0.95 (default: the model's, 0.90)"
    )
    predict.add_argument(
        "--heatmaps", type=Path, help="write a heatmap overlay PNG per image into this folder"
    )
    predict.add_argument(
        "--threshold", type=float, help="operating threshold on p_malignant (default: the model's)"
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


def _patient_options(predict: argparse.ArgumentParser) -> None:
    group = predict.add_argument_group("patient data (models that read it; a manifest's own columns win)")
    group.add_argument("--age", help="patient age in years, for every image")
    group.add_argument("--sex", help="patient sex for every image: male, female (or empty)")
    group.add_argument("--site", help="body site for every image, e.g. back, face, lower extremity")
    group.add_argument(
        "--metadata",
        type=Path,
        help=f"{LAYOUTS['metadata'].accepted()}; image_id is a file name or stem, one row per "
        "image (HAM10000/ISIC metadata files work)",
    )


def _ray_options(predict: argparse.ArgumentParser) -> None:
    group = predict.add_argument_group("a Ray cluster (pip install 'dermalens[ray]')")
    group.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="score on Ray: auto (the cluster of `ray start` or $RAY_ADDRESS), local (start one "
        "here), or an address such as ray://head:10001",
    )
    group.add_argument("--num-actors", type=int, default=2, help="scoring actors (default 2)")
    group.add_argument("--threads-per-actor", type=int, default=1, help="CPUs (inference threads) per actor")


def item_source(args: argparse.Namespace) -> tuple[Callable[[], Iterator[Item]], set[Path]]:
    """The job's items: folders, files and manifests as given (absolute paths, the resume key), a
    folder image's patient data from its `--metadata` row, else from `--age/--sex/--site`; and the
    set, filled as the items are read, of images that the `--metadata` table has no row for."""
    default = PatientMetadata.parse(args.age, args.sex, args.site)
    table = read_metadata_csv(args.metadata) if args.metadata is not None else {}
    paths = [Path(os.path.abspath(p)) for p in args.paths]
    unmatched: set[Path] = set()

    def source() -> Iterator[Item]:
        for item in items(paths):
            if item.patient.is_empty:
                found = table.get(item.path.name) or table.get(item.path.stem)
                if found is None and table:
                    unmatched.add(item.path)
                item = with_patient(item, found or default)
            yield item

    return source, unmatched


def read_metadata_csv(path: Path) -> dict[str, PatientMetadata]:
    """{image name or stem: PatientMetadata} from a table of the ``metadata`` layout
    (`core.columns.LAYOUTS`); an invalid value is an error naming the line, as user input."""
    if not path.is_file():
        raise ValueError(f"{path}: no such metadata CSV")
    table: dict[str, PatientMetadata] = {}
    for line, row in read_table(path, ("metadata",)).rows():
        try:
            patient = PatientMetadata.parse(row.get("age"), row.get("sex"), row.get("site"))
        except ValueError as err:
            raise ValueError(f"{path} line {line}: {err}") from None
        key = Path(row["image_id"].replace("\\", "/")).name
        table[key] = table[Path(key).stem] = patient
    return table


def run_predict(args: argparse.Namespace) -> int:
    from dermalens.archive.job import plan, run_local
    from dermalens.archive.sink import NullSink, SinkError, open_sink
    from dermalens.commands.screen import Screen
    from dermalens.inference.predictor import Classifier
    from dermalens.inference.rows import output_columns

    out = args.out or args.csv
    try:
        source, unmatched = item_source(args)
        clf = Classifier.load(args.model, runtime=args.runtime, tta=args.tta, coverage=args.coverage)
        columns = output_columns(clf.classes, metadata=clf.uses_metadata, compare=args.compare)
        sink = open_sink(out, columns, resume=args.resume) if out else NullSink()
        summary = plan(source, sink)
    except (ValueError, SinkError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not summary.total:
        print("no images found (accepted: " + ", ".join(IMAGE_SUFFIXES) + ")", file=sys.stderr)
        return 2
    if not summary.left:
        sink.close()
        print(summary.line())
        return 0
    if unmatched:
        print(
            f"note: {len(unmatched)} of {summary.total} images have no row in {args.metadata}",
            file=sys.stderr,
        )
    if not clf.uses_metadata and (args.metadata is not None or any((args.age, args.sex, args.site))):
        print("note: this model reads images only; the patient metadata given is ignored", file=sys.stderr)
    if args.compare and len(clf.members) < 2:
        print(
            "note: --compare needs two or more --model; comparing the one model with itself", file=sys.stderr
        )
    screen = Screen(quiet=args.quiet, compare=args.compare, heatmaps=args.heatmaps)
    screen.start(summary)
    if args.ray:
        _run_on_ray(args, clf.uses_metadata, sink, source, summary, screen)
    else:
        run_local(
            clf, source, sink, summary, batch=args.batch, threshold=args.threshold, compare=args.compare,
            heatmap=args.heatmaps is not None, on_batch=screen.batch,
        )  # fmt: skip
    screen.finish(summary, clf.threshold if args.threshold is None else args.threshold)
    if out:
        print(f"results: {out}")
    print(DISCLAIMER)
    return 0


def _run_on_ray(
    args: argparse.Namespace, metadata: bool, sink: Any, source: Any, summary: Any, screen: Any
) -> None:
    from dermalens.archive.cluster import connect, run_ray

    if args.heatmaps is not None:
        raise SystemExit(
            "error: --heatmaps is not available with --ray (run the images locally for heatmaps)"
        )
    ray = connect(args.ray)
    options = {
        "tta": args.tta,
        "coverage": args.coverage,
        "threshold": args.threshold,
        "columns": {"metadata": metadata, "compare": args.compare},
    }
    run_ray(
        ray, args.model, source, sink, summary, options, num_actors=args.num_actors,
        threads_per_actor=args.threads_per_actor, batch=args.batch, on_batch=screen.batch,
    )  # fmt: skip

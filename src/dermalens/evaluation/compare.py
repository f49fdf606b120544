"""`compare`: several models on the same images, side by side, with a paired test against the first.

Why paired: two models scored on the same test images make correlated errors; the
question "is B better than A?" is answered by the distribution of AUC(B) − AUC(A)
over the *same* bootstrap resamples, not by whether two separate intervals overlap.
Typical use: general → specialised → rebalanced fine-tuning stages, or a network
against the classical baseline. The first model is the reference.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.artifact.store import load_meta
from dermalens.evaluation import plots
from dermalens.evaluation.bootstrap import paired_auc_test
from dermalens.evaluation.evaluate import evaluate_data
from dermalens.evaluation.metrics import jsonable, malignant_truth
from dermalens.evaluation.outputs import ArtifactPath
from dermalens.evaluation.run import EvalData, EvalRun, PathLike, load_eval_data
from dermalens.inference.results import DISCLAIMER

#: (column, path into metrics.json) of the comparison table.
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("n", ("n",)),
    ("auc", ("binary", "auc")),
    ("pr_auc", ("binary", "pr_auc")),
    ("threshold", ("binary", "threshold")),
    ("sensitivity", ("binary", "sensitivity")),
    ("specificity", ("binary", "specificity")),
    ("ppv", ("binary", "ppv")),
    ("npv", ("binary", "npv")),
    ("f1", ("binary", "f1")),
    ("spec@sens95", ("binary", "specificity_at_sensitivity", "0.95", "specificity")),
    ("ece", ("binary", "ece")),
    ("brier", ("binary", "brier")),
    ("accuracy", ("multiclass", "accuracy")),
    ("balanced_accuracy", ("multiclass", "balanced_accuracy")),
    ("macro_f1", ("multiclass", "macro_f1")),
    ("auc_macro", ("multiclass", "auc_macro")),
)


def _get(metrics: dict[str, Any], path: Sequence[str]) -> Any:
    node: Any = metrics
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def _aligned(runs: Sequence[EvalRun]) -> tuple[list[str], np.ndarray, list[np.ndarray], list[str]]:
    """Image ids every model scored, their binary truth, each model's p_malignant, and groups."""
    common = set(runs[0].combined.image_ids).intersection(*(r.combined.image_ids for r in runs[1:]))
    ids = [i for i in runs[0].combined.image_ids if i in common]
    records = {r.image_id: r for r in runs[0].records}
    y = malignant_truth([records[i].label for i in ids])
    scores = []
    for run in runs:
        index = {image_id: k for k, image_id in enumerate(run.combined.image_ids)}
        scores.append(run.combined.p_malignant[[index[i] for i in ids]])
    return ids, y, scores, [records[i].group for i in ids]


def compare(
    model_paths: Sequence[ArtifactPath],
    data_path: PathLike,
    out_dir: PathLike,
    *,
    tta: int = 1,
    split_file: PathLike | None = None,
    split_name: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    ci_unit: str = "image",
    reports: bool = True,
    data_format: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate every model (each in its own sub-folder) and write comparison.{md,csv,html,json}."""
    if len(model_paths) < 2:
        raise ValueError("compare needs at least two models (the first is the reference)")
    out = Path(out_dir)
    data = load_eval_data(data_path, split_file, split_name, data_format)
    runs = _evaluate_each(
        model_paths, data, out, reports, tta=tta, n_boot=n_boot, seed=seed, ci_unit=ci_unit, progress=progress
    )
    ids, y, scores, groups = _aligned(runs)
    names = [f"{k + 1}. {run.metrics['model']['members'][0]['name']}" for k, run in enumerate(runs)]
    pairing = groups if ci_unit == "group" else None
    rows = [
        _model_row(names[k], run, (y, scores[0], scores[k], pairing) if k else None, n_boot, seed, reports)
        for k, run in enumerate(runs)
    ]
    subgroups = subgroup_rows(runs, names)
    result = {
        "reference": names[0],
        "n_common": len(ids),
        "test": "paired bootstrap of the AUC difference "
        f"({n_boot} resamples of {'lesion groups' if ci_unit == 'group' else 'images'}, seed {seed})",
        "models": rows,
        "subgroups": subgroups,
        "data": data.info,
        "disclaimer": DISCLAIMER,
    }
    _write_outputs(
        out,
        result,
        [
            plots.Curve(n, y, sc, r.metrics["threshold"]["value"])
            for n, sc, r in zip(names, scores, runs, strict=True)
        ],
    )
    return result


def _evaluate_each(
    model_paths: Sequence[ArtifactPath], data: EvalData, out: Path, reports: bool, **options: Any
) -> list[EvalRun]:
    """Each model evaluated on the same records, into its own sub-folder (01-name, 02-name...)."""
    runs = []
    for k, path in enumerate(model_paths):
        _, meta = load_meta(path)
        folder = out / f"{k + 1:02d}-{_slug(meta.name)}"
        runs.append(evaluate_data([path], data, folder, report=reports, **options))
    return runs


def _model_row(
    name: str, run: EvalRun, paired: tuple[Any, ...] | None, n_boot: int, seed: int, reports: bool
) -> dict[str, Any]:
    """One model's row: its figures and, against the reference, the paired AUC test."""
    member = run.metrics["model"]["members"][0]
    row: dict[str, Any] = {"model": name, "path": member["path"], "architecture": member["architecture"]}
    row.update({col: _get(run.metrics, path) for col, path in COLUMNS})
    row["auc_ci"] = run.metrics["ci"]["binary"].get("auc")
    test = None
    if paired is not None:
        y, reference, scores, groups = paired
        test = paired_auc_test(y, reference, scores, n_boot=n_boot, seed=seed, groups=groups)
    row["delta_auc"] = test["delta"] if test else None
    row["delta_auc_ci"] = test["ci"] if test else None
    row["p_value"] = test["p_value"] if test else None
    row["report"] = str(run.out_dir / "report.html") if reports else None
    return jsonable(row)


def _write_outputs(out: Path, result: dict[str, Any], curves: list[plots.Curve]) -> None:
    """comparison.json, .csv, .md and .html."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(
        json.dumps(result, indent=1, allow_nan=False) + "\n", encoding="utf-8"
    )
    _write_csv(out / "comparison.csv", result["models"])
    names = [row["model"] for row in result["models"]]
    (out / "comparison.md").write_text(
        markdown_table(result["models"]) + "\n\n" + subgroup_markdown(result["subgroups"], names) + "\n",
        encoding="utf-8",
    )
    _write_html(out / "comparison.html", result, curves)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list) and len(value) == 2:
        return f"{value[0]:.3f}–{value[1]:.3f}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e-3 and value else f"{value:.3f}"
    return str(value)


TABLE_KEYS = (
    "model",
    "n",
    "auc",
    "auc_ci",
    "delta_auc",
    "delta_auc_ci",
    "p_value",
    "sensitivity",
    "specificity",
    "threshold",
    "spec@sens95",
    "balanced_accuracy",
    "macro_f1",
    "auc_macro",
    "ece",
)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    header = "| " + " | ".join(TABLE_KEYS) + " |"
    rule = "|" + "|".join("---" for _ in TABLE_KEYS) + "|"
    lines = ["| " + " | ".join(_cell(row.get(k)) for k in TABLE_KEYS) + " |" for row in rows]
    return "\n".join([header, rule, *lines])


#: Per-subgroup figures compared across models (from each model's metrics.json "subgroups").
SUBGROUP_KEYS = ("auc", "sensitivity", "balanced_accuracy")


def subgroup_rows(runs: Sequence[EvalRun], names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (attribute, value), e.g. age band 60–69: n, and AUC / sensitivity at each model's
    own threshold / balanced accuracy for every model side by side."""
    rows: list[dict[str, Any]] = []
    first = runs[0].metrics.get("subgroups", {})
    for attribute, table in first.items():
        for value, ref in table.items():
            row: dict[str, Any] = {
                "attribute": attribute,
                "value": value,
                "n": ref.get("n"),
                "n_malignant": ref.get("n_malignant"),
                "few_cases": ref.get("few_cases"),
            }
            for name, run in zip(names, runs, strict=True):
                cell = run.metrics.get("subgroups", {}).get(attribute, {}).get(value, {})
                row.update({f"{key} · {name}": cell.get(key) for key in SUBGROUP_KEYS})
            rows.append(jsonable(row))
    return rows


def subgroup_markdown(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """Markdown: AUC and sensitivity per subgroup and model (few-case rows marked *)."""
    if not rows:
        return "(no age, sex or site in this data: no subgroup table)"
    keys = [f"{key} · {name}" for key in ("auc", "sensitivity") for name in names]
    header = "| subgroup | n (malignant) | " + " | ".join(keys) + " |"
    rule = "|" + "|".join("---" for _ in range(len(keys) + 2)) + "|"
    lines = [
        f"| {r['attribute']}: {r['value']}{' *' if r['few_cases'] else ''} | {r['n']} ({r['n_malignant']}) | "
        + " | ".join(_cell(r.get(k)) for k in keys)
        + " |"
        for r in rows
    ]
    note = "\n\n\\* fewer than 10 malignant or benign images: too noisy to compare."
    return "\n".join([header, rule, *lines]) + note


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    keys = list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()})


def _write_html(path: Path, result: dict[str, Any], curves: Sequence[plots.Curve]) -> None:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in TABLE_KEYS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(k)))}</td>" for k in TABLE_KEYS) + "</tr>"
        for row in result["models"]
    )
    links = "".join(
        f"<li><a href='{html.escape(Path(r['report']).parent.name)}/report.html'>"
        f"{html.escape(r['model'])}</a></li>"
        for r in result["models"]
        if r.get("report")
    )
    figs = "".join(
        f"<img src='{plots.data_uri(data)}' alt='{alt}'>"
        for data, alt in (
            (plots.roc_png(curves, "ROC curves (same images)"), "overlaid ROC curves"),
            (plots.pr_png(curves), "overlaid precision-recall curves"),
        )
    )
    page = f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>dermalens comparison</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:.25em .5em;text-align:right}}
th{{background:#f3f3f3}}td:first-child{{text-align:left}}img{{max-width:48%;border:1px solid #eee}}
.disclaimer{{background:#fff4e5;border:1px solid #f0b36b;padding:.6em 1em}}</style></head><body>
<h1>Model comparison</h1><p class=disclaimer><strong>{html.escape(DISCLAIMER)}</strong></p>
<p>Reference: {html.escape(result["reference"])} · {result["n_common"]} images scored by every model ·
Δ AUC and p: {html.escape(result["test"])}. Each model runs at its own operating threshold.</p>
<div style="overflow-x:auto"><table><tr>{head}</tr>{body}</table></div><div>{figs}</div>
<h2>Per-model reports</h2><ul>{links}</ul>
</body></html>"""
    path.write_text(page, encoding="utf-8")

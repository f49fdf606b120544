"""The evaluation report: one self-contained HTML page (figures and thumbnails embedded).

It is written for a person deciding whether, and at which threshold, to trust a model:
headline figures with their 95 % intervals first, then the curves with the operating
point, calibration, a threshold table to pick another operating point, per-class and
subgroup figures, and the mistakes the model was most sure of — with the disclaimer.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import confusion_matrix

from dermalens.evaluation import plots
from dermalens.evaluation.metrics import binary_metrics, malignant_truth
from dermalens.inference.results import DISCLAIMER

if TYPE_CHECKING:
    from dermalens.evaluation.run import EvalRun

#: Thresholds of the threshold table (the operating and the fixed-sensitivity ones are added).
TABLE_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
GALLERY_SIZE = 8

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.disclaimer{background:#fff4e5;border:1px solid #f0b36b;padding:.6em 1em;border-radius:4px}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs img{max-width:100%;border:1px solid #eee}
.gallery{display:flex;flex-wrap:wrap;gap:.8em}.gallery figure{margin:0;width:150px;font-size:.8em}
.gallery img{width:140px;border:1px solid #ccc}.muted{color:#777}.op{background:#eef6ff;font-weight:bold}
"""


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else html.escape(str(value))


def with_ci(value: Any, interval: Sequence[float] | None) -> str:
    if not interval:
        return fmt(value)
    return fmt(value) + f" <span class=muted>({interval[0]:.3f}–{interval[1]:.3f})</span>"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], row_class: Sequence[str] = ()) -> str:
    """An HTML table; cells are already-escaped HTML."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        f"<tr class='{row_class[i] if i < len(row_class) else ''}'>"
        + "".join(f"<td>{c}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def img(data: bytes, alt: str) -> str:
    return f"<img src='{plots.data_uri(data)}' alt='{html.escape(alt)}'>"


def summary_section(metrics: dict[str, Any]) -> str:
    binary, ci = metrics["binary"], metrics["ci"]
    names = {
        "auc": "AUC (ROC)",
        "pr_auc": "PR AUC (average precision)",
        "sensitivity": "Sensitivity",
        "specificity": "Specificity",
        "ppv": "PPV (precision)",
        "npv": "NPV",
        "f1": "F1 (malignant)",
    }
    rows = [[label, with_ci(binary[key], ci["binary"].get(key))] for key, label in names.items()]
    rows += [["ECE (p_malignant, 10 bins)", fmt(binary["ece"])], ["Brier score", fmt(binary["brier"])]]
    multi = metrics.get("multiclass")
    if multi:
        for key, label in (
            ("accuracy", "Accuracy (dx)"),
            ("balanced_accuracy", "Balanced accuracy (dx)"),
            ("macro_f1", "Macro F1 (dx)"),
            ("auc_macro", "Macro AUC one-vs-rest (dx)"),
        ):
            rows.append([label, with_ci(multi[key], ci.get("multiclass", {}).get(key))])
    spec_rows = [
        [f"{float(t):.0%}", fmt(v["specificity"]), fmt(v["threshold"], 4)]
        for t, v in binary["specificity_at_sensitivity"].items()
    ]
    unit = "lesion groups" if ci["unit"] == "group" else "images"
    return (
        "<h2>Summary</h2>"
        + table(["Figure", f"Value (95 % CI, {ci['n_boot']} bootstrap resamples of {unit})"], rows)
        + "<h3>Specificity at fixed sensitivity</h3>"
        + table(["Sensitivity ≥", "Specificity", "Threshold"], spec_rows)
    )


def threshold_section(y: np.ndarray, p: np.ndarray, metrics: dict[str, Any]) -> str:
    operating = metrics["threshold"]["value"]
    points = metrics["binary"]["specificity_at_sensitivity"].values()
    extra = [v["threshold"] for v in points if v["threshold"] is not None]
    cuts = sorted({round(float(t), 6) for t in (*TABLE_THRESHOLDS, operating, *extra)})
    rows, classes = [], []
    for cut in cuts:
        m = binary_metrics(y, p, cut, full=False)
        rows.append(
            [
                fmt(cut, 4),
                fmt(m["sensitivity"]),
                fmt(m["specificity"]),
                fmt(m["ppv"]),
                fmt(m["npv"]),
                f"{int((p >= cut).sum())} ({(p >= cut).mean():.0%})",
            ]
        )
        classes.append("op" if abs(cut - operating) < 1e-6 else "")
    return (
        "<h2>Threshold table</h2><p>Decision: malignant when p_malignant ≥ threshold. "
        "The highlighted row is the operating threshold used above.</p>"
        + table(["Threshold", "Sensitivity", "Specificity", "PPV", "NPV", "Flagged malignant"], rows, classes)
    )


def per_class_section(multi: dict[str, Any]) -> str:
    per = multi["per_class"]
    rows = [
        [c, fmt(v["precision"]), fmt(v["recall"]), fmt(v["f1"]), fmt(v["auc"]), str(v["support"])]
        for c, v in per.items()
    ]
    header = ["Class", "Precision", "Recall", "F1", "AUC (one-vs-rest)", "Support"]
    return "<h2>Per class</h2>" + table(header, rows) + img(plots.per_class_png(per), "per-class bars")


def subgroup_section(subgroups: dict[str, dict[str, dict[str, Any]]]) -> str:
    if not subgroups:
        return "<h2>Subgroups</h2><p class=muted>No age, sex or site metadata in this dataset.</p>"
    rows = []
    for attribute, table_rows in subgroups.items():
        for value, m in table_rows.items():
            rows.append(
                [
                    f"{html.escape(attribute)}: {html.escape(value)}" + (" *" if m["few_cases"] else ""),
                    str(m["n"]),
                    str(m["n_malignant"]),
                    fmt(m["auc"]),
                    fmt(m["sensitivity"]),
                    fmt(m["specificity"]),
                    fmt(m.get("balanced_accuracy")),
                ]
            )
    header = ["Subgroup", "n", "Malignant", "AUC", "Sensitivity", "Specificity", "Balanced acc. (dx)"]
    return (
        "<h2>Subgroups</h2><p>* fewer than 10 malignant or benign images: too noisy to compare.</p>"
        + table(header, rows)
    )


def gallery_section(run: EvalRun, y: np.ndarray) -> str:
    """The mistakes the model was most confident about (binary misses and false alarms, wrong dx)."""
    combined, records = run.combined, run.records
    p, cut = combined.p_malignant, run.metrics["threshold"]["value"]
    predicted = combined.prediction
    groups = {
        "Missed malignant (lowest p_malignant)": sorted(
            np.nonzero((y == 1) & (p < cut))[0].tolist(), key=lambda i: p[i]
        ),
        "False alarms (highest p_malignant among benign)": sorted(
            np.nonzero((y == 0) & (p >= cut))[0].tolist(), key=lambda i: -p[i]
        ),
        "Wrong diagnosis (most confident)": sorted(
            (i for i, r in enumerate(records) if r.label in combined.classes and predicted[i] != r.label),
            key=lambda i: -combined.probs[i].max(),
        ),
    }
    parts = ["<h2>Most confident mistakes</h2>"]
    for title, indices in groups.items():
        figures = []
        for i in indices[:GALLERY_SIZE]:
            uri = plots.thumbnail_uri(records[i].path)
            if uri is None:
                continue
            caption = (
                f"{html.escape(records[i].image_id)}<br>true {html.escape(records[i].label)} · "
                f"pred {html.escape(predicted[i])} ({combined.probs[i].max():.2f})"
                f"<br>p_mal {p[i]:.3f}"
            )
            figures.append(
                f"<figure><img src='{uri}' alt='{html.escape(records[i].image_id)}'>"
                f"<figcaption>{caption}</figcaption></figure>"
            )
        body = "".join(figures) or "<p class=muted>None.</p>"
        parts.append(f"<h3>{title}</h3><div class=gallery>{body}</div>")
    return "".join(parts)


def figures_section(metrics: dict[str, Any], curve: plots.Curve) -> str:
    """ROC, precision-recall, reliability and the confusion matrices."""
    y, p, cut = curve.y, curve.p, curve.threshold or 0.5
    figs = [
        img(plots.roc_png([curve]), "ROC curve"),
        img(plots.pr_png([curve]), "precision-recall curve"),
        img(plots.reliability_png(y, p), "reliability diagram"),
        img(
            plots.confusion_png(
                confusion_matrix(y, (p >= cut).astype(int), labels=[0, 1]).tolist(),
                ["benign", "malignant"],
                "Malignant vs benign at the threshold",
            ),
            "binary confusion matrix",
        ),
    ]
    multi = metrics.get("multiclass")
    if multi:
        cm = multi["confusion_matrix"]
        figs.append(
            img(
                plots.confusion_png(cm["matrix"], cm["labels"], "Diagnosis confusion matrix"),
                "diagnosis confusion matrix",
            )
        )
    return "<h2>Curves, calibration and confusion</h2><div class=figs>" + "".join(figs) + "</div>"


def skipped_section(skipped: dict[str, Any]) -> str:
    items = [html.escape(m) + " (missing)" for m in skipped["missing"]] + [
        f"{html.escape(u['image'])} ({html.escape(u['reason'])})" for u in skipped["unreadable"]
    ]
    listed = (
        "<ul>" + "".join(f"<li>{s}</li>" for s in items) + "</ul>" if items else "<p class=muted>None.</p>"
    )
    return "<h2>Skipped images</h2>" + listed


def write_report(run: EvalRun, path: Path) -> Path:
    metrics = run.metrics
    y = malignant_truth([r.label for r in run.records])
    p = run.combined.p_malignant
    cut = metrics["threshold"]["value"]
    names = " + ".join(m["name"] for m in metrics["model"]["members"])
    data = metrics["data"]
    split = f", split {data['split_name']!r}" if data.get("split_name") else ""
    multi = metrics.get("multiclass")
    page = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>dermalens evaluation: {html.escape(names)}</title><style>{CSS}</style></head><body>",
        f"<h1>Evaluation of {html.escape(names)}</h1>",
        f"<p class=disclaimer><strong>{html.escape(DISCLAIMER)}</strong></p>",
        f"<p>Data: <code>{html.escape(str(data['path']))}</code>{html.escape(split)} · "
        f"{metrics['n']} images scored, {metrics['n_skipped']} skipped · "
        f"TTA {metrics['model']['tta']} · threshold "
        f"<strong>{cut:.4f}</strong> ({html.escape(metrics['threshold']['rule'])}) · "
        f"{metrics['ood']['n_flagged']} flagged out-of-distribution.</p>",
        summary_section(metrics),
        figures_section(metrics, plots.Curve(names, y, p, cut)),
        threshold_section(y, p, metrics),
        per_class_section(multi) if multi else "",
        subgroup_section(metrics["subgroups"]),
        gallery_section(run, y),
        skipped_section(metrics["skipped"]),
        f"<p class=muted>dermalens {metrics['dermalens_version']} · {metrics['created']} · "
        "predictions.csv and metrics.json beside this page hold every number shown.</p>",
        f"<p class=disclaimer>{html.escape(DISCLAIMER)}</p></body></html>",
    ]
    path.write_text("\n".join(page), encoding="utf-8")
    return path

"""Dataset summary (counts, groups, sizes, metadata) and an EDA report (HTML with PNG plots)."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path
from typing import Any

from dermalens.core.decode import ImageDecodeError
from dermalens.core.taxonomy import DIAGNOSES
from dermalens.data.records import Dataset


def summarize(dataset: Dataset, *, sizes: bool = True) -> dict[str, Any]:
    """A JSON-able summary of `dataset` (the `dermalens data summary --json` object)."""
    records = dataset.records
    size_counts: Counter[str] = Counter()
    if sizes:
        for r in records:
            try:
                w, h = _header_size(r.path)
                size_counts[f"{w}x{h}"] += 1
            except ImageDecodeError:
                size_counts["unreadable"] += 1
    ages = [r.age for r in records if r.age is not None]
    return {
        "format": dataset.format,
        "root": str(dataset.root),
        "n_images": len(records),
        "counts": dataset.counts(),
        "binary_counts": dataset.binary_counts(),
        "n_groups": len({r.group for r in records}),
        "sources": {
            source: {"n_images": sum(counts.values()), "counts": counts}
            for source, counts in dataset.source_counts().items()
        },
        "missing": list(dataset.missing),
        "skipped": [{"image": i, "reason": why} for i, why in dataset.skipped],
        "unreadable": [{"image": i, "reason": why} for i, why in dataset.unreadable],
        "image_sizes": dict(size_counts.most_common()),
        "metadata": {
            "age": {
                "known": len(ages),
                "unknown": len(records) - len(ages),
                "min": min(ages) if ages else None,
                "max": max(ages) if ages else None,
                "mean": round(sum(ages) / len(ages), 1) if ages else None,
            },
            "sex": dict(Counter(r.sex or "unknown" for r in records).most_common()),
            "site": dict(Counter(r.site or "unknown" for r in records).most_common()),
        },
    }


def _header_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError) as err:
        raise ImageDecodeError(str(err)) from None


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable text `dermalens data summary` prints."""
    lines = [
        f"{summary['root']}  ({summary['format']})",
        f"images: {summary['n_images']}   groups (lesions/patients): {summary['n_groups']}",
        "",
        "class        n      %   name",
    ]
    total = max(1, summary["n_images"])
    for label, n in sorted(summary["counts"].items(), key=lambda kv: -kv[1]):
        name = DIAGNOSES[label].name if label in DIAGNOSES else "(binary label only)"
        lines.append(f"{label:<10} {n:>5} {100 * n / total:>6.1f}   {name}")
    binary = ", ".join(f"{k} {v}" for k, v in summary["binary_counts"].items())
    lines += ["", f"benign/malignant: {binary}"]
    if len(summary["sources"]) > 1:
        lines.append("by source:")
        for source, part in summary["sources"].items():
            counts = ", ".join(f"{k} {v}" for k, v in sorted(part["counts"].items(), key=lambda kv: -kv[1]))
            lines.append(f"  {source:<14} {part['n_images']:>6}: {counts}")
    lines.append(
        f"missing images: {len(summary['missing'])}   unreadable: {len(summary['unreadable'])}"
        + (f"   left out (no 7-class label): {len(summary['skipped'])}" if summary["skipped"] else "")
    )
    if summary["missing"]:
        lines.append(
            "missing: " + ", ".join(summary["missing"][:8]) + (" ..." if len(summary["missing"]) > 8 else "")
        )
    sizes = list(summary["image_sizes"].items())[:5]
    lines.append("image sizes: " + ", ".join(f"{s} ({n})" for s, n in sizes))
    age = summary["metadata"]["age"]
    if age["known"]:
        lines.append(
            f"age: {age['known']} known (mean {age['mean']}, {age['min']}–{age['max']}), {age['unknown']} unknown"
        )
    lines.append("sex: " + ", ".join(f"{k} {v}" for k, v in summary["metadata"]["sex"].items()))
    return "\n".join(lines)


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bar(ax: Any, counts: dict[str, int], title: str) -> None:
    ax.bar(list(counts), list(counts.values()), color="#3b6ea5")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)


def write_eda_report(
    dataset: Dataset, summary: dict[str, Any], out_dir: str | Path, samples: int = 6
) -> Path:
    """Write ``out_dir/eda.html`` (plots embedded as PNG, also saved beside it) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = sorted(summary["counts"])
    figures: dict[str, str] = {}
    for name, draw in (
        ("classes", lambda: _class_figure(plt, summary)),
        ("age", lambda: _age_figure(plt, dataset, labels)),
        ("sex", lambda: _stacked_figure(plt, dataset, labels, "sex")),
        ("site", lambda: _stacked_figure(plt, dataset, labels, "site")),
        ("sizes", lambda: _sizes_figure(plt, summary)),
        ("montage", lambda: _montage(plt, dataset, labels, samples)),
    ):
        fig = draw()
        figures[name] = _png(fig)
        plt.close(fig)
    for name, data in figures.items():
        (out / f"{name}.png").write_bytes(base64.b64decode(data))
    path = out / "eda.html"
    path.write_text(_eda_html(summary, figures), encoding="utf-8")
    return path


def _class_figure(plt: Any, summary: dict[str, Any]) -> Any:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    _bar(axes[0], summary["counts"], "images per class")
    _bar(axes[1], summary["binary_counts"], "benign / malignant")
    return fig


def _age_figure(plt: Any, dataset: Dataset, labels: list[str]) -> Any:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for label in labels:
        ages = [r.age for r in dataset.records if r.label == label and r.age is not None]
        if ages:
            ax.hist(ages, bins=range(0, 95, 5), histtype="step", label=label, density=True)
    ax.set_title("age by class (density)")
    ax.legend(fontsize=7)
    return fig


def _stacked_figure(plt: Any, dataset: Dataset, labels: list[str], attribute: str) -> Any:
    """Images per class, stacked by the values of `attribute` (sex or body site)."""
    import numpy as np

    values = sorted({getattr(r, attribute) or "unknown" for r in dataset.records})
    counts = Counter((r.label, getattr(r, attribute) or "unknown") for r in dataset.records)
    table = np.array([[counts[(lab, v)] for v in values] for lab in labels])
    fig, ax = plt.subplots(figsize=(max(6, len(values) * 0.6), 3.5))
    bottom = np.zeros(len(labels))
    for col, value in enumerate(values):
        ax.bar(labels, table[:, col], bottom=bottom, label=value)
        bottom += table[:, col]
    ax.set_title(f"{attribute} by class")
    ax.legend(fontsize=6, ncol=2)
    return fig


def _sizes_figure(plt: Any, summary: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(8, 3))
    sizes = list(summary["image_sizes"].items())[:10]
    ax.barh([s for s, _ in sizes], [n for _, n in sizes], color="#6a8f3b")
    ax.set_title("image sizes (most common)")
    return fig


def _montage(plt: Any, dataset: Dataset, labels: list[str], samples: int) -> Any:
    """`samples` random images of each class (seeded), one row per class."""
    import numpy as np

    from dermalens.core.decode import decode_image

    fig, axes = plt.subplots(len(labels), samples, figsize=(samples * 1.6, len(labels) * 1.3), squeeze=False)
    rng = np.random.default_rng(0)
    for row, label in enumerate(labels):
        pool = [r for r in dataset.records if r.label == label]
        picks: Any = rng.choice(len(pool), size=min(samples, len(pool)), replace=False) if pool else []
        for col in range(samples):
            ax = axes[row][col]
            ax.axis("off")
            if col < len(picks):
                ax.imshow(decode_image(pool[int(picks[col])].path, min_size=(120, 90)))
        axes[row][0].set_title(label, loc="left", fontsize=9)
    return fig


def _eda_html(summary: dict[str, Any], figures: dict[str, str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in summary["counts"].items())
    images = "".join(
        f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)} plot" src="data:image/png;base64,{data}">'
        for name, data in figures.items()
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>dermalens EDA</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}"
        "td{padding:2px 10px}</style>"
        f"<h1>Dataset summary: {html.escape(summary['root'])}</h1>"
        f"<p>format {summary['format']} · {summary['n_images']} images · {summary['n_groups']} groups · "
        f"{len(summary['missing'])} missing · {len(summary['unreadable'])} unreadable</p>"
        f"<table><tr><th>class</th><th>n</th></tr>{rows}</table>{images}</html>"
    )

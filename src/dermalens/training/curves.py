"""Per-epoch metrics log (CSV + JSON) and training curves (PNG)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def write_metrics_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(history, indent=1))
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def write_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """Loss, balanced accuracy and AUC per epoch, stages marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(range(1, len(history) + 1))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes[0].plot(steps, [r["train_loss"] for r in history], label="train")
    axes[0].plot(steps, [r["val_loss"] for r in history], label="validation")
    axes[0].set_title("loss")
    axes[1].plot(steps, [r["val_balanced_accuracy"] for r in history], color="C2")
    axes[1].set_title("validation balanced accuracy")
    axes[2].plot(steps, [r["val_auc"] for r in history], color="C3")
    axes[2].set_title("validation benign/malignant AUC")
    for ax in axes:
        ax.set_xlabel("epoch (all stages)")
        for i in range(1, len(history)):
            if history[i]["stage"] != history[i - 1]["stage"]:
                ax.axvline(i + 0.5, color="grey", linestyle=":")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

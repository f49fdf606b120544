"""What `dermalens predict` shows while it scores: a table row per image (or a block per image with
``--compare``) printed as each batch finishes, a progress bar for long jobs, heatmap files, and
the summary at the end. It counts nothing itself (the job's `Summary` is the one counter) and holds
no rows: memory stays bounded. Each table row is the result's flat form (`Prediction.flat`), the
same values the CSV and Parquet files hold."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dermalens.archive.job import Scored, Summary
from dermalens.inference.results import REFUSAL_REASON, Prediction, PredictionError, coverage_words


@dataclass
class Screen:
    """Prints each batch (unless quiet) and writes heatmaps; the accuracy it prints is the job's count."""

    quiet: bool = False
    compare: bool = False
    heatmaps: Path | None = None
    bar: Any = None
    #: The coverage of the sets shown (said once, at the end, in words).
    coverage: float | None = None
    _header: bool = field(default=False, repr=False)

    def start(self, summary: Summary) -> None:
        """A progress bar over the images left: done and left, images/s, ETA (tqdm), and the
        refused and unreadable counts."""
        from tqdm import tqdm

        if summary.already:
            print(
                f"{summary.already} of {summary.total} images already in the output: skipped", file=sys.stderr
            )
        self.bar = tqdm(total=summary.left, unit="img", desc="scoring", disable=self.quiet, file=sys.stderr)

    def batch(self, scored: list[Scored], summary: Summary) -> None:
        for item, _, result in scored:
            if isinstance(result, Prediction) and self.heatmaps is not None:
                from dermalens.inference.overlay import save_overlay

                save_overlay(result, self.heatmaps / f"{item.path.stem}_heatmap.png")
            if not self.quiet:
                self._show(item.path, result)
        if self.bar is not None:
            self.bar.update(len(scored) or summary.scored - self.bar.n)
            self.bar.set_postfix(refused=summary.refused, unreadable=summary.unreadable)

    def _print(self, text: str) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text)
        else:
            print(text)

    def _show(self, path: Path, result: Prediction | PredictionError) -> None:
        if self.compare and isinstance(result, Prediction):
            self._comparison(path, [*(result.members or []), result])
            return
        if not self._header:
            self._print(
                f"{'file':<40} {'prediction':<10} {'set':<16} {'p_malig':>7}  {'decision':<9} {'ood':<4} truth"
            )
            self._header = True
        name = path.name[:40]
        if isinstance(result, PredictionError):
            self._print(f"{name:<40} ERROR: {result.error}")
            return
        row = result.flat()
        mark = "" if row["correct"] is None else ("✓" if row["correct"] else "✗")
        diagnosis = row["prediction"] or "—"  # refused: no verdict shown
        p_mal = "—" if result.refused else f"{row['p_malignant']:.4f}"
        ood = "OOD" if row["ood"] else ""
        shown = row["prediction_set"] or "—"  # refused or not fitted: no set
        truth = row["true_label"] or ""
        self._print(
            f"{name:<40} {diagnosis:<10} {shown:<16} {p_mal:>7}  {row['decision']:<9} {ood:<4} {truth} {mark}"
        )
        if row["set_coverage"] is not None:
            self.coverage = row["set_coverage"]

    def _comparison(self, path: Path, results: list[Prediction]) -> None:
        """One image: a row per model and the ensemble (last). A refused row has no verdict."""
        lines = [
            f"\n{path.name}",
            f"  {'model':<28} {'verdict':<10} {'diagnosis':<10} {'confidence':>10} {'P(benign)':>10} {'P(malig.)':>10}",
        ]
        for one in results:
            if one.refused:
                lines.append(
                    f"  {one.model[:28]:<28} {'refused':<10} {'—':<10} {'—':>10} {'—':>10} {'—':>10}"
                )
                continue
            confidence = one.probabilities[one.top_class]
            lines.append(
                f"  {one.model[:28]:<28} {one.decision:<10} {one.top_class:<10} {confidence:>10.3f} "
                f"{1 - one.p_malignant:>10.3f} {one.p_malignant:>10.3f}"
            )
        self._print("\n".join(lines))

    def finish(self, summary: Summary, threshold: float) -> None:
        if self.bar is not None:
            self.bar.close()
        assessed = summary.scored - summary.refused - summary.unreadable
        print(
            f"\n{summary.scored - summary.unreadable} images read, {summary.unreadable} unreadable; {assessed} "
            f"assessed, {summary.malignant} of them malignant at threshold {threshold:.3f}; "
            f"{summary.refused} refused (not dermoscopy: no verdict)"
        )
        if summary.refused:
            print(f"refused: {REFUSAL_REASON}")
        if self.coverage is not None:
            print(f"set: {coverage_words(self.coverage)}")
        if summary.judged or summary.labelled_refused:
            accuracy = f"{summary.right / summary.judged:.3f}" if summary.judged else "n/a"
            print(
                f"accuracy (benign/malignant) on {summary.judged} assessed labelled file names: {accuracy}"
                + (
                    f"; {summary.labelled_refused} labelled file(s) refused, not counted"
                    if summary.labelled_refused
                    else ""
                )
            )
        print(summary.line())

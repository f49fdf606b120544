"""The HTML reports looked at as a person would: rendered in headless Chromium, every image decoded."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file() and shutil.which("chromium") is None, reason="needs /usr/bin/chromium"
    ),
]


@dataclass
class Rendered:
    widths: list[int]  # naturalWidth of every <img> (0 = not decoded)
    text: str
    errors: list[str]  # console errors and any request that left the file


def render(page_path: Path) -> Rendered:
    """Open a report offline; return its images' natural widths, its text, and console errors."""
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on(
                "request",
                lambda req: (
                    errors.append(f"network: {req.url}")
                    if not req.url.startswith(("file:", "data:"))
                    else None
                ),
            )
            page.goto(page_path.as_uri(), wait_until="load")
            widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
            text = page.inner_text("body")
        finally:
            browser.close()
    return Rendered(list(widths), text, errors)


def test_evaluation_report_renders_with_all_images(evaluation: Path) -> None:
    shown = render(evaluation / "report.html")
    assert len(shown.widths) >= 7  # 6 figures + thumbnails of mistakes
    assert all(w > 0 for w in shown.widths), shown.widths
    text = shown.text
    for heading in (
        "Summary",
        "Threshold table",
        "Per class",
        "Subgroups",
        "Most confident mistakes",
        "Skipped images",
        "not a diagnosis",
    ):
        assert heading in text
    assert "images/corrupt.jpg" in text and "images/missing.jpg" in text
    assert shown.errors == []


def test_comparison_page_renders(
    tiny_artifact: Path, baseline_artifact: Path, dataset_csv: Path, split_file: Path, tmp_path: Path
) -> None:
    from dermalens.evaluation.compare import compare

    compare(
        [tiny_artifact, baseline_artifact],
        dataset_csv,
        tmp_path,
        split_file=split_file,
        n_boot=10,
        reports=False,
    )
    shown = render(tmp_path / "comparison.html")
    assert len(shown.widths) == 2 and all(w > 0 for w in shown.widths)
    assert "tiny-baseline" in shown.text and shown.errors == []

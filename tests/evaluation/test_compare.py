"""`compare`: side-by-side files, the paired AUC test, and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dermalens.evaluation.compare import compare


@pytest.fixture(scope="module")
def comparison(
    tiny_artifact: Path,
    baseline_artifact: Path,
    dataset_csv: Path,
    split_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    out = tmp_path_factory.mktemp("compare")
    compare([tiny_artifact, baseline_artifact], dataset_csv, out, split_file=split_file, n_boot=50)
    return out


def test_comparison_files(comparison: Path) -> None:
    names = {p.name for p in comparison.iterdir()}
    assert {"comparison.md", "comparison.csv", "comparison.html", "comparison.json"} <= names
    assert {"01-tiny-test", "02-tiny-baseline"} <= names
    for sub in ("01-tiny-test", "02-tiny-baseline"):
        assert {"predictions.csv", "metrics.json", "report.html"} <= {
            p.name for p in (comparison / sub).iterdir()
        }
    result = json.loads((comparison / "comparison.json").read_text())
    assert result["n_common"] == 14 and result["reference"] == "1. tiny-test"
    first, second = result["models"]
    assert first["delta_auc"] is None and first["p_value"] is None
    assert second["architecture"] == "baseline-logreg" and 0 < second["p_value"] <= 1
    assert second["delta_auc"] == pytest.approx(second["auc"] - first["auc"])
    low, high = second["delta_auc_ci"]
    assert low <= second["delta_auc"] <= high
    per_model = json.loads((comparison / "02-tiny-baseline" / "metrics.json").read_text())
    assert per_model["binary"]["auc"] == pytest.approx(second["auc"])
    with open(comparison / "comparison.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == ["1. tiny-test", "2. tiny-baseline"]
    main_table, subgroup_table = (comparison / "comparison.md").read_text().split("\n\n", 1)
    assert main_table.startswith("| model | n | auc") and len(main_table.splitlines()) == 4
    assert "| sex: female" in subgroup_table and "auc · 2. tiny-baseline" in subgroup_table
    sexes = [r for r in result["subgroups"] if r["attribute"] == "sex"]
    assert sum(r["n"] for r in sexes) == result["n_common"]  # unknown is a row: rows add up


def test_compare_image_only_with_metadata_model(
    tiny_artifact: Path, tiny_fusion_artifact: Path, dataset_csv: Path, split_file: Path, tmp_path: Path
) -> None:
    """The ablation path of issue #7: a metadata-fusion model is scored with its records' metadata."""
    result = compare(
        [tiny_artifact, tiny_fusion_artifact],
        dataset_csv,
        tmp_path,
        split_file=split_file,
        n_boot=50,
        reports=False,
    )
    first, second = result["models"]
    assert result["n_common"] == 14 and second["p_value"] is not None
    assert second["auc"] != first["auc"]


def test_compare_needs_two_models(tiny_artifact: Path, dataset_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two"):
        compare([tiny_artifact], dataset_csv, tmp_path)


def test_cli_compare(
    tiny_artifact: Path,
    baseline_artifact: Path,
    dataset_csv: Path,
    split_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dermalens.cli import main

    code = main(
        [
            "compare",
            str(tiny_artifact),
            str(baseline_artifact),
            "--data",
            str(dataset_csv),
            "--split",
            str(split_file),
            "--out",
            str(tmp_path),
            "--n-boot",
            "10",
            "--no-reports",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "2. tiny-baseline" in out and "comparison.html" in out
    assert not (tmp_path / "01-tiny-test" / "report.html").exists()

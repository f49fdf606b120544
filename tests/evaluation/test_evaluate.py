"""`evaluate` end to end on a tiny generated dataset: files, consistency, skipped images, parity, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from dermalens.core.taxonomy import DX_CODES, MALIGNANT, is_malignant
from dermalens.evaluation.evaluate import evaluate

from .conftest import CORRUPT, MISSING, make_dataset


def read_predictions(folder: Path) -> list[dict[str, str]]:
    with open(folder / "predictions.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_files_and_skipped_images(evaluation: Path) -> None:
    assert {p.name for p in evaluation.iterdir()} >= {"predictions.csv", "metrics.json", "report.html"}
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["n"] == 7 * 6 and metrics["n_skipped"] == 2
    assert metrics["skipped"]["missing"] == [MISSING]
    assert [u["image"] for u in metrics["skipped"]["unreadable"]] == [CORRUPT]
    rows = read_predictions(evaluation)
    assert len(rows) == metrics["n"] and not {MISSING, CORRUPT} & {r["image"] for r in rows}
    assert list(rows[0]) == [
        "image",
        "source",
        "label",
        *(f"p_{c}" for c in DX_CODES),
        "p_malignant",
        "prediction",
        "prediction_set",
        "set_size",
        "decision",
        "ood",
        "ood_score",
    ]
    assert metrics["threshold"] == {"value": 0.3, "source": "artifact", "rule": "default 0.5 (not tuned)"}
    assert set(metrics["subgroups"]) == {"age", "sex", "site"}
    assert {r["source"] for r in rows} == {"csv"} and set(metrics["by_source"]) == {"csv"}
    assert "not a diagnosis" in metrics["disclaimer"]


def test_metrics_json_matches_sklearn_on_predictions_csv(evaluation: Path) -> None:
    """The 'done when' check: every figure recomputes from predictions.csv with scikit-learn."""
    metrics = json.loads((evaluation / "metrics.json").read_text())
    rows = read_predictions(evaluation)
    y = np.array([int(is_malignant(r["label"])) for r in rows])
    p = np.array([float(r["p_malignant"]) for r in rows])
    decision = np.array([int(r["decision"] == "malignant") for r in rows])
    threshold = metrics["binary"]["threshold"]
    assert np.array_equal(decision, (p >= threshold).astype(int))
    probs = np.array([[float(r[f"p_{c}"]) for c in DX_CODES] for r in rows])
    mal = [DX_CODES.index(c) for c in sorted(MALIGNANT & set(DX_CODES))]
    assert np.allclose(probs.sum(1), 1) and np.allclose(probs[:, mal].sum(1), p)
    binary = metrics["binary"]
    assert binary["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert binary["pr_auc"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert binary["sensitivity"] == pytest.approx(skm.recall_score(y, decision))
    assert binary["specificity"] == pytest.approx(skm.recall_score(y, decision, pos_label=0))
    assert binary["ppv"] == pytest.approx(skm.precision_score(y, decision, zero_division=np.nan), nan_ok=True)
    assert binary["f1"] == pytest.approx(skm.f1_score(y, decision))
    assert binary["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    labels = [r["label"] for r in rows]
    predicted = [r["prediction"] for r in rows]
    assert predicted == [DX_CODES[k] for k in probs.argmax(1)]
    multi = metrics["multiclass"]
    assert multi["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert multi["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predicted))
    assert multi["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="macro"))
    assert multi["auc_macro"] == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", labels=DX_CODES)
    )
    assert (
        multi["confusion_matrix"]["matrix"]
        == skm.confusion_matrix(labels, predicted, labels=DX_CODES).tolist()
    )
    assert metrics["ci"]["binary"]["auc"][0] <= binary["auc"] <= metrics["ci"]["binary"]["auc"][1]


def test_probabilities_match_the_predictor(evaluation: Path, tiny_artifact: Path, dataset_csv: Path) -> None:
    """Evaluation combines outputs exactly as `Classifier.predict` does (temperature, OOD, decision)."""
    from dermalens.inference.predictor import Classifier

    rows = read_predictions(evaluation)[:10]
    results = Classifier.load(tiny_artifact).predict([dataset_csv.parent / r["image"] for r in rows])
    for row, result in zip(rows, results, strict=True):
        assert not hasattr(result, "error")
        assert float(row["p_malignant"]) == pytest.approx(result.p_malignant, abs=1e-5)
        # predictions.csv scores refused images too (for analysis); the API gives them no verdict
        # and keeps the model's class as top_class.
        assert row["prediction"] == result.top_class
        assert result.prediction == (None if result.ood else result.top_class)
        assert row["decision"] == ("malignant" if result.p_malignant >= result.threshold else "benign")
        assert result.decision == ("refused" if result.ood else row["decision"])
        assert bool(int(row["ood"])) == result.ood
        for c in DX_CODES:
            assert float(row[f"p_{c}"]) == pytest.approx(result.probabilities[c], abs=1e-5)


def test_split_tta_and_target_sensitivity(
    tiny_artifact: Path, dataset_csv: Path, split_file: Path, tmp_path: Path
) -> None:
    metrics = evaluate(
        tiny_artifact,
        dataset_csv,
        tmp_path,
        tta=2,
        target_sensitivity=0.9,
        split_file=split_file,
        split_name="test",
        n_boot=20,
        report=False,
    )
    assert metrics["n"] == 14 and metrics["n_skipped"] == 2  # 2 test images per class + the 2 bad ones
    assert metrics["data"]["split_name"] == "test" and metrics["model"]["tta"] == 2
    assert (
        metrics["threshold"]["source"] == "target_sensitivity"
        and "optimistic" in metrics["threshold"]["rule"]
    )
    assert metrics["binary"]["sensitivity"] >= 0.9
    assert not (tmp_path / "report.html").exists()


def test_ensemble_of_one_model_twice_equals_the_model(
    tiny_artifact: Path, dataset_csv: Path, split_file: Path, tmp_path: Path
) -> None:
    single = evaluate(
        [tiny_artifact], dataset_csv, tmp_path / "a", split_file=split_file, n_boot=10, report=False
    )
    double = evaluate(
        [tiny_artifact, tiny_artifact],
        dataset_csv,
        tmp_path / "b",
        split_file=split_file,
        n_boot=10,
        report=False,
    )
    assert len(double["model"]["members"]) == 2
    assert double["binary"]["auc"] == pytest.approx(single["binary"]["auc"])
    a, b = read_predictions(tmp_path / "a"), read_predictions(tmp_path / "b")
    assert [float(r["p_malignant"]) for r in a] == pytest.approx([float(r["p_malignant"]) for r in b])


def test_binary_only_folder_dataset(tiny_artifact: Path, tmp_path: Path) -> None:
    from conftest import lesion_like, save_image

    for k in range(4):
        save_image(tmp_path / "data" / "benign" / f"b{k}.jpg", lesion_like(k))
        save_image(tmp_path / "data" / "malignant" / f"m{k}.jpg", lesion_like(50 + k))
    metrics = evaluate(tiny_artifact, tmp_path / "data", tmp_path / "out", threshold=0.5, n_boot=10)
    assert metrics["n"] == 8 and metrics["multiclass"] is None and "multiclass" not in metrics["ci"]
    assert metrics["threshold"]["source"] == "given" and metrics["subgroups"] == {}
    assert {r["label"] for r in read_predictions(tmp_path / "out")} == {"benign", "malignant"}
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000


def test_bad_arguments(tiny_artifact: Path, dataset_csv: Path, split_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either a threshold or a target"):
        evaluate(tiny_artifact, dataset_csv, tmp_path, threshold=0.5, target_sensitivity=0.9, report=False)
    with pytest.raises(ValueError, match="split 'nope'"):
        evaluate(tiny_artifact, dataset_csv, tmp_path, split_file=split_file, split_name="nope")
    with pytest.raises(ValueError, match="ci_unit"):
        evaluate(tiny_artifact, dataset_csv, tmp_path, ci_unit="lesion")


def test_cli_evaluate_prints_a_summary(
    tiny_artifact: Path,
    dataset_csv: Path,
    split_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dermalens.cli import main

    code = main(
        [
            "evaluate",
            "--model",
            str(tiny_artifact),
            "--data",
            str(dataset_csv),
            "--split",
            str(split_file),
            "--out",
            str(tmp_path),
            "--n-boot",
            "10",
            "--ci-unit",
            "group",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "14 images scored, 2 skipped" in out and "auc" in out and "report:" in out
    assert json.loads((tmp_path / "metrics.json").read_text())["ci"]["unit"] == "group"
    code = main(["evaluate", "--model", str(tiny_artifact), "--data", str(tmp_path / "nowhere")])
    assert code == 2


def test_make_dataset_helper_counts(tmp_path: Path) -> None:
    path = make_dataset(tmp_path, labels=("benign", "malignant"), per_class=2)
    with open(path, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2 * 2 + 2


def test_per_source_figures_and_scc_folded_for_a_seven_class_model(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    """Two sources in one CSV: each gets its own figures; SCC is scored as akiec (taxonomy.HAM_FOLD)."""
    import shutil

    root = tmp_path / "two"
    make_dataset(root)
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    (root / "images" / "scc_0.png").write_bytes((root / "images" / "akiec_0.png").read_bytes())
    shutil.copy(root / "images" / "akiec_1.png", root / "images" / "scc_1.png")
    rows += [{**rows[0], "path": f"images/scc_{k}.png", "label": "scc", "group": f"s{k}"} for k in range(2)]
    for k, row in enumerate(rows):
        row["source"] = "clinic-a" if k % 2 else "clinic-b"
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    metrics = evaluate(tiny_artifact, root, tmp_path / "out", n_boot=20, report=False)
    by_source = metrics["by_source"]
    assert set(by_source) == {"clinic-a", "clinic-b"}
    assert sum(s["n"] for s in by_source.values()) == metrics["n"]
    assert sum(s["refused"] for s in by_source.values()) == metrics["ood"]["n_flagged"]
    for figures in by_source.values():
        assert 0 <= figures["binary"]["auc"] <= 1 and figures["ci"]["binary"]["auc"] is not None
        assert 0 <= figures["mel_vs_nv_auc"] <= 1
    assert metrics["multiclass"]["n_excluded"] == 0  # the two SCC images count as akiec
    assert metrics["labels"]["akiec"] == 6 + 2 and "scc" not in metrics["labels"]
    written = read_predictions(tmp_path / "out")
    assert {r["source"] for r in written} == {"clinic-a", "clinic-b"}

"""The diagnosis decision rule: fitted on validation, stored in the artifact, read wherever a
diagnosis is named, and never moving the probabilities or p_malignant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens.artifact.meta import ArtifactError
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import write_meta
from dermalens.cli import main
from dermalens.core.taxonomy import DX_CODES
from dermalens.evaluation.decision import fit_decision_artifact, fit_tau, training_prior
from dermalens.evaluation.metrics import compute_metrics
from dermalens.inference.probabilities import softmax, top_class

PRIOR = np.array([0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02])  # HAM10000's mix


def skewed(n_per_class: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced validation images scored by a model that learnt `PRIOR`: the true class's evidence
    plus log prior, so the common class (nv) wins too often."""
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(len(PRIOR)), n_per_class)
    evidence = rng.normal(0, 1.0, (len(targets), len(PRIOR)))
    evidence[np.arange(len(targets)), targets] += 2.0
    return softmax(evidence + np.log(PRIOR)), targets


def with_counts(folder: Path) -> Path:
    """The tiny artifact's copy with per-source training counts in the HAM10000 mix."""
    path, meta = load_meta(folder)
    meta.data["sources"] = {"ham10000": {c: int(p * 10000) for c, p in zip(meta.classes, PRIOR, strict=True)}}
    write_meta(path, meta)
    return path


def test_top_class_without_bias_is_argmax_and_a_bias_moves_only_the_decision() -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert top_class(probs).tolist() == [1, 0] == top_class(probs, np.zeros(2)).tolist()
    assert top_class(probs, np.array([np.log(5.0), 0.0])).tolist() == [0, 0]


def test_the_fitted_correction_raises_balanced_accuracy_on_skewed_outputs() -> None:
    probs, targets = skewed()
    sources = ["a"] * len(targets)
    tau, table = fit_tau(probs, targets, sources, PRIOR)
    assert 0.5 <= tau <= 1.5  # the outputs carry the whole prior: the correction is close to 1
    assert table[tau]["a"] > table[0.0]["a"] + 0.1
    assert list(table) == sorted(table) and 0.0 in table


def test_no_correction_where_the_model_learnt_no_prior() -> None:
    rng = np.random.default_rng(1)
    targets = np.repeat(np.arange(7), 100)
    evidence = rng.normal(0, 1.0, (700, 7))
    evidence[np.arange(700), targets] += 2.0
    tau, _ = fit_tau(softmax(evidence), targets, ["a"] * 700, np.full(7, 1 / 7))
    assert tau == 0.0  # a uniform prior shifts every class equally: ties go to the plain argmax


def test_every_source_counts_once() -> None:
    probs, targets = skewed(seed=2)
    tau, table = fit_tau(probs, targets, ["big"] * (len(targets) - 1) + ["tiny"], PRIOR)
    assert set(table[tau]) == {"big"}  # a source with one diagnosis has no balanced accuracy


def test_fit_stores_the_rule_and_predictions_read_it(tiny_artifact: Path, tmp_path: Path) -> None:
    from dermalens.inference.engine import Engine

    folder = with_counts(Path(shutil.copytree(tiny_artifact, tmp_path / "copy")))
    probs, targets = skewed(n_per_class=60, seed=3)
    labels = [DX_CODES[t] for t in targets]
    meta = fit_decision_artifact(folder, probs, labels, ["ham10000"] * len(labels))
    _, stored = load_meta(folder)  # hashes still verify
    tau = stored.metrics["decision"]["tau"]
    assert tau > 0 and "τ maximises" in stored.class_bias_rule
    np.testing.assert_allclose(stored.class_bias, -tau * np.log(training_prior(meta)))
    after = compute_metrics(labels, probs, stored.classes, stored.malignant, 0.3, stored.class_bias)
    before = compute_metrics(labels, probs, stored.classes, stored.malignant, 0.3)
    assert after["multiclass"]["balanced_accuracy"] == pytest.approx(
        stored.metrics["decision"]["balanced_accuracy_after"]["ham10000"]
    )
    assert after["multiclass"]["balanced_accuracy"] > before["multiclass"]["balanced_accuracy"]
    assert after["binary"] == before["binary"]  # AUC, threshold, sensitivity: unchanged

    plain, biased = Engine.load(tiny_artifact), Engine.load(folder)
    paths = [save_image(tmp_path / f"l{k}.png", lesion_like(k)) for k in range(6)]
    a, b = plain.run(paths).combined, biased.run(paths).combined
    np.testing.assert_allclose(a.probs, b.probs)
    np.testing.assert_allclose(a.p_malignant, b.p_malignant)
    assert b.prediction == [stored.classes[i] for i in top_class(b.probs, np.asarray(stored.class_bias))]
    assert [r.prediction for r in b.results()] == b.prediction  # what the app and the API show


def test_a_class_bias_of_the_wrong_length_is_a_clear_error(tiny_artifact: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_artifact, tmp_path / "bad"))
    data = json.loads((folder / "artifact.json").read_text())
    data["class_bias"] = [0.1, 0.2]
    (folder / "artifact.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="class_bias has 2 values for 7 classes"):
        load_meta(folder, verify=False)


def test_the_cli_fits_on_validation_splits(
    tiny_artifact: Path,
    dataset_csv: Path,
    split_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = with_counts(Path(shutil.copytree(tiny_artifact, tmp_path / "source")))
    out = tmp_path / "fitted"
    args = [
        "artifact",
        "fit-decision",
        "--model",
        str(source),
        "--data",
        str(dataset_csv),
        "--split",
        str(split_file),
    ]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tau" in printed and "balanced accuracy" in printed
    _, fitted = load_meta(out)
    assert fitted.metrics["decision"]["n"] == 7  # one val image per class
    assert len(fitted.class_bias) == 7 and not load_meta(source)[1].class_bias  # --out leaves it alone
    with pytest.raises(SystemExit, match="one --split per --data"):
        main([*args, "--data", str(dataset_csv), "--out", str(tmp_path / "again")])


def test_an_artifact_without_training_counts_says_so(tiny_artifact: Path) -> None:
    with pytest.raises(ValueError, match="no per-source class counts"):
        training_prior(load_meta(tiny_artifact)[1])

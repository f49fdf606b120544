"""The classical baseline: features, training, artifact format, runtime contract, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dermalens.artifact.meta import ArtifactError
from dermalens.artifact.store import load_meta
from dermalens.core.preprocess import load_canonical, normalize
from dermalens.evaluation.outputs import collect_outputs
from dermalens.inference.features import FEATURE_NAMES, image_features
from dermalens.inference.tta import tta_views
from dermalens.training.baselines import (
    ARCHITECTURE,
    BASELINE_FILE,
    BaselineRuntime,
    full_weights,
)

from .conftest import baseline_config, tinted_lesion


def test_features_are_finite_and_named() -> None:
    features = image_features(tinted_lesion(0, 2)[:48, :64])
    assert features.shape == (len(FEATURE_NAMES),) and np.all(np.isfinite(features))
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    flat = image_features(np.full((48, 64, 3), 128, dtype=np.uint8))
    assert np.all(np.isfinite(flat))  # no division by zero on a featureless image


def test_features_ignore_flips() -> None:
    """Colour and uniform-LBP statistics of a dermoscopy image do not depend on its orientation."""
    image = tinted_lesion(3, 4)[:48, :64]
    assert np.allclose(image_features(image), image_features(image[:, ::-1].copy()), atol=1e-6)


def test_full_weights_handles_binary_and_absent_classes() -> None:
    coef, intercept = full_weights(np.array([[2.0, -1.0]]), np.array([0.5]), [0, 1], 2)
    x = np.array([[1.0, 1.0]])
    logits = x @ coef.T + intercept
    assert logits[0, 1] - logits[0, 0] == pytest.approx(2.0 - 1.0 + 0.5)  # softmax([0, z]) = σ(z)
    coef, intercept = full_weights(np.ones((2, 3)), np.zeros(2), [0, 2], 4)
    assert coef.shape == (4, 3) and intercept[1] < -20 and intercept[3] < -20


def test_baseline_artifact(baseline_artifact: Path) -> None:
    folder, meta = load_meta(baseline_artifact)  # hashes verified, baseline.npz included
    assert meta.architecture == ARCHITECTURE and BASELINE_FILE in meta.files and "ood.npz" in meta.files
    assert meta.preprocessing.input_size == (64, 48)
    assert 0 < meta.threshold < 1 and "validation" in meta.threshold_rule and meta.temperature > 0
    assert meta.training["C"] in (0.01, 0.1, 1.0) and len(meta.training["features"]) == len(FEATURE_NAMES)
    with np.load(folder / BASELINE_FILE, allow_pickle=False) as data:  # plain arrays: nothing to unpickle
        assert data["coef"].shape == (7, len(FEATURE_NAMES))


def test_damaged_baseline_file_is_refused(baseline_artifact: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(baseline_artifact, tmp_path / "copy"))
    (copy / BASELINE_FILE).write_bytes(b"not numpy")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_meta(copy)


def test_runtime_contract_and_exact_pixels(baseline_artifact: Path, dataset_csv: Path) -> None:
    """run() on the normalised batch gives the logits of the canonical image's own features."""
    folder, meta = load_meta(baseline_artifact)
    runtime = BaselineRuntime(folder, meta)
    canon = load_canonical(dataset_csv.parent / "images" / "mel_0.png", meta.preprocessing)
    batch = np.stack([normalize(canon, meta.preprocessing)])
    out = runtime.run(batch)
    assert out["logits"].shape == (1, 7) and out["features"].shape == (1, len(FEATURE_NAMES))
    assert out["cam"].shape[:2] == (1, 7)
    expected = runtime.logits(runtime.kernel(runtime.features([canon])))
    assert np.allclose(out["logits"], expected, atol=1e-4)
    views = np.stack(tta_views(batch[0], 4))  # rotated views (H and W swapped) run too
    assert runtime.run(views)["logits"].shape == (4, 7)


def test_baseline_learns_the_tinted_classes(baseline_artifact: Path, dataset_csv: Path) -> None:
    from dermalens.data.readers import load_dataset

    records = load_dataset(dataset_csv, verify=False).records
    outputs = collect_outputs(baseline_artifact, records)
    assert [i for i, _ in outputs.failed] == ["images/corrupt.jpg"]
    labels = [r.label for r in records if r.image_id in set(outputs.image_ids)]
    predicted = [outputs.meta.classes[k] for k in outputs.probabilities().argmax(1)]
    accuracy = np.mean([a == b for a, b in zip(labels, predicted, strict=True)])
    assert accuracy > 0.4  # chance is 1/7; colour separates the synthetic classes


def test_train_baseline_from_yaml(dataset_csv: Path, split_file: Path, tmp_path: Path) -> None:
    """The `dermalens train --config configs/baseline.yaml` path: a TrainConfig YAML, binary head."""
    import yaml

    from dermalens.training.baselines import train_baseline

    config = tmp_path / "baseline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "bin-baseline",
                "seed": 1,
                "out_dir": str(tmp_path / "runs"),
                "data": {"path": str(dataset_csv), "split_file": str(split_file)},
                "model": {"architecture": ARCHITECTURE, "head": "binary"},
                "preprocessing": {"input_size": [64, 48]},
            }
        )
    )
    folder = train_baseline(config, out=tmp_path / "artifact")
    _, meta = load_meta(folder)
    assert meta.classes == ["benign", "malignant"] and meta.head == "binary"
    metrics = json.loads((folder / "artifact.json").read_text())["metrics"]["validation"]
    assert metrics["balanced_accuracy"] is None and metrics["auc"] is not None
    # a binary-head artifact evaluates too: no multiclass section, p_malignant written once
    from dermalens.evaluation.evaluate import evaluate

    result = evaluate(folder, dataset_csv, tmp_path / "eval", split_file=split_file, n_boot=10, report=False)
    assert result["multiclass"] is None and result["n"] == 14
    header = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()[0]
    assert (
        header
        == "image,source,label,p_benign,p_malignant,prediction,prediction_set,set_size,decision,ood,ood_score"
    )


def test_repo_baseline_config_is_a_valid_train_config() -> None:
    from dermalens.training.config import load_config

    path = Path(__file__).resolve().parents[2] / "configs" / "baseline.yaml"
    if not path.is_file():
        pytest.skip("configs/baseline.yaml not present")
    config = load_config(path)
    assert config.model.architecture == ARCHITECTURE


def test_calibrating_a_baseline_keeps_its_hashes(
    baseline_artifact: Path, dataset_csv: Path, split_file: Path, tmp_path: Path
) -> None:
    from dermalens.evaluation.calibration import calibrate

    summary = calibrate(
        baseline_artifact, dataset_csv, split_file, out=tmp_path / "cal", target_sensitivity=0.9
    )
    _, meta = load_meta(tmp_path / "cal")  # baseline.npz still listed and verified after the rewrite
    assert BASELINE_FILE in meta.files and meta.threshold == pytest.approx(summary["threshold"])


def test_rbf_svm_baseline_trains_evaluates_and_compares(
    baseline_artifact: Path, dataset_csv: Path, split_file: Path, tmp_path: Path
) -> None:
    """The RBF-SVM baseline: same artifact type, its Nyström map equals scikit-learn's, and it
    works with `evaluate` and `compare` beside the logistic regression."""
    from sklearn.kernel_approximation import Nystroem

    from dermalens.evaluation.compare import compare
    from dermalens.training.baselines import SVM_ARCHITECTURE, train_baseline

    config = baseline_config(
        "tiny-svm", dataset_csv, split_file, tmp_path / "runs", model={"architecture": SVM_ARCHITECTURE}
    )
    folder = train_baseline(config)
    folder_, meta = load_meta(folder)
    assert meta.architecture == SVM_ARCHITECTURE and 0.05 <= meta.temperature <= 20
    runtime = BaselineRuntime(folder_, meta)
    assert runtime.rbf is not None
    x = np.random.default_rng(0).normal(size=(5, len(FEATURE_NAMES)))
    reference = Nystroem(gamma=runtime.rbf[2], n_components=len(runtime.rbf[0]))
    reference.components_, reference.normalization_ = runtime.rbf[0], runtime.rbf[1]
    reference.component_indices_ = np.arange(len(runtime.rbf[0]))
    assert np.allclose(runtime.kernel(x), reference.transform(x), atol=1e-8)
    result = compare(
        [baseline_artifact, folder],
        dataset_csv,
        tmp_path / "cmp",
        split_file=split_file,
        n_boot=20,
        reports=False,
    )
    assert [row["architecture"] for row in result["models"]] == [ARCHITECTURE, SVM_ARCHITECTURE]
    assert 0 <= result["models"][1]["auc"] <= 1 and result["models"][1]["delta_auc"] is not None

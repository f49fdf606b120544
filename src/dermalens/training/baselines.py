"""The classical baseline: multinomial logistic regression on colour/texture features.

Why: every report should show how far the network is above what a simple, transparent
model reaches on the same split (Codella et al. and the ISIC challenges report such
baselines for the same reason). If a network is barely above it, it has learnt little.

Design: a baseline artifact is an ordinary artifact folder whose ``architecture`` is
``baseline-logreg``, with ``baseline.npz`` (scaler and logistic-regression weights as
plain arrays: no pickle, so loading a downloaded artifact runs no code) in place of
``model.onnx``. `BaselineRuntime` (in `inference.baseline`) honours the runtime contract (``run(batch) ->
{"logits", "features", "cam"}`` on the normalised N×3×H×W batch), so evaluation,
calibration, TTA, the OOD gate and ensembling treat it like any network. The
predictor can serve it too once `dermalens.inference.runtime.create_runtime` routes
``baseline-*`` architectures here.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.artifact.meta import BASELINE_FILE, META_FILE, OOD_FILE, ArtifactMeta
from dermalens.artifact.write import put_file, write_meta
from dermalens.evaluation.metrics import compute_metrics
from dermalens.inference.baseline import ABSENT_LOGIT, ARCHITECTURE, BaselineRuntime
from dermalens.inference.features import FEATURE_NAMES, FEATURE_VERSION, image_features
from dermalens.models.ood_fit import fit_gate

log = logging.getLogger(__name__)

#: Inverse regularisation strengths tried; the best on validation is kept.
C_GRID = (0.01, 0.1, 1.0)


def full_weights(
    coef: np.ndarray, intercept: np.ndarray, fitted: list[int], n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """[C, D] weights and [C] intercepts over *all* classes of the head, from a fitted LogisticRegression.

    scikit-learn keeps one row for two classes (P(second) = σ(z) = softmax([0, z])[1]) and
    has no row for a class absent from training; such a class gets a very low intercept.
    """
    weights = np.zeros((n_classes, coef.shape[1]))
    bias = np.full(n_classes, ABSENT_LOGIT)
    if len(fitted) == 2:
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    for row, k in enumerate(fitted):
        weights[k], bias[k] = coef[row], intercept[row]
    return weights, bias


def extract(paths: Sequence[Path], spec: Any, progress: bool = False) -> np.ndarray:
    """Raw (unstandardised) features of images on disk, decoded with the artifact's preprocessing."""
    from tqdm import tqdm

    from dermalens.core.preprocess import load_canonical

    def one(path: Path) -> np.ndarray:
        return image_features(load_canonical(path, spec))

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        mapped = pool.map(one, paths)
        rows = list(tqdm(mapped, total=len(paths), desc="features", unit="img", disable=not progress))
    return np.stack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))


def _load_config(config: Any, overrides: list[str] | None) -> Any:
    """A `TrainConfig` from a TrainConfig, a YAML path, or a dict (TrainConfig keys, or the short form
    ``{data: PATH, split_file, seed, out}``)."""
    from dermalens.training.config import TrainConfig, load_config

    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, str | os.PathLike):
        return load_config(Path(config), overrides)
    data = dict(config)
    if isinstance(data.get("data"), str | os.PathLike):
        data["data"] = {"path": str(data["data"])}
        if data.get("split_file"):
            data["data"]["split_file"] = str(data.pop("split_file"))
    data.pop("split_file", None)
    if "out" in data:
        data["out_dir"] = str(data.pop("out"))
    data.setdefault("model", {}).setdefault("architecture", ARCHITECTURE)
    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as handle:
        yaml.safe_dump(data, handle)
    try:
        return load_config(Path(handle.name), overrides)
    finally:
        os.unlink(handle.name)


#: The RBF support-vector-machine baseline's architecture name (configs/baseline-svm.yaml).
SVM_ARCHITECTURE = "baseline-svm-rbf"
#: Landmarks of the Nyström approximation of the RBF kernel (exact for ≤ this many training images).
NYSTROEM_COMPONENTS = 1500


def _classifier(svm: bool, c: float, seed: int) -> Any:
    """Multinomial logistic regression, or a linear SVM (one-vs-rest, squared hinge) for the RBF map."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if svm:
        return LinearSVC(C=c, class_weight="balanced", max_iter=20000, random_state=seed)
    return LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)


def train_baseline(
    config: Any,
    *,
    out: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    progress: bool = False,
) -> Path:
    """Fit the baseline on the config's train split, calibrate on val, write the artifact; returns its
    folder. `config`: a `TrainConfig`, a YAML path (``configs/baseline.yaml``) or a dict. The split
    file is reused when it exists (the baseline sees the networks' exact split), else created. The
    artifact goes to `out`, or ``<out_dir>/<name>/artifact`` like a training run."""
    from sklearn.preprocessing import StandardScaler

    from dermalens.training.prepare import load_stage_data, targets_for

    cfg = _load_config(config, overrides)
    classes, malignant = targets_for(cfg.model.head)
    data = load_stage_data(cfg, cfg.stages[-1], classes)
    x_train = extract([r.path for r in data.train], cfg.preprocessing, progress)
    x_val = extract([r.path for r in data.val], cfg.preprocessing, progress)
    y_train, y_val = np.asarray(data.train_targets), np.asarray(data.val_targets)
    scaler = StandardScaler().fit(x_train)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    s_train, s_val = (x_train - scaler.mean_) / scale, (x_val - scaler.mean_) / scale
    svm = cfg.model.architecture == SVM_ARCHITECTURE
    rbf, m_train, m_val = _rbf_map(s_train, s_val, cfg.seed) if svm else ({}, s_train, s_val)
    model, best_c = _fit_best(svm, m_train, y_train, m_val, y_val, cfg)
    coef, intercept = full_weights(model.coef_, model.intercept_, list(model.classes_), len(classes))
    if absent := sorted(set(classes) - {classes[k] for k in model.classes_}):
        log.warning("no training images of %s: the baseline never predicts them", ", ".join(absent))
    folder = Path(out) if out is not None else cfg.run_dir() / "artifact"
    arrays = {"mean": scaler.mean_, "scale": scale, "coef": coef, "intercept": intercept, **rbf}
    version, names = np.int64(FEATURE_VERSION), np.asarray(FEATURE_NAMES)
    put_file(
        folder,
        BASELINE_FILE,
        lambda path: np.savez(path, feature_version=version, feature_names=names, **arrays),
    )
    meta = ArtifactMeta(
        name=cfg.name,
        architecture=cfg.model.architecture if svm else ARCHITECTURE,
        classes=classes,
        malignant=malignant,
        preprocessing=cfg.preprocessing,
        head=cfg.model.head,
    )
    probs = _calibrate(meta, BaselineRuntime(folder, meta), s_val, y_val, cfg.target_sensitivity)
    gate = fit_gate(s_train.astype(np.float32), y_train, s_val.astype(np.float32), cfg.ood_quantile)
    put_file(folder, OOD_FILE, gate.save)
    _describe(meta, cfg, data, svm, best_c, gate.threshold)
    val_labels = [r.label if cfg.model.head == "dx" else r.binary for r in data.val]
    meta.metrics = {
        "validation": _validation(compute_metrics(val_labels, probs, classes, malignant, meta.threshold))
    }
    write_meta(folder, meta)
    log.info("baseline artifact written to %s", folder / META_FILE)
    return folder


def _validation(figures: dict[str, Any]) -> dict[str, Any]:
    multi = figures["multiclass"] or {}
    return {
        "auc": figures["binary"]["auc"],
        "balanced_accuracy": multi.get("balanced_accuracy"),
        "accuracy": multi.get("accuracy"),
    }


def _rbf_map(
    s_train: np.ndarray, s_val: np.ndarray, seed: int
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """An explicit RBF feature map (Nyström), so that the artifact stays plain arrays."""
    from sklearn.kernel_approximation import Nystroem

    gamma = 1.0 / s_train.shape[1]  # scikit-learn's "scale" for standardised features
    mapper = Nystroem(gamma=gamma, n_components=min(NYSTROEM_COMPONENTS, len(s_train)), random_state=seed)
    mapper.fit(s_train)
    rbf = {
        "rbf_components": mapper.components_,
        "rbf_normalization": mapper.normalization_,
        "rbf_gamma": np.float64(gamma),
    }
    return rbf, mapper.transform(s_train), mapper.transform(s_val)


def _fit_best(
    svm: bool, m_train: np.ndarray, y_train: np.ndarray, m_val: np.ndarray, y_val: np.ndarray, cfg: Any
) -> tuple[Any, float]:
    """The classifier of `C_GRID` with the best validation balanced accuracy (ties: the stronger
    regularisation), like the networks' early stopping."""
    from sklearn.metrics import balanced_accuracy_score

    fits = []
    for c in C_GRID:
        model = _classifier(svm, c, cfg.seed).fit(m_train, y_train)
        score = float(balanced_accuracy_score(y_val, model.predict(m_val)))
        log.info("baseline %s C=%g: validation balanced accuracy %.3f", cfg.model.architecture, c, score)
        fits.append((score, -c, model))
    _, neg_c, model = max(fits, key=lambda fit: fit[:2])
    return model, -neg_c


def _calibrate(
    meta: ArtifactMeta, runtime: BaselineRuntime, s_val: np.ndarray, y_val: np.ndarray, sensitivity: float
) -> np.ndarray:
    """Temperature and operating threshold on validation (set on `meta`); the calibrated probabilities."""
    from dermalens.evaluation.calibration import fit_temperature, threshold_for_sensitivity
    from dermalens.inference.probabilities import softmax

    val_logits = runtime.logits(runtime.kernel(s_val))
    meta.temperature = fit_temperature(val_logits, y_val)
    probs = softmax(val_logits, meta.temperature)
    y_mal = np.isin(y_val, meta.malignant_indices)
    meta.threshold = threshold_for_sensitivity(y_mal, probs[:, meta.malignant_indices].sum(1), sensitivity)
    meta.threshold_rule = f"≥{sensitivity:.0%} sensitivity for malignancy on the validation split"
    return probs


def _describe(
    meta: ArtifactMeta, cfg: Any, data: Any, svm: bool, best_c: float, ood_threshold: float
) -> None:
    from dermalens.training.prepare import split_path

    meta.ood_threshold = ood_threshold
    meta.ood_method = "min class-conditional Mahalanobis distance on the standardised features"
    meta.data = {
        "source": str(cfg.data.path),
        "split_file": str(split_path(cfg, cfg.data)),
        "train_images": len(data.train),
        "val_images": len(data.val),
    }
    meta.training = {
        "config": cfg.to_dict(),
        "model": "LinearSVC(class_weight='balanced') on an RBF Nyström map "
        f"({NYSTROEM_COMPONENTS} components); probabilities: temperature-scaled softmax of its "
        "one-vs-rest margins, fitted on validation"
        if svm
        else "LogisticRegression(class_weight='balanced')",
        "C": best_c,
        "feature_version": FEATURE_VERSION,
        "features": list(FEATURE_NAMES),
    }

"""Serving a classical-baseline artifact: the same runtime contract as ONNX Runtime.

A baseline artifact (``architecture: baseline-logreg``, trained by `evaluation.baseline`) holds
``baseline.npz``: scaler and logistic-regression weights as plain arrays, so loading a downloaded
artifact runs no code. `BaselineRuntime` turns the normalised N×3×H×W batch back into canonical
pixels, computes the colour/texture features (`inference.features`, scikit-image: the `train`
extra) and returns ``{"logits", "features", "cam"}``, so the engine treats it like any network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dermalens.artifact.meta import BASELINE_FILE, ArtifactError, ArtifactMeta
from dermalens.inference.features import FEATURE_NAMES, FEATURE_VERSION, image_features

ARCHITECTURE = "baseline-logreg"
#: Logit of a class without training images (softmax probability ~1e-13).
ABSENT_LOGIT = -30.0


class BaselineRuntime:
    """Runs a baseline artifact with the same contract as the ONNX runtime."""

    def __init__(self, folder: Path, meta: ArtifactMeta) -> None:
        path = folder / BASELINE_FILE
        if not path.is_file():
            raise ArtifactError(
                f"{folder}: no {BASELINE_FILE}; train one: dermalens train --config configs/baseline.yaml"
            )
        with np.load(path, allow_pickle=False) as data:
            version = int(data["feature_version"])
            self.mean, self.scale = data["mean"], data["scale"]
            self.coef, self.intercept = data["coef"], data["intercept"]
            # The RBF-SVM baseline: an explicit Nyström feature map before its linear SVM.
            self.rbf = (
                (data["rbf_components"], data["rbf_normalization"], float(data["rbf_gamma"]))
                if "rbf_components" in data.files
                else None
            )
        if version != FEATURE_VERSION:
            raise ArtifactError(f"{path}: features v{version}; this dermalens computes v{FEATURE_VERSION}")
        self.spec = meta.preprocessing
        self.n_classes = len(meta.classes)

    def features(self, canonical_images: Sequence[np.ndarray]) -> np.ndarray:
        """Standardised features [N, D] of canonical uint8 images."""
        raw = (
            np.stack([image_features(img) for img in canonical_images])
            if len(canonical_images)
            else (np.zeros((0, len(FEATURE_NAMES))))
        )
        return (raw - self.mean) / self.scale

    def kernel(self, standardised: np.ndarray) -> np.ndarray:
        """The linear model's input: the standardised features, or their RBF Nyström map
        (exp(−γ‖x − c‖²) against the landmarks c, times the normalisation: scikit-learn's transform)."""
        if self.rbf is None:
            return standardised
        components, normalization, gamma = self.rbf
        squared = (
            (standardised**2).sum(1)[:, None]
            - 2 * standardised @ components.T
            + (components**2).sum(1)[None, :]
        )
        return np.exp(-gamma * np.maximum(squared, 0)) @ normalization.T

    def logits(self, mapped: np.ndarray) -> np.ndarray:
        """[N, C] logits: the logistic regression's (softmax = its predict_proba), or the SVM's margins."""
        return np.asarray(mapped @ self.coef.T + self.intercept)

    def run(self, batch: np.ndarray, metadata: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Undo the normalisation (exactly, up to rounding) to get the canonical pixels back.

        `metadata` is accepted for the runtime contract and ignored (image features only)."""
        mean = np.asarray(self.spec.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.spec.std, dtype=np.float32).reshape(1, 3, 1, 1)
        pixels = np.clip(np.rint((batch * std + mean) * 255.0), 0, 255).astype(np.uint8)
        images = [np.ascontiguousarray(chw.transpose(1, 2, 0)) for chw in pixels]
        feats = self.features(images)
        logits = self.logits(self.kernel(feats)).astype(np.float32)
        return {
            "logits": logits,
            "features": feats.astype(np.float32),
            "cam": np.zeros((len(batch), self.n_classes, 1, 1), np.float32),
        }

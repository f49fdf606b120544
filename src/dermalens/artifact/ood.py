"""Out-of-distribution gate: is this a dermoscopy image at all?

Score: the Mahalanobis distance of the network's pooled embedding to the nearest
class mean, with one shared (shrunk) covariance fitted on the training embeddings
(Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples
and Adversarial Attacks", NeurIPS 2018). It needs no extra "non-skin" training data.

Lee et al. also score intermediate layers, and so does this gate where the network
exports them (``level_features``: EfficientNet's pooled second-to-last block): the final
embedding is trained to separate diagnoses, so an orange disc with dark vessels (a
retina fundus photo) lands near the lesions there, while mid-level texture statistics
still place it far from every dermoscopy image. Measured on the bundled model: natural
photos refused 95.7 % → 100 % with the same share of validation lesions refused
(`benchmarks/ood_gate.py`; `models.heads.backbone_maps` says why that block).

The threshold is a high quantile of the scores of validation dermoscopy images (of the
maximum of both normalised distances when there are two), so the share of real lesions
refused is chosen, not guessed; everything lives in the artifact (ood.npz, this class). Fitting:
`models.ood_fit`; the colour check beside it: `models.ood.colour_score`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def _per_mean(features: np.ndarray, factor: np.ndarray, whitened_means: np.ndarray) -> np.ndarray:
    """(f − μ)ᵀP(f − μ) for every row μ, with P = L·Lᵀ, as ‖fᵀL − μᵀL‖² (float32, [N, C])."""
    projected = features.astype(np.float32) @ factor  # [N, D]
    return ((projected[:, None, :] - whitened_means[None, :, :]) ** 2).sum(axis=2).astype(np.float32)


def _whiten(means: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factor L of the precision and the means times L (computed in float64, kept float32).

    Why: one float32 D×D product then whitens the features for every mean at once, and the
    differences stay well conditioned (the expanded fᵀPf − 2fᵀPμ + μᵀPμ needs float64: twice
    the memory traffic, which dominated the gate's time at batch 1)."""
    p64 = precision.astype(np.float64)
    p64 = (p64 + p64.T) / 2.0
    try:
        factor = np.linalg.cholesky(p64)
    except np.linalg.LinAlgError:  # float32 storage can round a badly conditioned precision
        values, vectors = np.linalg.eigh(p64)  # to slightly indefinite (few training images):
        factor = vectors * np.sqrt(np.clip(values, 0.0, None))  # P ≈ V·Λ₊·Vᵀ = (V√Λ₊)(V√Λ₊)ᵀ
    return factor.astype(np.float32), (means.astype(np.float64) @ factor).astype(np.float32)


@dataclass
class OodGate:
    means: np.ndarray  # [C, D] class means of training embeddings
    precision: np.ndarray  # [D, D] inverse of the shared covariance
    threshold: float  # raw distance above which an image is out of distribution
    #: Optional second component on mid-level features: [1, Dl] mean, [Dl, Dl] precision, threshold.
    level_mean: np.ndarray | None = None
    level_precision: np.ndarray | None = None
    level_threshold: float = 1.0
    #: [C] each class's own radius relative to the shared threshold (embedding part), and the
    #: mid-level part's radius for images nearest that class: a class that is rare in training
    #: (vascular lesions, dermatofibromas) spreads wider than the nevus-dominated shared covariance
    #: says, and was refused far more often. None (gates before issue #17): 1 for every class.
    class_scale: np.ndarray | None = None
    level_class_scale: np.ndarray | None = None
    #: How an image's class is chosen before its radius applies. "scaled" (gates before issue #34):
    #: the least distance/radius, which in a 1280-d embedding is nearly always the class of the
    #: *widest* radius (class means differ by ~1 % of the distances, radii by up to 30 %), so rare
    #: classes were never measured in their own radius. "distance": the nearest mean (the shared-
    #: covariance LDA class), then that class's radius.
    nearest_by: str = "scaled"
    _cache: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def uses_level(self) -> bool:
        """True when the gate also scores the network's mid-level (``level_features``) output."""
        return self.level_mean is not None and self.level_precision is not None

    def class_distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of the pooled embedding to every class mean, [N, C]."""
        if "embedding" not in self._cache:
            self._cache["embedding"] = _whiten(self.means, self.precision)
        return _per_mean(features, *self._cache["embedding"])

    def nearest(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance to the nearest class in units of that class's radius, that class) per image."""
        distances = self.class_distances(features)
        scaled = distances if self.class_scale is None else distances / self.class_scale[None, :]
        best = (distances if self.nearest_by == "distance" else scaled).argmin(axis=1)
        return scaled[np.arange(len(best)), best], best

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of the pooled embedding to the nearest class mean, in units
        of that class's radius, [N]."""
        return self.nearest(features)[0]

    def level_distances(self, level_features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of the mid-level features to their training mean, [N]."""
        if self.level_mean is None or self.level_precision is None:
            raise ValueError("this gate has no mid-level component")
        if "level" not in self._cache:
            self._cache["level"] = _whiten(self.level_mean, self.level_precision)
        return _per_mean(level_features, *self._cache["level"])[:, 0]

    def score(
        self,
        features: np.ndarray,
        colour_scores: list[float] | None = None,
        level_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """The largest of: embedding distance / threshold, mid-level distance / its threshold
        (gates that have one), and the images' `colour_score`. Above 1.0 means 'not a dermoscopy image'."""
        distance, nearest = self.nearest(features)
        scores = distance / self.threshold
        if self.uses_level:
            if level_features is None:
                raise ValueError("this OOD gate also scores mid-level features; the model gave none")
            scale = 1.0 if self.level_class_scale is None else self.level_class_scale[nearest]
            scores = np.maximum(scores, self.level_distances(level_features) / (self.level_threshold * scale))
        return scores if colour_scores is None else np.maximum(scores, colour_scores)

    def save(self, path: Path) -> None:
        arrays = {
            "means": self.means.astype(np.float32),
            "precision_upper": _upper(self.precision),
            "threshold": np.float32(self.threshold),
        }
        if self.level_mean is not None and self.level_precision is not None:
            arrays |= {
                "level_mean": self.level_mean.astype(np.float32),
                "level_precision_upper": _upper(self.level_precision),
                "level_threshold": np.float32(self.level_threshold),
            }
        for name in ("class_scale", "level_class_scale"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value.astype(np.float32)
        if self.nearest_by != "scaled":  # absent: the rule of every gate before it (old readers ignore it)
            arrays["nearest_by"] = np.asarray(self.nearest_by)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> OodGate:
        with np.load(path) as data:
            level = (
                (data["level_mean"], _symmetric(data, "level_precision"), float(data["level_threshold"]))
                if "level_mean" in data
                else (None, None, 1.0)
            )
            scales = [data.get(n) for n in ("class_scale", "level_class_scale")]
            nearest_by = str(data["nearest_by"]) if "nearest_by" in data else "scaled"
            gate = cls(
                data["means"], _symmetric(data, "precision"), float(data["threshold"]), *level, *scales
            )
            gate.nearest_by = nearest_by
            return gate

    @property
    def method(self) -> str:
        """A one-line description for the artifact metadata and the model card."""
        if self.class_scale is not None and self.nearest_by == "distance":
            base = (
                "Mahalanobis distance to the nearest class mean (shared Ledoit-Wolf covariance), in units"
                " of that class's radius (its quantile over its training + validation images)"
            )
        else:
            base = "min class-conditional Mahalanobis distance (shared Ledoit-Wolf covariance)"
            if self.class_scale is not None:
                base += ", in units of each class's own validation radius"
        return base + (" + Mahalanobis distance of pooled mid-level features" if self.uses_level else "")


def _upper(matrix: np.ndarray) -> np.ndarray:
    """The upper triangle of a symmetric matrix, row by row, float32: a precision matrix is half
    of a gate file (1280² floats, 6.5 MB), and an ensemble's networks must fit models/'s budget."""
    return matrix[np.triu_indices(len(matrix))].astype(np.float32)


def _symmetric(data: Any, name: str) -> np.ndarray:
    """The symmetric matrix `name` of a gate file: from its upper triangle (`NAME_upper`, format 2)
    or stored whole (gate files written before it)."""
    if name in data:
        return np.asarray(data[name])
    upper = np.asarray(data[f"{name}_upper"])
    size = int((np.sqrt(8 * len(upper) + 1) - 1) / 2)
    matrix = np.zeros((size, size), np.float32)
    matrix[np.triu_indices(size)] = upper
    return matrix + np.triu(matrix, 1).T

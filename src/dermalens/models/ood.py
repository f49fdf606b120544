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
refused is chosen, not guessed; everything lives in the artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Mean channel spread (max - min, 0-255) of the canonical image below which it is "colourless".
#: Dermoscopy is never grey: the least colourful of HAM10000's 7,153 training images scores 3.3
#: (0.1st percentile 3.8), while documents, X-ray-like and grayscale photos score 0, and the
#: embedding distance alone accepted some of them (a text page, a grey photo).
MIN_CHROMA = 2.0


def colour_score(canon: np.ndarray) -> float:
    """MIN_CHROMA / chroma of a canonical uint8 H×W×3 image: above 1.0 means grayscale-like."""
    red, green, blue = canon[:, :, 0], canon[:, :, 1], canon[:, :, 2]  # slices: 10× faster than axis=2
    spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    chroma = float(spread.mean())  # uint8: max ≥ min, no overflow
    return MIN_CHROMA / max(chroma, 0.02)


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


def _fit_precision(centred: np.ndarray) -> np.ndarray:
    from sklearn.covariance import LedoitWolf

    return LedoitWolf().fit(centred).precision_.astype(np.float32)


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
        best = scaled.argmin(axis=1)
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
            "precision": self.precision.astype(np.float32),
            "threshold": np.float32(self.threshold),
        }
        if self.level_mean is not None and self.level_precision is not None:
            arrays |= {
                "level_mean": self.level_mean.astype(np.float32),
                "level_precision": self.level_precision.astype(np.float32),
                "level_threshold": np.float32(self.level_threshold),
            }
        for name in ("class_scale", "level_class_scale"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value.astype(np.float32)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> OodGate:
        with np.load(path) as data:
            level = (
                (data["level_mean"], data["level_precision"], float(data["level_threshold"]))
                if "level_mean" in data
                else (None, None, 1.0)
            )
            scales = [data.get(n) for n in ("class_scale", "level_class_scale")]
            return cls(data["means"], data["precision"], float(data["threshold"]), *level, *scales)

    @property
    def method(self) -> str:
        """A one-line description for the artifact metadata and the model card."""
        base = "min class-conditional Mahalanobis distance (shared Ledoit-Wolf covariance)"
        if self.class_scale is not None:
            base += ", in units of each class's own validation radius"
        return base + (" + Mahalanobis distance of pooled mid-level features" if self.uses_level else "")


def _quantile(values: np.ndarray, quantile: float, groups: np.ndarray | None) -> float:
    """The `quantile` of `values`, or the largest of the groups' own quantiles."""
    if groups is None:
        return float(np.quantile(values, quantile))
    groups = np.asarray(groups)
    return max(float(np.quantile(values[groups == g], quantile)) for g in np.unique(groups))


#: Validation images a class needs for its own radius (fewer: the pooled one).
MIN_CLASS_IMAGES = 20


def _class_scale(
    distances: np.ndarray, labels: np.ndarray, classes: np.ndarray, quantile: float
) -> np.ndarray:
    """[C] each class's `quantile` of `distances` over its own validation images, relative to the
    pooled one (1 for classes with fewer than `MIN_CLASS_IMAGES`). Only degenerate ratios are
    bounded: what equalises refusals is each class's radius against the others'."""
    pooled = float(np.quantile(distances, quantile))
    scale = np.ones(len(classes), dtype=np.float32)
    for k, c in enumerate(classes):
        own = distances[labels == c]
        if len(own) >= MIN_CLASS_IMAGES:
            scale[k] = np.clip(float(np.quantile(own, quantile)) / max(pooled, 1e-12), 1e-3, 1e3)
    return scale


def fit_gate(
    features: np.ndarray,
    labels: np.ndarray,
    val_features: np.ndarray,
    quantile: float = 0.99,
    level_features: np.ndarray | None = None,
    val_level_features: np.ndarray | None = None,
    val_groups: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
) -> OodGate:
    """Fit class means and a Ledoit-Wolf shared covariance (plus, given mid-level features, one
    class-agnostic mean and covariance of those); threshold so that a `1 - quantile` share of the
    validation images is refused.

    With `val_groups` (each validation image's source), the threshold is the largest of the
    sources' own quantiles, so that at most `1 - quantile` of *each* source is refused: a
    pooled quantile let a small or unusual clinic be refused far more often than the rest.
    With `val_labels`, each class's distances are measured in units of its own validation radius
    (`OodGate.class_scale`), so that no diagnosis is refused much more often than the others."""
    classes = np.unique(labels)
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    precision = _fit_precision(features - means[np.searchsorted(classes, labels)])
    gate = OodGate(means.astype(np.float32), precision, 1.0)
    known = None if val_labels is None else np.isin(val_labels, classes)
    if val_labels is not None and known is not None and known.any():
        own = gate.class_distances(val_features[known])[
            np.arange(int(known.sum())), np.searchsorted(classes, val_labels[known])
        ]
        gate.class_scale = _class_scale(own, val_labels[known], classes, quantile)
    embedding, nearest = gate.nearest(val_features)
    gate.threshold = _quantile(embedding, quantile, val_groups)
    if level_features is None or val_level_features is None:
        return gate
    level_mean = level_features.mean(axis=0, keepdims=True)
    gate.level_mean = level_mean.astype(np.float32)
    gate.level_precision = _fit_precision(level_features - level_mean)
    level = gate.level_distances(val_level_features)
    if gate.class_scale is not None and val_labels is not None and known is not None:
        gate.level_class_scale = _class_scale(level[known], val_labels[known], classes, quantile)
        level = level / gate.level_class_scale[nearest]
    gate.level_threshold = _quantile(level, quantile, val_groups)
    # Each component alone would refuse 1 - quantile of validation; scale both so that together they do.
    joint = _quantile(
        np.maximum(embedding / gate.threshold, level / gate.level_threshold), quantile, val_groups
    )
    gate.threshold *= joint
    gate.level_threshold *= joint
    return gate

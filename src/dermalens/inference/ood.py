"""Out-of-distribution gate: is this a dermoscopy image at all?

Score: the Mahalanobis distance of the network's pooled embedding to the nearest
class mean, with one shared (shrunk) covariance fitted on the training embeddings
(Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples
and Adversarial Attacks", NeurIPS 2018). It needs no extra "non-skin" training data.
The threshold is a high quantile of the scores of validation dermoscopy images, so
the share of real lesions refused is chosen, not guessed; both live in the artifact.
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
    chroma = float((canon.max(axis=2) - canon.min(axis=2)).mean())  # uint8: max ≥ min, no overflow
    return MIN_CHROMA / max(chroma, 0.02)


@dataclass
class OodGate:
    means: np.ndarray  # [C, D] class means of training embeddings
    precision: np.ndarray  # [D, D] inverse of the shared covariance
    threshold: float  # raw distance above which an image is out of distribution
    _cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean, [N].

        Expanded as fᵀPf − 2fᵀPμ_c + μ_cᵀPμ_c so that one matrix product serves every class
        (the per-class form costs one D×D product per class: 7× slower at batch 1).
        """
        precision, precision_means, mean_terms = self._expanded()
        features = features.astype(np.float64)
        projected = features @ precision  # [N, D]
        per_class = (
            (projected * features).sum(axis=1)[:, None] - 2.0 * features @ precision_means.T + mean_terms
        )
        return np.maximum(per_class.min(axis=1), 0.0).astype(np.float32)

    def _expanded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float64 P, Pμ_c and μ_cᵀPμ_c, computed once (float64: the expansion subtracts large terms)."""
        if self._cache is None:
            precision = self.precision.astype(np.float64)
            precision_means = self.means.astype(np.float64) @ precision
            mean_terms = (precision_means * self.means.astype(np.float64)).sum(axis=1)[None, :]
            self._cache = (precision, precision_means, mean_terms)
        return self._cache

    def score(self, features: np.ndarray, colour_scores: list[float] | None = None) -> np.ndarray:
        """Distance divided by the threshold, or the images' `colour_score` when higher:
        above 1.0 means 'not a dermoscopy image'."""
        scores = self.distances(features) / self.threshold
        return scores if colour_scores is None else np.maximum(scores, colour_scores)

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            means=self.means.astype(np.float32),
            precision=self.precision.astype(np.float32),
            threshold=np.float32(self.threshold),
        )

    @classmethod
    def load(cls, path: Path) -> OodGate:
        with np.load(path) as data:
            return cls(data["means"], data["precision"], float(data["threshold"]))


def fit_gate(
    features: np.ndarray, labels: np.ndarray, val_features: np.ndarray, quantile: float = 0.99
) -> OodGate:
    """Fit class means and a Ledoit-Wolf shared covariance; set the threshold at a validation quantile."""
    from sklearn.covariance import LedoitWolf

    classes = np.unique(labels)
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    centred = features - means[np.searchsorted(classes, labels)]
    precision = LedoitWolf().fit(centred).precision_.astype(np.float32)
    gate = OodGate(means.astype(np.float32), precision, 1.0)
    gate.threshold = float(np.quantile(gate.distances(val_features), quantile))
    return gate

"""Fitting the out-of-distribution gate (`artifact.ood.OodGate`) on training and validation features.

Why class radii come from training + validation images (issue #34): a class's radius is a high
quantile of its own distances, and from the 35 validation images of vascular lesions (HAM10000 +
ISIC 2019) the 0.99 quantile is nearly their maximum, so new vascular lesions exceed it far more
often than 1 %. Pooling the class's training images (~180 more) gives the tail its shape; measured
on the bundled model the training distances of rare classes are no smaller than their validation
distances (the network did not memorise their embeddings), while common classes keep enough
validation images to count. The threshold itself stays a validation quantile per source.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from dermalens.artifact.ood import OodGate

#: Images a class needs for its own radius (fewer: the pooled one).
MIN_CLASS_IMAGES = 20


def _fit_precision(centred: np.ndarray) -> np.ndarray:
    from sklearn.covariance import LedoitWolf

    return LedoitWolf().fit(centred).precision_.astype(np.float32)


def _quantile(values: np.ndarray, quantile: float, groups: np.ndarray | None) -> float:
    """The `quantile` of `values`, or the largest of the groups' own quantiles."""
    if groups is None:
        return float(np.quantile(values, quantile))
    groups = np.asarray(groups)
    return max(float(np.quantile(values[groups == g], quantile)) for g in np.unique(groups))


def _class_scale(
    distances: np.ndarray, labels: np.ndarray, classes: np.ndarray, quantile: float
) -> np.ndarray:
    """[C] each class's radius over its own images, relative to the pooled `quantile` (1 for
    classes with fewer than `MIN_CLASS_IMAGES`). The radius is the split-conformal rank
    ceil((n + 1)·quantile) of the class's n distances (Lei et al., "Distribution-free predictive
    inference for regression", JASA 2018): a new image of the class exceeds it with probability
    at most 1 - quantile whatever the tail, where the plain quantile of a few hundred images is
    exceeded more often. Only degenerate ratios are bounded."""
    pooled = float(np.quantile(distances, quantile))
    scale = np.ones(len(classes), dtype=np.float32)
    for k, c in enumerate(classes):
        own = np.sort(distances[labels == c])
        if len(own) >= MIN_CLASS_IMAGES:
            rank = min(math.ceil((len(own) + 1) * quantile), len(own))  # beyond n: the largest
            scale[k] = np.clip(float(own[rank - 1]) / max(pooled, 1e-12), 1e-3, 1e3)
    return scale


def _own_distances(
    gate: OodGate, features: np.ndarray, labels: np.ndarray, classes: np.ndarray
) -> np.ndarray:
    """Each image's squared distance to its own class mean, [N]."""
    return gate.class_distances(features)[np.arange(len(labels)), np.searchsorted(classes, labels)]


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
    With `val_labels`, an image is measured against its nearest class mean in units of that class's
    radius (`OodGate.class_scale`, over the class's training + validation images; the mid-level
    part likewise), so that no diagnosis is refused much more often than the others."""
    classes = np.unique(labels)
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    precision = _fit_precision(features - means[np.searchsorted(classes, labels)])
    gate = OodGate(means.astype(np.float32), precision, 1.0)
    known = np.zeros(len(val_features), bool) if val_labels is None else np.isin(val_labels, classes)
    pooled_labels = np.concatenate([labels, np.asarray(val_labels)[known]]) if known.any() else labels
    if known.any():
        gate.nearest_by = "distance"
        own = _own_distances(gate, np.concatenate([features, val_features[known]]), pooled_labels, classes)
        gate.class_scale = _class_scale(own, pooled_labels, classes, quantile)
    embedding, nearest = gate.nearest(val_features)
    gate.threshold = _quantile(embedding, quantile, val_groups)
    if level_features is None or val_level_features is None:
        return gate
    level_mean = level_features.mean(axis=0, keepdims=True)
    gate.level_mean = level_mean.astype(np.float32)
    gate.level_precision = _fit_precision(level_features - level_mean)
    level = gate.level_distances(val_level_features)
    if known.any():
        pooled_level = np.concatenate([gate.level_distances(level_features), level[known]])
        gate.level_class_scale = _class_scale(pooled_level, pooled_labels, classes, quantile)
        level = level / gate.level_class_scale[nearest]
    gate.level_threshold = _quantile(level, quantile, val_groups)
    # Each component alone would refuse 1 - quantile of validation; scale both so that together they do.
    joint = _quantile(
        np.maximum(embedding / gate.threshold, level / gate.level_threshold), quantile, val_groups
    )
    gate.threshold *= joint
    gate.level_threshold *= joint
    return gate


def shift_gate(
    gate: OodGate,
    features: np.ndarray,
    level_features: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> OodGate:
    """A copy of `gate` re-centred on a clinic's images: every class mean moved by the clinic's mean
    offset from its class means (`labels`; without them, from each image's nearest class mean), the
    mid-level mean moved to the clinic's; covariances, radii and thresholds kept.

    Why only the centre: a clinic's camera and light shift every embedding alike, which inflates
    the distances of all its lesions; a few hundred images estimate that shift well but not a new
    1280-d covariance, and keeping the radii keeps a natural photo as far from every mean as it was."""
    nearest = gate.nearest(features)[1] if labels is None else np.asarray(labels)
    shifted = replace(gate, _cache={})
    shifted.means = (gate.means + (features - gate.means[nearest]).mean(axis=0)).astype(np.float32)
    if gate.level_mean is not None and level_features is not None:
        shifted.level_mean = level_features.mean(axis=0, keepdims=True).astype(np.float32)
    return shifted

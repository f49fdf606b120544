"""Metrics against values computed by hand on tiny examples, and their edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dermalens.core.taxonomy import DX_CODES, MALIGNANT
from dermalens.evaluation.bootstrap import metric_intervals, paired_auc_test, resamples
from dermalens.evaluation.metrics import (
    binary_metrics,
    compute_metrics,
    expected_calibration_error,
    jsonable,
    multiclass_metrics,
)
from dermalens.evaluation.subgroups import age_band, subgroup_metrics

MAL = sorted(MALIGNANT & set(DX_CODES))

# Six images: truth and p_malignant chosen away from bin edges so every figure is easy by hand.
Y = np.array([0, 0, 1, 1, 0, 1])
P = np.array([0.15, 0.45, 0.35, 0.85, 0.25, 0.95])


def test_binary_metrics_match_hand_computation() -> None:
    m = binary_metrics(Y, P, threshold=0.5)
    # decisions [0,0,0,1,0,1]: TP 2, FN 1, TN 3, FP 0
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1.0)
    assert m["ppv"] == pytest.approx(1.0)
    assert m["npv"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(0.8)  # 2·1·(2/3) / (1 + 2/3)
    # AUC: of 9 (malignant, benign) pairs only 0.35 < 0.45 is mis-ordered
    assert m["auc"] == pytest.approx(8 / 9)
    # AP: ranks 0.95 P, 0.85 P, 0.45 N, 0.35 P → 1/3·1 + 1/3·1 + 1/3·3/4
    assert m["pr_auc"] == pytest.approx(11 / 12)
    assert m["brier"] == pytest.approx((0.15**2 + 0.45**2 + 0.65**2 + 0.15**2 + 0.25**2 + 0.05**2) / 6)
    # one image per bin: ECE = mean |y − p|
    assert m["ece"] == pytest.approx((0.15 + 0.45 + 0.65 + 0.15 + 0.25 + 0.05) / 6)
    # 90 % sensitivity needs all three malignant: threshold 0.35, which also flags 0.45 (benign)
    point = m["specificity_at_sensitivity"]["0.90"]
    assert point["threshold"] == pytest.approx(0.35)
    assert point["specificity"] == pytest.approx(2 / 3)
    assert m["n"] == 6 and m["n_malignant"] == 3 and m["threshold"] == 0.5


def test_threshold_is_inclusive() -> None:
    assert binary_metrics(Y, P, threshold=0.35)["sensitivity"] == pytest.approx(1.0)
    assert binary_metrics(Y, P, threshold=0.3500001)["sensitivity"] == pytest.approx(2 / 3)


def test_undefined_figures_are_nan_then_null() -> None:
    m = binary_metrics(np.array([0, 0, 0]), np.array([0.1, 0.7, 0.2]), 0.5)
    assert math.isnan(m["auc"]) and math.isnan(m["sensitivity"]) and math.isnan(m["pr_auc"])
    assert m["specificity"] == pytest.approx(2 / 3)
    text = json.dumps(jsonable(m), allow_nan=False)
    assert '"auc": null' in text


def _multiclass_example() -> tuple[list[str], np.ndarray]:
    """6 images of mel, nv and bcc; argmax predictions: mel, nv, nv, nv, mel, bcc."""
    labels = ["mel", "mel", "nv", "nv", "nv", "bcc"]
    rows = [
        (0.6, 0.3, 0.1),
        (0.3, 0.6, 0.1),
        (0.1, 0.8, 0.1),
        (0.2, 0.7, 0.1),
        (0.5, 0.4, 0.1),
        (0.05, 0.15, 0.8),
    ]
    probs = np.zeros((6, len(DX_CODES)))
    for i, (mel, nv, bcc) in enumerate(rows):
        probs[i, DX_CODES.index("mel")], probs[i, DX_CODES.index("nv")] = mel, nv
        probs[i, DX_CODES.index("bcc")] = bcc
    return labels, probs


def test_multiclass_metrics_match_hand_computation() -> None:
    labels, probs = _multiclass_example()
    m = multiclass_metrics(labels, probs, DX_CODES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls over the present classes: mel 1/2, nv 2/3, bcc 1
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    # F1: mel P=1/2 R=1/2 → 1/2; nv P=2/3 R=2/3 → 2/3; bcc 1
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    mel = m["per_class"]["mel"]
    assert (mel["precision"], mel["recall"], mel["support"]) == (pytest.approx(0.5), pytest.approx(0.5), 2)
    # mel scores: positives 0.6, 0.3; negatives 0.1, 0.2, 0.5, 0.05 → 7 of 8 pairs ordered
    assert mel["auc"] == pytest.approx(7 / 8)
    assert m["per_class"]["df"]["support"] == 0 and math.isnan(m["per_class"]["df"]["auc"])
    matrix = np.asarray(m["confusion_matrix"]["matrix"])
    mel_i, nv_i = DX_CODES.index("mel"), DX_CODES.index("nv")
    assert matrix[mel_i, mel_i] == 1 and matrix[mel_i, nv_i] == 1 and matrix[nv_i, mel_i] == 1
    assert matrix.sum() == 6 and m["confusion_matrix"]["labels"] == list(DX_CODES)


def test_auc_macro_equals_sklearn_ovr_when_all_classes_present() -> None:
    rng = np.random.default_rng(1)
    codes = np.concatenate([np.arange(7), rng.integers(0, 7, 93)])
    probs = rng.dirichlet(np.ones(7), len(codes))
    labels = [DX_CODES[c] for c in codes]
    m = multiclass_metrics(labels, probs, DX_CODES)
    assert m["auc_macro"] == pytest.approx(roc_auc_score(codes, probs, multi_class="ovr"))


def test_compute_metrics_sections() -> None:
    labels, probs = _multiclass_example()
    result = compute_metrics(labels, probs, DX_CODES, MAL, 0.5)
    # binary truth [1,1,0,0,0,1], p_malignant = mel + bcc = [.7,.4,.2,.3,.6,.85]
    assert result["binary"]["auc"] == pytest.approx(8 / 9)
    assert result["binary"]["sensitivity"] == pytest.approx(2 / 3)
    assert result["multiclass"]["n"] == 6 and result["multiclass"]["n_excluded"] == 0
    # a label the model has no class for (scc) counts for malignancy only
    with_scc = compute_metrics([*labels, "scc"], np.vstack([probs, probs[:1]]), DX_CODES, MAL, 0.5)
    assert with_scc["binary"]["n"] == 7 and with_scc["binary"]["n_malignant"] == 4
    assert with_scc["multiclass"]["n"] == 6 and with_scc["multiclass"]["n_excluded"] == 1


def test_binary_only_labels_give_binary_section_only() -> None:
    labels = ["benign", "malignant", "benign", "malignant"]
    probs = np.full((4, len(DX_CODES)), 1 / 7)
    result = compute_metrics(labels, probs, DX_CODES, MAL, 0.5)
    assert result["multiclass"] is None and result["binary"]["n_malignant"] == 2
    binary_model = compute_metrics(
        labels,
        np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]),
        ["benign", "malignant"],
        ["malignant"],
        0.5,
    )
    assert binary_model["multiclass"] is None and binary_model["binary"]["auc"] == pytest.approx(1.0)


def test_ece_weights_bins_by_their_size() -> None:
    y = np.array([0, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.55] * 2 + [0.95] * 2 + [0.05] * 6)
    # bin 5: observed 1/2 vs 0.55; bin 9: 2/2 vs 0.95; bin 0: 1/6 vs 0.05
    expected = (2 * 0.05 + 2 * 0.05 + 6 * abs(1 / 6 - 0.05)) / 10
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.full(4, 0.5)) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "<30"),
        (29.9, "<30"),
        (30, "30-44"),
        (44, "30-44"),
        (45, "45-59"),
        (60, "60-74"),
        (74.5, "60-74"),
        (75, "75+"),
        (None, None),
        (float("nan"), None),
    ],
)
def test_age_bands(age: float | None, band: str | None) -> None:
    assert age_band(age) == band


def test_subgroups_rows_add_up_and_flag_small_groups() -> None:
    labels, probs = _multiclass_example()
    groups = subgroup_metrics(
        labels,
        probs,
        DX_CODES,
        MAL,
        0.5,
        {
            "sex": ["male", "female", None, "male", "female", "male"],
            "site": [None] * 6,  # no metadata: attribute left out
            "age": ["<30", "75+", "30-44", "<30", "75+", None],
        },
    )
    assert set(groups) == {"sex", "age"}
    assert list(groups["sex"]) == ["female", "male", "unknown"]
    assert list(groups["age"]) == ["<30", "30-44", "75+", "unknown"]  # in band order, unknown last
    assert sum(row["n"] for row in groups["sex"].values()) == 6
    assert all(row["few_cases"] for row in groups["sex"].values())
    male = groups["sex"]["male"]  # images 0 (mel), 3 (nv), 5 (bcc)
    assert male["n"] == 3 and male["n_malignant"] == 2 and male["accuracy"] == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    labels = [DX_CODES[c] for c in rng.integers(0, 7, 120)]
    probs = rng.dirichlet(np.ones(7), 120)
    probs[np.arange(120), [DX_CODES.index(x) for x in labels]] += 0.5  # informative model
    probs /= probs.sum(1, keepdims=True)
    first = metric_intervals(labels, probs, DX_CODES, MAL, 0.5, n_boot=40, seed=3)
    again = metric_intervals(labels, probs, DX_CODES, MAL, 0.5, n_boot=40, seed=3)
    assert first == again
    point = compute_metrics(labels, probs, DX_CODES, MAL, 0.5)
    for section in ("binary", "multiclass"):
        for key, (low, high) in first[section].items():
            assert low <= point[section][key] <= high, (section, key)


def test_group_resampling_keeps_groups_whole() -> None:
    groups = ["a", "a", "b", "c", "c", "c"]
    for idx in resamples(6, 20, seed=1, groups=groups):
        counts = np.bincount(idx, minlength=6)
        assert counts[0] == counts[1] and counts[3] == counts[4] == counts[5]


def test_paired_auc_test() -> None:
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 60)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 120), 0, 1)
    noise = rng.random(120)
    same = paired_auc_test(y, good, good, n_boot=100)
    assert same["delta"] == 0 and same["p_value"] == 1.0
    worse = paired_auc_test(y, good, noise, n_boot=200, seed=1)
    assert worse["delta"] < -0.2 and worse["p_value"] <= 0.01
    assert worse["ci"][0] <= worse["delta"] <= worse["ci"][1] < 0

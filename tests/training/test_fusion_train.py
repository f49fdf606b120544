"""Metadata fusion and the hierarchical head train from config (tiny runs) into working artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens import Classifier
from dermalens.training.config import load_config
from dermalens.training.finalize import build_artifact
from dermalens.training.trainer import Trainer
from training.conftest import write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images drawn alike for both classes; only the body site tells mel (face) from nv (back)."""
    root = tmp_path_factory.mktemp("sitedata")
    rows = ["path,label,group,age,sex,site"]
    for i in range(64):
        label, site = ("mel", "face") if i % 2 else ("nv", "back")
        save_image(root / f"{i}.png", lesion_like(i, (64, 48)), "PNG")
        rows.append(f"{i}.png,{label},g{i},{40 + i % 30},{'male' if i % 3 else 'female'},{site}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def _fit(data: Path, tmp_path: Path, **model: object) -> Path:
    path = write_config(
        tmp_path / "c.yaml",
        data,
        tmp_path / "runs",
        model={"pretrained": True, **model},
        stages=[{"name": "heads", "epochs": 8, "lr": 0.01, "freeze_backbone": True, "backbone_eval": True}],
    )
    config = load_config(path)
    model_ = Trainer(config, progress=False).fit()
    return build_artifact(model_, config, tmp_path / "artifact")


def test_metadata_model_learns_what_only_metadata_tells(site_dataset, tmp_path):
    artifact = _fit(site_dataset, tmp_path, metadata=True, metadata_dropout=0.0)
    clf = Classifier.load(artifact)
    assert clf.meta.metadata_inputs == ["age", "sex", "site"]
    images = [site_dataset.parent / f"{i}.png" for i in range(64)]
    face = [p.p_malignant for p in clf.predict(images, metadata={"site": "face"})]
    back = [p.p_malignant for p in clf.predict(images, metadata={"site": "back"})]
    assert np.mean(face) > np.mean(back) + 0.1  # the site moved the same images' malignancy
    plain = clf.predict(images[0])  # no metadata: still a valid prediction
    assert abs(sum(plain.probabilities.values()) - 1) < 1e-6


def test_hierarchical_run_gives_consistent_probabilities(tiny_dataset, tmp_path):
    artifact = _fit(tiny_dataset, tmp_path, head="hierarchical")
    clf = Classifier.load(artifact)
    assert clf.meta.head == "hierarchical" and not clf.meta.metadata_inputs
    result = clf.predict(tiny_dataset.parent / "1.png", heatmap=True)
    assert abs(sum(result.probabilities.values()) - 1) < 1e-6
    malignant = sum(result.probabilities[c] for c in clf.meta.malignant)
    assert result.p_malignant == pytest.approx(malignant)
    assert result.heatmap is not None and result.heatmap.max() > 0
    assert clf.meta.metrics["validation"]["auc"] == clf.meta.metrics["validation"]["auc"]  # not NaN


def test_late_fusion_trusts_metadata_that_tells_the_label(site_dataset, tmp_path):
    """An image model that knows nothing + a metadata model that knows the site → the fused artifact
    follows the site, and the report says which weight validation chose."""
    import torch

    from dermalens.models.factory import create_model

    torch.manual_seed(0)
    image_model = create_model("tf_efficientnet_lite0", num_classes=7)
    checkpoint = tmp_path / "image.pt"
    torch.save(image_model.state_dict(), checkpoint)
    path = write_config(
        tmp_path / "c.yaml",
        site_dataset,
        tmp_path / "runs",
        model={"pretrained": False, "checkpoint": str(checkpoint), "metadata": True, "fusion": "late"},
    )
    from dermalens.training.late_fusion import fit_late_fusion

    config = load_config(path)
    net, report = fit_late_fusion(config)
    assert report["weight"] > 0 and set(report["validation_by_weight"]) >= {"0.0", "1.0"}
    clf = Classifier.load(build_artifact(net, config, tmp_path / "artifact", notes=report))
    assert clf.meta.metadata_branch == "linear" and clf.meta.training["notes"]["weight"] == report["weight"]
    image = site_dataset.parent / "0.png"
    face = clf.predict(image, metadata={"site": "face"}).probabilities
    back = clf.predict(image, metadata={"site": "back"}).probabilities
    assert face["mel"] > back["mel"] and back["nv"] > face["nv"]


def test_late_fusion_config_needs_an_image_model(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {metadata: true, fusion: late}\n")
    with pytest.raises(ValueError, match="checkpoint"):
        load_config(path)

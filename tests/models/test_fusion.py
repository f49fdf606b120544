"""LesionNet: metadata fusion and the hierarchical head keep exact CAMs and consistent probabilities."""

import numpy as np
import pytest
import torch

from conftest import lesion_like
from dermalens.artifact.store import load_meta
from dermalens.core.metadata import MetadataEncoding, PatientMetadata
from dermalens.core.preprocess import prepare
from dermalens.core.taxonomy import DX_CODES, MALIGNANT
from dermalens.inference.runtime import create_runtime
from dermalens.models.factory import create_model
from dermalens.models.heads import forward_all

MAL = [i for i, c in enumerate(DX_CODES) if c in MALIGNANT]
DIM = MetadataEncoding().dim


def _net(hierarchical: bool, metadata_dim: int) -> torch.nn.Module:
    torch.manual_seed(0)
    net = create_model(
        "tf_efficientnet_lite0",
        num_classes=7,
        metadata_dim=metadata_dim,
        hierarchical=hierarchical,
        malignant=MAL,
    ).eval()
    for layer in net.head.linears():
        torch.nn.init.normal_(layer.weight, std=0.1)
        torch.nn.init.normal_(layer.bias, std=0.3)
    return net


def test_hierarchical_probabilities_are_consistent():
    net = _net(True, DIM)
    x, meta = torch.randn(3, 3, 48, 64), torch.rand(3, DIM)
    with torch.no_grad():
        out = forward_all(net, x, meta)
        fused = torch.cat([out["features"], net.meta(meta)], dim=1)
        branch = torch.softmax(net.head.branch(fused), dim=1)
    probs = out["logits"].exp()
    assert torch.allclose(probs.sum(1), torch.ones(3), atol=1e-5)
    assert torch.allclose(probs[:, MAL].sum(1), branch[:, 1], atol=1e-5)  # p(malignant) = its branch
    benign = [i for i in range(7) if i not in MAL]
    assert torch.allclose(probs[:, benign].sum(1), branch[:, 0], atol=1e-5)


@pytest.mark.parametrize("hierarchical", [False, True])
def test_cam_is_exact_with_metadata(hierarchical):
    """The metadata part is a per-image constant on the map, so the map's mean is the raw score."""
    net = _net(hierarchical, DIM)
    x, meta = torch.randn(2, 3, 48, 64), torch.rand(2, DIM)
    with torch.no_grad():
        out = forward_all(net, x, meta)
        fused = torch.cat([out["features"], net.meta(meta)], dim=1)
        if hierarchical:
            raw = net.head.branch(fused).index_select(1, net.head.branch_of) + net.head.within(fused)
        else:
            raw = out["logits"]
    assert torch.allclose(out["cam"].mean(dim=(2, 3)), raw, atol=1e-4)


def test_metadata_changes_the_output_and_is_required():
    net = _net(False, DIM)
    x = torch.randn(1, 3, 48, 64)
    encoding = MetadataEncoding()
    young = torch.from_numpy(encoding.encode([PatientMetadata(20.0, "female", "lower extremity")]))
    old = torch.from_numpy(encoding.encode([PatientMetadata(85.0, "male", "head/neck")]))
    with torch.no_grad():
        assert not torch.allclose(net(x, young), net(x, old))
    with pytest.raises(ValueError, match="metadata"):
        net(x)


def test_image_checkpoint_seeds_fusion_head(tmp_path):
    """Starting from an image-only model, the fused model predicts exactly what it did."""
    torch.manual_seed(1)
    image_only = create_model("tf_efficientnet_lite0", num_classes=7).eval()
    torch.nn.init.normal_(image_only.classifier.weight, std=0.1)
    path = tmp_path / "image.pt"
    torch.save(image_only.state_dict(), path)
    fused = create_model("tf_efficientnet_lite0", num_classes=7, checkpoint=path, metadata_dim=DIM).eval()
    x, meta = torch.randn(2, 3, 48, 64), torch.rand(2, DIM)
    with torch.no_grad():
        assert torch.allclose(fused(x, meta), image_only(x), atol=1e-5)


def test_fusion_artifact_onnx_matches_torch(tiny_fusion_artifact):
    folder, meta = load_meta(tiny_fusion_artifact)
    assert meta.encoding is not None and meta.head == "hierarchical"
    batch = np.stack([prepare(lesion_like(i), meta.preprocessing) for i in range(3)])
    vectors = meta.encoding.encode([None, {"age": 70, "site": "face"}, {"sex": "female"}])
    onnx_out = create_runtime(folder, meta, "onnx").run(batch, vectors)
    torch_out = create_runtime(folder, meta, "torch").run(batch, vectors)
    for key in ("logits", "features", "cam"):
        assert np.abs(onnx_out[key] - torch_out[key]).max() <= 1e-4, key
    with pytest.raises(ValueError, match="metadata"):
        create_runtime(folder, meta, "onnx").run(batch)

"""Shared fixtures: generated images, a tiny real artifact (ONNX + weights), the HAM10000 location."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dermalens.artifact.meta import ArtifactMeta
from dermalens.core.preprocess import Preprocessing
from dermalens.core.taxonomy import DX_CODES, MALIGNANT

HAM_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000"


def ham_root() -> Path | None:
    """The HAM10000 folder ($DERMALENS_DATA or ../shared/data/ham10000), or None."""
    root = Path(os.environ.get("DERMALENS_DATA", HAM_DEFAULT))
    return root if (root / "HAM10000_metadata.csv").is_file() else None


SHARED_DATA = HAM_DEFAULT.parent


def _shared(name: str, marker: str) -> Path:
    root = SHARED_DATA / name
    if not (root / marker).exists():
        pytest.skip(f"{name} not found: expected {root / marker} (the shared data beside the repository)")
    return root


@pytest.fixture(scope="session")
def isic2019() -> Path:
    """The shared ISIC 2019 (non-HAM part) folder, or skip."""
    return _shared("isic2019", "ISIC_2019_Training_GroundTruth.csv")


@pytest.fixture(scope="session")
def derm7pt() -> Path:
    """The shared Derm7pt folder (evaluation only), or skip."""
    return _shared("derm7pt", "meta/meta.csv")


@pytest.fixture(scope="session")
def ham10000() -> Path:
    root = ham_root()
    if root is None:
        pytest.skip(
            "HAM10000 not found: put HAM10000_metadata.csv and the images under ../shared/data/ham10000 "
            "(beside the repository) or set DERMALENS_DATA"
        )
    return root


def lesion_like(seed: int, size: tuple[int, int] = (120, 90)) -> np.ndarray:
    """A synthetic 'lesion': a dark blob on skin-coloured background, with noise (H×W×3 uint8)."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = height / 2 + rng.normal(0, 5), width / 2 + rng.normal(0, 5)
    radius = rng.uniform(0.2, 0.35) * min(width, height)
    blob = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)))
    skin = np.array([205, 150, 130]) + rng.normal(0, 8, 3)
    lesion = np.array([90, 55, 40]) + rng.normal(0, 8, 3)
    image = skin * (1 - blob[..., None]) + lesion * blob[..., None] + rng.normal(0, 6, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def save_image(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def _tiny(folder: Path, spec: Preprocessing, seed: int, name: str) -> Path:
    """A real artifact: EfficientNet-Lite0 (ImageNet backbone, random 7-class head) at `spec`'s size,
    exported to ONNX, with an OOD gate (embedding and mid-level parts) fitted on synthetic lesions."""
    import torch

    from dermalens.core.preprocess import prepare
    from dermalens.models.build import save_artifact
    from dermalens.models.factory import create_model
    from dermalens.models.heads import forward_all
    from dermalens.models.ood_fit import fit_gate

    torch.manual_seed(seed)
    model = create_model("tf_efficientnet_lite0", num_classes=len(DX_CODES)).eval()
    batch = torch.from_numpy(np.stack([prepare(lesion_like(s), spec) for s in range(48)]))
    with torch.no_grad():
        out = {k: v.numpy() for k, v in forward_all(model, batch).items()}
    features, level = out["features"], out["level_features"]
    gate = fit_gate(features[:32], np.arange(32) % 2, features[32:], 1.0, level[:32], level[32:])
    gate.threshold *= 1.5  # generous: synthetic lesions vary more than 16 validation samples show
    gate.level_threshold *= 1.5
    meta = ArtifactMeta(
        name=name,
        architecture="tf_efficientnet_lite0",
        classes=list(DX_CODES),
        malignant=sorted(MALIGNANT & set(DX_CODES)),
        preprocessing=spec,
        temperature=1.5,
        threshold=0.3,
    )
    return save_artifact(model, folder, meta, gate)


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real artifact at 64×48 (random head): see `_tiny`."""
    return _tiny(
        tmp_path_factory.mktemp("artifact") / "tiny", Preprocessing(input_size=(64, 48)), 0, "tiny-test"
    )


@pytest.fixture(scope="session")
def tiny_artifact_other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A *different* second member: another head, another input size, a working size and no colour
    constancy, so an ensemble test fails if members share one preprocessing or averaging is wrong."""
    spec = Preprocessing(input_size=(80, 60), working_size=(100, 75), color_constancy="none")
    return _tiny(tmp_path_factory.mktemp("artifact") / "other", spec, 1, "tiny-other")


@pytest.fixture(scope="session")
def tiny_fusion_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real metadata-fusion artifact with a hierarchical head (random heads, ImageNet backbone) at
    64×48: model.onnx has the inputs "image" and "metadata"."""
    import torch

    from dermalens.core.metadata import MetadataEncoding
    from dermalens.models.build import save_artifact
    from dermalens.models.factory import create_model
    from dermalens.models.fusion import META_HIDDEN

    torch.manual_seed(0)
    encoding = MetadataEncoding()
    classes = list(DX_CODES)
    malignant = sorted(MALIGNANT & set(DX_CODES))
    model = create_model(
        "tf_efficientnet_lite0",
        num_classes=len(classes),
        metadata_dim=encoding.dim,
        hierarchical=True,
        malignant=[classes.index(c) for c in malignant],
    ).eval()
    for layer in model.head.linears():  # type: ignore[union-attr,operator]
        torch.nn.init.normal_(layer.weight, std=0.05)
        torch.nn.init.normal_(
            layer.weight[:, -META_HIDDEN:], std=1.0
        )  # metadata columns: visible effects in tests
    meta = ArtifactMeta(
        name="tiny-fusion",
        architecture="tf_efficientnet_lite0",
        classes=classes,
        malignant=malignant,
        preprocessing=Preprocessing(input_size=(64, 48)),
        head="hierarchical",
        metadata_inputs=list(encoding.fields),
        metadata_encoding=encoding.to_dict(),
    )
    return save_artifact(model, tmp_path_factory.mktemp("artifact") / "fusion", meta)


#: Images of HAM10000's validation and test splits that the prediction-set tests use.
SETS_VAL, SETS_TEST = 300, 300


@pytest.fixture(scope="session")
def sets_split(ham10000: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A split file of real HAM10000 images: 300 of the bundled split's val (to fit the prediction
    sets on) and 300 of its test (to measure them), lesion-grouped as the original."""
    import json

    from dermalens.data.splits import Split

    split = Split.load(Path(__file__).resolve().parents[1] / "configs/splits/ham10000-seed0.json")
    val, test = sorted(split.ids("val"))[:SETS_VAL], sorted(split.ids("test"))[:SETS_TEST]
    path = tmp_path_factory.mktemp("sets-split") / "split.json"
    assignments = {i: "val" for i in val} | {i: "test" for i in test}
    path.write_text(json.dumps({"assignments": assignments, "seed": 0}), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def bundled_network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model as one network: itself, or where it is an ensemble artifact its primary
    (`artifact.write.primary_copy`), for tests of what single networks take (conformal sets,
    ensemble members)."""
    from dermalens.artifact.store import BUNDLED_DIR, load_meta
    from dermalens.artifact.write import primary_copy

    if load_meta(BUNDLED_DIR, verify=False)[1].ensemble is None:
        return BUNDLED_DIR
    return primary_copy(BUNDLED_DIR, tmp_path_factory.mktemp("bundled-network") / "model")


@pytest.fixture(scope="session")
def sets_artifact(
    ham10000: Path, sets_split: Path, bundled_network: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the bundled model's (primary) network whose prediction sets `dermalens artifact
    conformal` fitted on the validation part of `sets_split` (so the tests do not depend on the
    bundled model's own sets)."""
    from dermalens.cli import main

    out = tmp_path_factory.mktemp("sets") / "model"
    argv = [
        "artifact",
        "conformal",
        "--model",
        str(bundled_network),
        "--data",
        str(ham10000),
        "--split",
        str(sets_split),
    ]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def dicom_folder(ham10000: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real DICOM files written with pydicom from HAM10000 images, in a folder per diagnosis (a layout
    every reader takes): JPEG Baseline and uncompressed ones, with the patient's age, sex and site."""
    from dicom_files import write_dicom

    folder = tmp_path_factory.mktemp("dicom")
    images = sorted((ham10000 / "images").glob("ISIC_00243*.jpg"))[:6]
    for k, jpeg in enumerate(images):
        label = ("nv", "mel")[k % 2]
        (folder / label).mkdir(exist_ok=True)
        write_dicom(folder / label / f"{jpeg.stem}.dcm", jpeg, syntax=("jpeg", "raw")[k % 2])
    return folder


@pytest.fixture(scope="session")
def ensemble_artifact(
    ham10000: Path,
    sets_split: Path,
    bundled_network: Path,
    tiny_artifact_other: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """An ensemble artifact made by `dermalens artifact ensemble`: the bundled model's (primary)
    network and the tiny second member (another input size, a working size), its threshold,
    decision rule and prediction sets fitted on the 300 validation images of `sets_split`."""
    from dermalens.cli import main

    out = tmp_path_factory.mktemp("ensemble") / "model"
    argv = ["artifact", "ensemble", "--model", str(bundled_network), "--model", str(tiny_artifact_other)]
    argv += ["--data", str(ham10000), "--split", str(sets_split), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="session")
def hand_ensemble(
    tiny_artifact: Path, tiny_artifact_other: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An ensemble artifact of the two tiny models with a decision set by hand (no fitting, no
    data): for what only the folder's layout and hashes decide."""
    from dermalens.artifact.meta import EnsembleSpec
    from dermalens.artifact.write import write_ensemble

    spec = EnsembleSpec(["members/other"], threshold=0.2, threshold_rule="by hand", class_bias=[0.1] * 7)
    out = tmp_path_factory.mktemp("hand-ensemble") / "model"
    return write_ensemble(out, tiny_artifact, [tiny_artifact_other], spec, "hand")

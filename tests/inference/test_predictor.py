import numpy as np
import pytest
from PIL import Image

from conftest import lesion_like, save_image
from dermalens import Classifier
from dermalens.artifact.meta import ArtifactError
from dermalens.artifact.store import load_meta
from dermalens.core.decode import ImageDecodeError
from dermalens.inference.results import Prediction, PredictionError
from dermalens.inference.tta import tta_views, undo_view


@pytest.fixture(scope="module")
def clf(tiny_artifact):
    return Classifier.load(tiny_artifact)


def test_predict_accepts_path_bytes_pil_array(clf, tmp_path):
    path = save_image(tmp_path / "x.jpg", lesion_like(1))
    results = [
        clf.predict(x)
        for x in (path, str(path), path.read_bytes(), Image.open(path), np.asarray(Image.open(path)))
    ]
    for r in results:
        assert isinstance(r, Prediction)
        assert set(r.probabilities) == set(clf.classes)
        assert abs(sum(r.probabilities.values()) - 1) < 1e-6
        assert r.p_malignant == pytest.approx(sum(r.probabilities[c] for c in clf.meta.malignant))
        assert r.top_class == max(r.probabilities, key=r.probabilities.get)
        assert r.prediction == (None if r.refused else r.top_class)
        assert r.decision == ("malignant" if r.p_malignant >= clf.threshold else "benign")
    assert results[0].probabilities == pytest.approx(results[2].probabilities, abs=1e-6)


def test_threshold_override_changes_decision(clf):
    r = clf.predict(lesion_like(2))
    assert clf.predict(lesion_like(2), threshold=0.0).decision == "malignant"
    assert clf.predict(lesion_like(2), threshold=1.01).decision == "benign"
    assert r.threshold == clf.meta.threshold


def test_list_keeps_errors_in_place(clf):
    out = clf.predict([lesion_like(3), b"not an image", lesion_like(4)])
    assert [type(o) for o in out] == [Prediction, PredictionError, Prediction]
    assert "text file is not an accepted image; send JPEG" in out[1].error and out[1].kind == "unsupported"
    with pytest.raises(ImageDecodeError):
        clf.predict(b"")


def test_tta_views_roundtrip_and_average(clf):
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    views = tta_views(x, 8)
    assert len(views) == 8 and views[4].shape == (2, 4, 3)
    heat = np.arange(12, dtype=np.float32).reshape(3, 4)
    for i, (k, flip) in enumerate(
        [(0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True)]
    ):
        view = np.rot90(heat, k=k)
        view = view[:, ::-1] if flip else view
        assert np.array_equal(undo_view(view, i), heat)
    r1, r8 = clf.predict(lesion_like(5), tta=1), clf.predict(lesion_like(5), tta=8, heatmap=True)
    assert r8.heatmap.shape == (48, 64)
    assert r1.probabilities != r8.probabilities
    with pytest.raises(ValueError, match="1 to 8"):
        clf.predict(lesion_like(5), tta=9)


def test_heatmap_is_normalised_map(clf):
    r = clf.predict(lesion_like(6), heatmap=True)
    assert r.heatmap.shape == (48, 64) and r.heatmap.min() >= 0 and r.heatmap.max() == pytest.approx(1.0)
    assert clf.predict(lesion_like(6)).heatmap is None


def test_ensemble_averages_members(tiny_artifact):
    single = Classifier.load(tiny_artifact).predict(lesion_like(7))
    double = Classifier.load([tiny_artifact, tiny_artifact]).predict(lesion_like(7))
    assert double.probabilities == pytest.approx(single.probabilities, abs=1e-6)


def test_ood_gate_flags_noise_not_lesions(clf):
    rng = np.random.default_rng(0)
    assert not clf.predict(lesion_like(8)).ood
    assert clf.predict(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).ood


def test_damaged_artifact_is_refused(tiny_artifact, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_artifact, copy)
    with open(copy / "model.onnx", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_meta(copy)
    with pytest.raises(ArtifactError, match="not a dermalens model artifact"):
        Classifier.load(tmp_path)


def test_grad_cam_for_a_head_without_exact_cam(tmp_path):
    """MobileNetV3 has a conv after pooling: the ONNX CAM is zero, the PyTorch runtime uses Grad-CAM."""
    import torch

    from dermalens.artifact.meta import ArtifactMeta
    from dermalens.core.preprocess import Preprocessing
    from dermalens.core.taxonomy import DX_CODES
    from dermalens.models.build import random_gate, save_artifact
    from dermalens.models.factory import create_model

    torch.manual_seed(0)
    model = create_model("mobilenetv3_large_100", pretrained=False, num_classes=7).eval()
    meta = ArtifactMeta(
        name="mnv3",
        architecture="mobilenetv3_large_100",
        classes=list(DX_CODES),
        malignant=["akiec", "bcc", "mel"],
        preprocessing=Preprocessing(input_size=(64, 48)),
    )
    folder = save_artifact(model, tmp_path / "mnv3", meta, random_gate(1280, 7))
    onnx_map = Classifier.load(folder).predict(lesion_like(1), heatmap=True).heatmap
    torch_map = Classifier.load(folder, runtime="torch").predict(lesion_like(1), heatmap=True).heatmap
    assert onnx_map.max() == 0.0
    assert torch_map.shape == (48, 64) and torch_map.max() > 0.0


def test_onnx_threads_do_not_spin_unless_asked(tiny_artifact, monkeypatch):
    """Busy-waiting ORT threads starve preprocessing on small CPUs (benchmarks/predict_speed.py)."""
    from dermalens.inference.runtime import OnnxRuntime

    key = "session.intra_op.allow_spinning"
    onnx = tiny_artifact / "model.onnx"
    assert OnnxRuntime(onnx).session.get_session_options().get_session_config_entry(key) == "0"
    monkeypatch.setenv("DERMALENS_ORT_SPIN", "1")
    assert OnnxRuntime(onnx).session.get_session_options().get_session_config_entry(key) == "1"

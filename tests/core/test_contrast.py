"""Optional CLAHE contrast enhancement (`preprocessing.contrast: clahe`): what it does to a real
image, where it sits in the one preprocessing path, how it travels in the artifact, and the error
a serving install without OpenCV gives."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import _tiny, lesion_like
from dermalens.artifact.meta import ArtifactError
from dermalens.artifact.store import load_meta
from dermalens.core.preprocess import Preprocessing, canonical, clahe, color_correct, resize_to_input
from dermalens.inference.predictor import Classifier

CLAHE = Preprocessing(input_size=(224, 168), contrast="clahe")


def _local_contrast(rgb: np.ndarray) -> float:
    """Mean standard deviation of the lightness in 8×8 blocks."""
    lightness = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    h, w = (n // 8 * 8 for n in lightness.shape)
    return float(lightness[:h, :w].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3)).mean())


def test_clahe_raises_local_contrast_and_keeps_the_colours(ham10000: Path) -> None:
    path = sorted(ham10000.rglob("*.jpg"))[0]
    rgb = resize_to_input(np.asarray(Image.open(path).convert("RGB")), CLAHE)
    flat = (rgb.astype(np.float64) * 0.5 + 64).astype(np.uint8)  # a washed-out copy
    out = clahe(flat)
    assert out.shape == flat.shape and out.dtype == np.uint8
    assert _local_contrast(out) > 2 * _local_contrast(flat)  # measured: 2.25 → 5.18 on this image
    hue_in = flat.reshape(-1, 3).mean(0) / flat.reshape(-1, 3).mean()
    hue_out = out.reshape(-1, 3).mean(0) / out.reshape(-1, 3).mean()
    assert np.abs(hue_out - hue_in).max() < 0.05  # lightness changes, the colour balance does not


def test_clahe_runs_after_colour_constancy_in_the_one_photometric_step() -> None:
    rgb = lesion_like(3, (224, 168))
    plain = Preprocessing(input_size=(224, 168))
    assert np.array_equal(color_correct(rgb, CLAHE), clahe(color_correct(rgb, plain)))
    assert np.array_equal(canonical(rgb, CLAHE), clahe(canonical(rgb, plain)))
    assert not np.array_equal(canonical(rgb, CLAHE), canonical(rgb, plain))
    finer = Preprocessing(input_size=(224, 168), contrast="clahe", clahe_tiles=(4, 4), clahe_clip=4.0)
    assert not np.array_equal(canonical(rgb, finer), canonical(rgb, CLAHE))


def test_the_option_is_checked_and_stored_in_the_artifact(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"contrast[\s\S]*'none' or 'clahe'"):
        Preprocessing(contrast="histogram")  # type: ignore[arg-type]  # refused when made, by pydantic
    with pytest.raises(ValueError, match="preprocessing: contrast 'histogram'; valid: none, clahe"):
        Preprocessing.from_dict({"contrast": "histogram"})  # read from a file: the project's one style
    with pytest.raises(ValueError, match="clahe_clip must be > 0"):
        Preprocessing(contrast="clahe", clahe_clip=0).validate()
    spec = Preprocessing(input_size=(64, 48), contrast="clahe", clahe_tiles=(4, 3), clahe_clip=3.0)
    assert Preprocessing.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with_clahe = _tiny(tmp_path / "clahe", spec, 0, "tiny-clahe")
    without = _tiny(tmp_path / "plain", Preprocessing(input_size=(64, 48)), 0, "tiny-plain")  # same weights
    assert load_meta(with_clahe)[1].preprocessing == spec
    image = lesion_like(5, (160, 120))
    a, b = Classifier.load(with_clahe).predict(image), Classifier.load(without).predict(image)
    assert a.probabilities != b.probabilities  # the served model applies it
    meta = json.loads((with_clahe / "artifact.json").read_text())
    meta["preprocessing"]["contrast"] = "sharpen"
    (with_clahe / "artifact.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="preprocessing: contrast 'sharpen'"):
        load_meta(with_clahe, verify=False)


def test_without_opencv_a_clahe_model_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # as in the light serving install
    with pytest.raises(ImportError, match=r"pip install 'dermalens\[clahe\]'"):
        CLAHE.validate()
    Preprocessing().validate()  # models without CLAHE never need it

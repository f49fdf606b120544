"""Where the bundled model is found, and how its packaged copy is checked (issue #30).

A wheel carries models/default/ as `dermalens/_bundled/` without weights.pt (setup.py): that copy
must load and predict, its present files must still be verified, and no other artifact may lack a
file its artifact.json lists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import lesion_like
from dermalens import Classifier
from dermalens.artifact import store as artifact
from dermalens.artifact.meta import META_FILE, WEIGHTS_FILE, ArtifactError
from dermalens.artifact.store import load_meta


def serving_copy(source: Path, folder: Path) -> Path:
    """`source` as the wheel packages it: every file but weights.pt."""
    return Path(shutil.copytree(source, folder, ignore=shutil.ignore_patterns(WEIGHTS_FILE)))


@pytest.fixture
def packaged(tiny_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A serving copy of the tiny artifact standing where an installed wheel's bundled model stands."""
    folder = serving_copy(tiny_artifact, tmp_path / "site-packages" / "dermalens" / "_bundled")
    monkeypatch.setattr(artifact, "PACKAGED_DIR", folder)
    return folder


def test_the_packaged_copy_verifies_and_predicts_without_weights(packaged):
    folder, meta = load_meta(packaged)
    assert folder == packaged and WEIGHTS_FILE in meta.files  # listed, absent, allowed here only
    result = Classifier.load(packaged).predict(lesion_like(3))
    assert 0.0 <= result.p_malignant <= 1.0
    with pytest.raises(ArtifactError, match=f"no {WEIGHTS_FILE} for the PyTorch runtime"):
        Classifier.load(packaged, runtime="torch")


def test_no_other_artifact_may_lack_a_listed_file(packaged, tiny_artifact, tmp_path):
    elsewhere = serving_copy(tiny_artifact, tmp_path / "user-model")
    with pytest.raises(ArtifactError, match=f"{WEIGHTS_FILE} is listed in {META_FILE} but missing"):
        load_meta(elsewhere)


def test_the_packaged_copy_still_checks_the_files_it_has(packaged):
    with open(packaged / "model.onnx", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_meta(packaged)
    (packaged / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match=f"model.onnx is listed in {META_FILE} but missing"):
        load_meta(packaged)


def test_the_bundled_model_is_the_packaged_copy_where_there_is_one(tmp_path, monkeypatch):
    empty = tmp_path / "dermalens" / "_bundled"
    monkeypatch.setattr(artifact, "PACKAGED_DIR", empty)
    assert artifact.bundled_dir() == artifact.SOURCE_DIR  # a checkout: models/default/
    assert (artifact.SOURCE_DIR / META_FILE).is_file()
    serving_copy(artifact.SOURCE_DIR, empty)
    assert artifact.bundled_dir() == empty

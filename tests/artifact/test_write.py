"""`artifact.write`, the one writer of artifacts (issue #30): every change leaves files and hashes
in step, a file is replaced whole or not at all, and a wrong name is refused with the valid ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dermalens.artifact.meta import HASHED_FILES, OOD_FILE, ArtifactError
from dermalens.artifact.ood import OodGate
from dermalens.artifact.store import load_meta
from dermalens.artifact.write import put_file, remove_file, update, writable_copy, write_meta


@pytest.fixture
def copy(tiny_artifact: Path, tmp_path: Path) -> Path:
    return writable_copy(tiny_artifact, tmp_path / "copy")


def test_update_rewrites_the_metadata_with_valid_hashes(copy):
    update(copy, temperature=1.5, threshold_rule="set by a test")
    _, meta = load_meta(copy, verify=True)
    assert meta.temperature == 1.5 and meta.threshold_rule == "set by a test"
    with pytest.raises(ValueError, match="no field temprature; valid: name, architecture"):
        update(copy, temprature=2.0)


def test_a_file_put_is_stale_until_the_metadata_is_written(copy):
    _, meta = load_meta(copy)
    gate = OodGate.load(copy / OOD_FILE)
    gate.threshold *= 2
    put_file(copy, OOD_FILE, gate.save)
    with pytest.raises(ArtifactError, match="does not match"):
        load_meta(copy)
    write_meta(copy, meta)
    _, meta = load_meta(copy)
    assert OodGate.load(copy / OOD_FILE).threshold == pytest.approx(gate.threshold)


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(copy):
    before = (copy / OOD_FILE).read_bytes()

    def broken(path: Path) -> None:
        np.savez(path, half=np.zeros(3))
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        put_file(copy, OOD_FILE, broken)
    assert (copy / OOD_FILE).read_bytes() == before
    assert sorted(p.name for p in copy.iterdir() if p.name.startswith(".")) == []
    load_meta(copy)  # still verifies


def test_removing_a_file_drops_its_hash(copy):
    _, meta = load_meta(copy)
    remove_file(copy, OOD_FILE)
    write_meta(copy, meta)
    assert OOD_FILE not in load_meta(copy)[1].files


def test_names_outside_the_artifact_are_refused(copy):
    with pytest.raises(
        ValueError, match="'notes.txt' is not an artifact file; valid: " + ", ".join(HASHED_FILES)
    ):
        put_file(copy, "notes.txt", lambda path: path.write_text("x"))
    with pytest.raises(ValueError, match="is not an artifact file"):
        remove_file(copy, "../elsewhere.onnx")


def test_a_copy_never_overwrites_unless_asked(tiny_artifact, tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    with pytest.raises(ValueError, match="exists; choose a new folder"):
        writable_copy(tiny_artifact, target)
    assert load_meta(writable_copy(tiny_artifact, target, replace=True))[0] == target
    assert writable_copy(tiny_artifact, None) == tiny_artifact
    shutil.rmtree(target)

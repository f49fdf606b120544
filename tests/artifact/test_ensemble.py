"""An ensemble artifact on disk: members pinned by the primary's hashes, each verified on its own,
weights.pt left out of members only (and their gate files where only the primary's gate refuses),
and artifacts without the field as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dermalens.artifact.meta import (
    META_FILE,
    ONNX_FILE,
    OOD_FILE,
    WEIGHTS_FILE,
    ArtifactError,
    ArtifactMeta,
    EnsembleSpec,
)
from dermalens.artifact.store import absent_allowed, load_members, load_meta
from dermalens.artifact.write import write_ensemble, write_meta


def copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def test_the_primary_pins_its_members_and_members_lack_their_weights_and_unused_gate(
    hand_ensemble: Path,
) -> None:
    folder, meta = load_meta(hand_ensemble)
    assert meta.ensemble is not None and meta.ensemble.members == ["members/other"]
    assert meta.ensemble.gate == "first"  # only the primary's gate refuses: the member's never runs
    assert "members/other/artifact.json" in meta.files and meta.name == "hand"
    ((member_folder, member),) = load_members(folder, meta)
    assert member.name == "tiny-other" and {WEIGHTS_FILE, OOD_FILE} <= set(member.files)  # as it was
    assert not (member_folder / WEIGHTS_FILE).exists() and (folder / WEIGHTS_FILE).is_file()
    assert not (member_folder / OOD_FILE).exists() and (folder / OOD_FILE).is_file()
    assert absent_allowed(member_folder) == {WEIGHTS_FILE, OOD_FILE} and absent_allowed(folder) == frozenset()


def test_with_every_gate_refusing_members_keep_their_gate_files(
    tiny_artifact: Path, tiny_artifact_other: Path, tmp_path: Path
) -> None:
    spec = EnsembleSpec(["members/other"], threshold=0.2, threshold_rule="by hand", gate="max")
    folder = write_ensemble(tmp_path / "max", tiny_artifact, [tiny_artifact_other], spec)
    ((member_folder, _),) = load_members(*load_meta(folder))
    assert (member_folder / OOD_FILE).is_file() and absent_allowed(member_folder) == {WEIGHTS_FILE}
    (member_folder / OOD_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"ood\.npz is listed in artifact\.json but missing"):
        load_members(*load_meta(folder))


def test_a_tampered_member_file_fails_verification(hand_ensemble: Path, tmp_path: Path) -> None:
    folder = copy(hand_ensemble, tmp_path)
    onnx = folder / "members/other" / ONNX_FILE
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    _, meta = load_meta(folder)  # the primary's own files are intact
    with pytest.raises(ArtifactError, match=r"members/other/model.onnx: SHA-256 .* does not match"):
        load_members(folder, meta)


def test_a_swapped_member_fails_the_primary_check(
    hand_ensemble: Path, tiny_artifact: Path, tmp_path: Path
) -> None:
    folder = copy(hand_ensemble, tmp_path)
    shutil.copyfile(tiny_artifact / META_FILE, folder / "members/other" / META_FILE)
    with pytest.raises(ArtifactError, match=r"members/other/artifact.json: SHA-256 .* another model"):
        load_meta(folder)


def test_a_member_taken_out_of_its_ensemble_needs_its_weights(hand_ensemble: Path, tmp_path: Path) -> None:
    alone = Path(shutil.copytree(hand_ensemble / "members/other", tmp_path / "alone"))
    assert absent_allowed(alone) == frozenset()
    with pytest.raises(ArtifactError, match=r"weights\.pt is listed in artifact\.json but missing"):
        load_meta(alone)


def test_an_unhashed_member_or_a_path_outside_the_folder_is_refused(
    hand_ensemble: Path, tmp_path: Path
) -> None:
    folder = copy(hand_ensemble, tmp_path)
    data = json.loads((folder / META_FILE).read_text())
    del data["files"]["members/other/artifact.json"]
    (folder / META_FILE).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="members/other have no SHA-256"):
        load_meta(folder)
    data["ensemble"]["members"] = ["../elsewhere"]
    with pytest.raises(ArtifactError, match="valid: a relative sub-folder"):
        ArtifactMeta.from_dict(data)
    data["ensemble"]["members"] = ["members/a", "members/b", "members/c"]
    with pytest.raises(ArtifactError, match="at most 3 networks: the serving budget of issue #34"):
        ArtifactMeta.from_dict(data)


def test_an_artifact_without_the_field_is_written_and_read_as_before(
    tiny_artifact: Path, tmp_path: Path
) -> None:
    folder = copy(tiny_artifact, tmp_path)
    before = (folder / META_FILE).read_bytes()
    _, meta = load_meta(folder)
    assert meta.ensemble is None and "ensemble" not in meta.to_dict()
    write_meta(folder, meta)
    assert (folder / META_FILE).read_bytes() == before
    assert load_members(folder, meta) == []

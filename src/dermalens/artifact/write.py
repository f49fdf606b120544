"""The one way to change an artifact: its metadata, its files, a copy of it.

Why one module: an artifact's hashes must describe its files at every moment a reader may open
it. Each write here places the file atomically (`_io`) and `write_meta` re-hashes what is
present, so a command that refits one part (temperature, decision rule, gate, quantised graph)
cannot leave a stale hash behind. The fitting happens elsewhere (evaluation, training, models:
where its libraries are); it hands the result here. `tests/test_layers.py` fails on any module
outside this package that writes `artifact.json` or an artifact file itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from dermalens.artifact._io import place, write_json
from dermalens.artifact.meta import (
    FORMAT_VERSION,
    HASHED_FILES,
    META_FILE,
    OOD_FILE,
    WEIGHTS_FILE,
    ArtifactMeta,
    EnsembleSpec,
)
from dermalens.artifact.ood import OodGate
from dermalens.artifact.store import load_meta
from dermalens.core.hashing import file_sha256


def write_meta(folder: Path, meta: ArtifactMeta) -> Path:
    """Hash every artifact file present in `folder` into `meta.files` (an ensemble's members'
    artifact.json too: they pin the members it was fitted with), state the model's kind, and
    write `artifact.json`."""
    meta.kind = meta.model_kind.name
    meta.format_version = FORMAT_VERSION  # what this version writes (e.g. ood.npz's triangles)
    meta.files = {name: file_sha256(folder / name) for name in HASHED_FILES if (folder / name).is_file()}
    for member in meta.ensemble.members if meta.ensemble else []:
        key = meta.ensemble.member_file(member)  # type: ignore[union-attr]
        if not (folder / key).is_file():
            raise ValueError(f"{folder / key}: ensemble member missing; copy it in first (`copy_member`)")
        meta.files[key] = file_sha256(folder / key)
    return write_json(folder / META_FILE, meta.to_dict())


def put_file(folder: Path, name: str, writer: Callable[[Path], object]) -> Path:
    """Let `writer` write the artifact file `name` (given a temporary path) and move it into
    `folder` atomically. The metadata is not touched: call `write_meta` after the last file."""
    if name not in HASHED_FILES:
        raise ValueError(f"{name!r} is not an artifact file; valid: {', '.join(HASHED_FILES)}")
    folder.mkdir(parents=True, exist_ok=True)
    return place(folder / name, writer)


def remove_file(folder: Path, name: str) -> None:
    """Remove the artifact file `name` if present (then `write_meta`: its hash goes too)."""
    if name not in HASHED_FILES:
        raise ValueError(f"{name!r} is not an artifact file; valid: {', '.join(HASHED_FILES)}")
    (folder / name).unlink(missing_ok=True)


def save_gate(folder: Path, meta: ArtifactMeta, gate: OodGate) -> None:
    """Write ood.npz and record the gate's threshold and method in `meta` (then `write_meta`)."""
    put_file(folder, OOD_FILE, gate.save)
    meta.ood_threshold = gate.threshold
    meta.ood_method = gate.method


def update(folder: str | os.PathLike[str], **changes: Any) -> ArtifactMeta:
    """Set fields of an artifact's metadata and rewrite it with fresh hashes; an unknown field is an
    error that lists the valid ones."""
    path, meta = load_meta(folder, verify=False)
    unknown = sorted(set(changes) - set(meta.to_dict()))
    if unknown:
        raise ValueError(
            f"artifact.json has no field {', '.join(unknown)}; valid: {', '.join(meta.to_dict())}"
        )
    for key, value in changes.items():
        setattr(meta, key, value)
    write_meta(path, meta)
    return meta


def writable_copy(folder: Path, out: str | os.PathLike[str] | None, *, replace: bool = False) -> Path:
    """Where a command that changes an artifact writes: `folder` itself, or a new copy of it at
    `out`. An existing `out` is refused, never overwritten, unless `replace` (quantise's output
    folder, which is its own new artifact each time)."""
    if out is None:
        return folder
    _make_room(out, replace)
    return Path(shutil.copytree(folder, out))


def _make_room(out: str | os.PathLike[str], replace: bool) -> None:
    """Refuse an existing `out`, or remove it where `replace` allows."""
    if Path(out).exists():
        if not replace:
            raise ValueError(f"{out} exists; choose a new folder for the changed copy")
        shutil.rmtree(out)


def copy_member(source: Path, target: Path, *, gate: bool = True) -> Path:
    """Copy the artifact `source` into `target` (a member folder of an ensemble) without weights.pt:
    predicting never reads it, and each member's 13 MB would push models/ past its 60 MB budget.
    Without `gate` (an ensemble whose primary's gate alone refuses) ood.npz stays behind too: it
    would never run. artifact.json is copied byte for byte, so its hash is the source artifact's own
    and still lists both (`store.absent_allowed` lets a member lack them)."""
    if target.exists():
        raise ValueError(f"{target} exists; an ensemble member is copied into a new folder")
    left = {WEIGHTS_FILE} if gate else {WEIGHTS_FILE, OOD_FILE}
    return _copy_files(source, target, (META_FILE, *(n for n in HASHED_FILES if n not in left)))


def _copy_files(source: Path, target: Path, names: tuple[str, ...]) -> Path:
    """Copy the files `names` that `source` holds into the new folder `target`, each atomically."""
    target.mkdir(parents=True)
    for name in names:
        if (source / name).is_file():
            place(target / name, partial(shutil.copyfile, source / name))
    return target


def primary_copy(folder: Path, out: str | os.PathLike[str], *, replace: bool = False) -> Path:
    """A single-network artifact at `out` made of the ensemble artifact `folder`'s primary: its own
    files (no members/), its artifact.json without the ensemble and with a note in `training`,
    hashes rewritten. For commands that change one network (adapt, quantize): the ensemble's
    decision was fitted on all its networks' average, so a changed primary may not claim it; the
    primary's own threshold, decision rule and sets were fitted on it alone and still hold."""
    _, meta = load_meta(folder)  # verified: the copy's fresh hashes would hide a damaged source
    if meta.ensemble is None:
        raise ValueError(f"{folder} is one network already; copy it with `writable_copy`")
    _make_room(out, replace)
    target = _copy_files(folder, Path(out), HASHED_FILES)
    networks = len(meta.ensemble.members) + 1
    meta.training = {
        **meta.training,
        "from_ensemble": f"the primary network of the ensemble {meta.name} ({networks} networks); "
        "its other members and the decision fitted on their average are not in this artifact",
    }
    meta.ensemble = None
    write_meta(target, meta)
    return target


def write_ensemble(
    out: Path, primary: Path, members: list[Path], spec: EnsembleSpec, name: str | None = None
) -> Path:
    """A new ensemble artifact at `out`: a copy of `primary`, each of `members` copied into the
    folder `spec.members` names for it (`copy_member`; with gate rule "first", without ood.npz),
    then the primary's artifact.json with `spec` and `name` (default: the members' names joined by
    "+"), whose `files` pin every member's artifact.json (`write_meta`)."""
    if len(members) != len(spec.members):
        raise ValueError(f"{len(members)} member folders for {len(spec.members)} names in the ensemble")
    folder = writable_copy(primary, out)
    for source, place_at in zip(members, spec.members, strict=True):
        copy_member(source, folder / place_at, gate=spec.gate != "first")
    _, meta = load_meta(folder, verify=False)
    meta.ensemble = spec
    names = [meta.name] + [load_meta(folder / m, verify=False)[1].name for m in spec.members]
    meta.name = name or "+".join(names)
    write_meta(folder, meta)
    return folder

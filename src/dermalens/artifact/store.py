"""Finding, reading and verifying an artifact (the bundled model too); writing is `artifact.write`.

Loading checks every listed file's SHA-256, so a damaged or swapped file is a clear error instead
of silently wrong predictions.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from dermalens.artifact.meta import META_FILE, OOD_FILE, WEIGHTS_FILE, ArtifactError, ArtifactMeta
from dermalens.core.hashing import file_sha256

#: The bundled model as an installed wheel carries it (package data, copied there by setup.py from
#: models/default/ without weights.pt: serving reads the ONNX graph only).
PACKAGED_DIR = Path(str(resources.files("dermalens") / "_bundled"))
#: The bundled model in a source checkout or editable install: the one copy kept in git.
SOURCE_DIR = Path(__file__).resolve().parents[3] / "models" / "default"


def bundled_dir() -> Path:
    """The bundled default model: the packaged copy where there is one (an installed wheel), else
    the checkout's (a source tree or an editable install, whose package holds no copy)."""
    return PACKAGED_DIR if (PACKAGED_DIR / META_FILE).is_file() else SOURCE_DIR


BUNDLED_DIR = bundled_dir()


def resolve(path: str | os.PathLike[str] | None) -> Path:
    """The artifact folder for `path` (a folder, or a file inside one); None = the bundled model."""
    if path is None:
        path = os.environ.get("DERMALENS_MODEL") or BUNDLED_DIR
    folder = Path(path).expanduser()
    if folder.is_file():
        folder = folder.parent
    if not (folder / META_FILE).is_file():
        hint = " (the bundled model is missing: reinstall or pass --model)" if folder == BUNDLED_DIR else ""
        raise ArtifactError(f"{folder}: not a dermalens model artifact (no {META_FILE}){hint}")
    return folder


def load_meta(
    path: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> tuple[Path, ArtifactMeta]:
    """Read and check an artifact's metadata; with `verify`, check every listed file's SHA-256."""
    folder = resolve(path)
    try:
        meta = ArtifactMeta.from_dict(json.loads((folder / META_FILE).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, KeyError) as err:
        raise ArtifactError(f"{folder / META_FILE}: damaged or not an artifact file ({err})") from None
    if verify:
        spec = meta.ensemble
        unhashed = [m for m in spec.members if spec.member_file(m) not in meta.files] if spec else []
        if unhashed:  # a member no hash pins could be swapped for another model unnoticed
            raise ArtifactError(
                f"{folder}: ensemble member(s) {', '.join(unhashed)} have no SHA-256 in {META_FILE}; "
                "rebuild the ensemble with `dermalens artifact ensemble`"
            )
        for name, expected in meta.files.items():
            file = folder / name
            if not file.is_file():
                if name in absent_allowed(folder):
                    continue
                raise ArtifactError(f"{folder}: {name} is listed in {META_FILE} but missing")
            actual = file_sha256(file)
            if actual != expected:
                raise ArtifactError(
                    f"{file}: SHA-256 {actual[:12]}… does not match {expected[:12]}… in {META_FILE}; "
                    "the file is damaged or from another model"
                )
    return folder, meta


def load_members(folder: Path, meta: ArtifactMeta, *, verify: bool = True) -> list[tuple[Path, ArtifactMeta]]:
    """The other members of the ensemble `folder` stands for (none for one network), each read and,
    with `verify`, checked against its own hashes (its artifact.json is pinned by the primary's).
    A member is one network: a member that is itself an ensemble is an error."""
    members = [
        load_meta(folder / name, verify=verify) for name in (meta.ensemble.members if meta.ensemble else [])
    ]
    for path, member in members:
        if member.ensemble is not None:
            raise ArtifactError(
                f"{path}: an ensemble member is itself an ensemble; members are single networks"
            )
    return members


def ensemble_words(folder: Path, meta: ArtifactMeta) -> str:
    """How a command that works on one network names an ensemble artifact it was given ("FOLDER is
    an ensemble of N networks (its primary and members/a)"), before saying what it does with it."""
    members = meta.ensemble.members if meta.ensemble else []
    return f"{folder} is an ensemble of {len(members) + 1} networks (its primary and {', '.join(members)})"


def absent_allowed(folder: Path) -> frozenset[str]:
    """Listed files `folder` may lack: weights.pt in the wheel's packaged copy of the bundled model
    and in a member folder of an ensemble artifact (13 MB each that predicting never reads: the
    ensemble command copies members without it), and a member's ood.npz where the ensemble's gate
    rule is "first" (only the primary's gate refuses); every other artifact, and every file that
    is present, is checked in full."""
    owner = _owner(folder)
    if owner is None:
        return frozenset({WEIGHTS_FILE}) if folder.resolve() == PACKAGED_DIR.resolve() else frozenset()
    return (
        frozenset({WEIGHTS_FILE, OOD_FILE}) if owner[1].get("gate") == "first" else frozenset({WEIGHTS_FILE})
    )


def ensemble_owner(folder: Path) -> Path | None:
    """The ensemble artifact that lists `folder` as one of its members (it lies in a sub-folder of
    it, named in its `ensemble.members`), or None."""
    owner = _owner(folder)
    return None if owner is None else owner[0]


def _owner(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """`ensemble_owner` and the ensemble spec it stores (as read from its artifact.json)."""
    folder = folder.resolve()
    for owner in list(folder.parents)[:3]:
        file = owner / META_FILE
        if not file.is_file():
            continue
        try:
            spec = json.loads(file.read_text(encoding="utf-8")).get("ensemble") or {}
        except (json.JSONDecodeError, AttributeError):
            continue
        if folder.relative_to(owner).as_posix() in (spec.get("members") or []):
            return owner, spec
    return None

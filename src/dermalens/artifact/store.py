"""Finding, reading and verifying an artifact (the bundled model too); writing is `artifact.write`.

Loading checks every listed file's SHA-256, so a damaged or swapped file is a clear error instead
of silently wrong predictions.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from dermalens.artifact.meta import META_FILE, WEIGHTS_FILE, ArtifactError, ArtifactMeta
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


def absent_allowed(folder: Path) -> frozenset[str]:
    """Listed files `folder` may lack: weights.pt in the wheel's packaged copy of the bundled model
    only (13 MB that predicting never reads); every other artifact, and every file that is present,
    is checked in full."""
    return frozenset({WEIGHTS_FILE}) if folder.resolve() == PACKAGED_DIR.resolve() else frozenset()

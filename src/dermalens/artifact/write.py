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
from pathlib import Path
from typing import Any

from dermalens.artifact._io import place, write_json
from dermalens.artifact.meta import HASHED_FILES, META_FILE, OOD_FILE, ArtifactMeta
from dermalens.artifact.ood import OodGate
from dermalens.artifact.store import load_meta
from dermalens.core.hashing import file_sha256


def write_meta(folder: Path, meta: ArtifactMeta) -> Path:
    """Hash every artifact file present in `folder` into `meta.files`, state the model's kind, and
    write `artifact.json`."""
    meta.kind = meta.model_kind.name
    meta.files = {name: file_sha256(folder / name) for name in HASHED_FILES if (folder / name).is_file()}
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
    if Path(out).exists():
        if not replace:
            raise ValueError(f"{out} exists; choose a new folder for the changed copy")
        shutil.rmtree(out)
    return Path(shutil.copytree(folder, out))

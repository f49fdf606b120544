"""The low-level writer: every byte written into an artifact folder passes through here.

Private to the package (`artifact.write` is the API; `tests/test_layers.py` fails on an import of
this module from anywhere else). Why atomic: a reader (a server reloading, a verify) must see the
old file or the new one, never half of one, and a crash mid-write must not leave an artifact
whose hashes match nothing; so every file is written beside its place and renamed onto it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _temporary(path: Path) -> Path:
    """A sibling of `path` with the same suffix (writers such as numpy's add theirs otherwise)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def place(path: Path, writer: Callable[[Path], object]) -> Path:
    """Let `writer` write a temporary sibling of `path`, then rename it onto `path`."""
    tmp = _temporary(path)
    try:
        writer(tmp)
        if not tmp.is_file():
            raise RuntimeError(f"the writer of {path.name} wrote nothing")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """`data` as indented JSON at `path`, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return place(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

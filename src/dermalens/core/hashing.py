"""SHA-256 of files, in one place: artifact verification, duplicate detection and the archive's
resume key all read it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256 as hex, read in chunks by `hashlib.file_digest` (bounded memory, and
    the hashing releases the GIL, so threads hash files in parallel)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def bytes_sha256(data: bytes) -> str:
    """The SHA-256 of bytes already in memory (an upload, a file read for decoding)."""
    return hashlib.sha256(data).hexdigest()

"""Optional storage of uploaded images, only when the server is started with ``--store-images``.

Why by content hash: the same image uploaded twice is stored once, the file name cannot
collide or escape the folder (it is never taken from the client), and the log's sha256
column finds the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_EXTENSIONS = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "WEBP": ".webp",
    "DICOM": ".dcm",
}


def store_image(folder: Path, sha256: str, data: bytes, fmt: str | None) -> Path:
    """Write `data` as ``folder/ab/abcdef….ext`` (atomically; kept if already there); return the path."""
    target = folder / sha256[:2] / (sha256 + _EXTENSIONS.get(fmt or "", ".bin"))
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target

"""Content sniffing: what an upload really is, from its first bytes (never its name or MIME type).

Why here and not only in the decoder: the decoder can tell "not an image PIL accepts"
from "an image that fails to decode" only after trying; sniffing first lets the API
answer 415 (wrong kind of file, with its name: "got a PDF") before any inference,
and 422 for a file that claims to be an image but is damaged.
"""

from __future__ import annotations

from dermalens.core.decode import ACCEPTED_HELP

#: Accepted image formats: (name, test on the leading bytes).
_IMAGE_MAGIC: tuple[tuple[str, bytes, int], ...] = (
    ("JPEG", b"\xff\xd8\xff", 0),
    ("PNG", b"\x89PNG\r\n\x1a\n", 0),
    ("GIF", b"GIF87a", 0),
    ("GIF", b"GIF89a", 0),
    ("TIFF", b"II*\x00", 0),
    ("TIFF", b"MM\x00*", 0),
)

#: Sizes of the BMP info headers (BITMAPCOREHEADER ... BITMAPV5HEADER): "BM" alone is too weak a test.
_BMP_HEADERS = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

#: Recognised but refused formats, named in the error so a person knows what went wrong.
_OTHER_MAGIC: tuple[tuple[str, bytes], ...] = (
    ("PDF document", b"%PDF"),
    ("ZIP archive (or Office document)", b"PK\x03\x04"),
    ("empty ZIP archive", b"PK\x05\x06"),
    ("gzip archive", b"\x1f\x8b"),
    ("7-Zip archive", b"7z\xbc\xaf\x27\x1c"),
    ("RAR archive", b"Rar!"),
    ("Photoshop document", b"8BPS"),
    ("Windows icon", b"\x00\x00\x01\x00"),
    ("JPEG 2000 image", b"\x00\x00\x00\x0cjP  "),
    ("PostScript document", b"%!PS"),
    ("Windows executable", b"MZ"),
    ("ELF executable", b"\x7fELF"),
    ("OGG media", b"OggS"),
    ("Matroska/WebM video", b"\x1a\x45\xdf\xa3"),
    ("DICOM file", b"DICM"),
)


def sniff(data: bytes) -> str | None:
    """The accepted image format of `data` ("JPEG", "PNG", ...), or None when it is not one."""
    for name, magic, offset in _IMAGE_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM" and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_HEADERS:
        return "BMP"
    return None


def describe(data: bytes) -> str:
    """A short human name for non-image content, for 415 messages ("a PDF document")."""
    if data[128:132] == b"DICM":
        return "DICOM file"
    for name, magic in _OTHER_MAGIC:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("ascii", "replace").strip()
        if brand in ("heic", "heix", "hevc", "heim", "heis", "mif1", "msf1"):
            return "HEIC/HEIF image (convert it to JPEG)"
        if brand.startswith("avi"):
            return "AVIF image (convert it to JPEG or PNG)"
        return "MP4/QuickTime media"
    if data[:4] == b"RIFF":
        return "RIFF media (audio/video)"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "SVG drawing (vector images are not accepted)"
    if head.startswith((b"<!doctype html", b"<html")):
        return "HTML page"
    if head.startswith(b"<?xml"):
        return "XML document"
    if head[:1] in (b"{", b"[") and _is_text(data):
        return "JSON/text file"
    if _is_text(data):
        return "text file"
    return "unrecognised binary data"


def _is_text(data: bytes) -> bool:
    sample = data[:4096]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as err:
        # Only a multi-byte character cut by the end of a full sample is forgiven.
        return len(data) > len(sample) and err.start > len(sample) - 4
    return True


def unsupported_message(filename: str, data: bytes) -> str:
    """The 415 detail for one file: what it is and what is accepted."""
    return f"{filename}: {describe(data)} is not an accepted image; send {ACCEPTED_HELP}"

"""The one table of image formats: what may be opened, how each is recognised from its first
bytes (never a file's name or MIME type), the file suffixes folder readers take, and what a file
that is none of them is ("a PDF document"), for error messages.

Why content first: the decoder opens only the format the bytes say (PIL is never asked to guess),
so "not an image we accept" (415, with what it is) and "an image that is damaged" (422) are told
apart before any pixel is decoded, by the same code for the server, the CLI and the Python API.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    #: PIL's name of the format (`Image.open(..., formats=...)`).
    name: str
    #: File suffixes that folder readers and the archive treat as this format (lower case).
    suffixes: tuple[str, ...]
    #: Leading bytes that identify it (BMP and WebP have their own tests in `sniff`).
    signatures: tuple[bytes, ...] = ()


FORMATS = (
    ImageFormat("JPEG", (".jpg", ".jpeg"), (b"\xff\xd8\xff",)),  # MPO (multi-picture JPEG) too
    ImageFormat("PNG", (".png",), (b"\x89PNG\r\n\x1a\n",)),
    ImageFormat("BMP", (".bmp",)),
    ImageFormat("TIFF", (".tif", ".tiff"), (b"II*\x00", b"MM\x00*")),
    ImageFormat("WEBP", (".webp",)),
    ImageFormat("GIF", (), (b"GIF87a", b"GIF89a")),  # accepted as an upload; no dataset has GIFs
    # DICOM (VL Photographic / dermoscopic photography objects): "DICM" after a 128-byte preamble;
    # decoded by `core.dicom` (pydicom), not PIL.
    ImageFormat("DICOM", (".dcm", ".dicom")),
)
#: Formats the decoder opens; anything else (PDF, PSD, EPS...) is refused by content, not name.
ACCEPTED_FORMATS = tuple(f.name for f in FORMATS)
ACCEPTED_HELP = "JPEG, PNG, BMP, TIFF, WebP or GIF images, or DICOM files (.dcm)"
#: File suffixes that folder readers and the archive treat as images (lower case).
IMAGE_SUFFIXES = tuple(s for f in FORMATS for s in f.suffixes)
#: Bytes read from the start of a file to identify it (and to describe what it is when it is not one).
HEAD_BYTES = 8192

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
)


@dataclass(frozen=True)
class Sniffed:
    """Image bytes whose format was already read from their content (the server checks every upload
    before it reaches the model): the decoder opens them as that format without reading it again."""

    data: bytes
    format: str


def sniff(data: bytes) -> str | None:
    """The accepted image format of `data` ("JPEG", "PNG", ...), or None when it is not one."""
    for fmt in FORMATS:
        if any(data.startswith(magic) for magic in fmt.signatures):
            return fmt.name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[128:132] == b"DICM":
        return "DICOM"
    if data[:2] == b"BM" and len(data) >= 18 and int.from_bytes(data[14:18], "little") in _BMP_HEADERS:
        return "BMP"
    return None


def describe(data: bytes) -> str:
    """A short human name for non-image content, for 415 messages ("a PDF document")."""
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

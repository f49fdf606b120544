"""Upload payloads for the server tests: good images in many encodings, and bad input of many kinds."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image

from conftest import lesion_like


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def lesion(seed: int = 0, size: tuple[int, int] = (160, 120)) -> Image.Image:
    return Image.fromarray(lesion_like(seed, size))


def jpeg(seed: int = 0, size: tuple[int, int] = (160, 120)) -> bytes:
    return encode(lesion(seed, size), "JPEG", quality=90)


def png(seed: int = 0, size: tuple[int, int] = (160, 120)) -> bytes:
    return encode(lesion(seed, size), "PNG")


def png16() -> bytes:
    gray = (np.asarray(lesion(1).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return encode(Image.fromarray(gray), "PNG")  # uint16 → mode I;16


def cmyk_jpeg() -> bytes:
    return encode(lesion(2).convert("CMYK"), "JPEG")


def palette_png_transparent() -> bytes:
    image = lesion(3).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encode(image, "PNG", transparency=0)


def animated_gif() -> bytes:
    frames = [lesion(s).convert("P", palette=Image.Palette.ADAPTIVE) for s in (4, 5, 6)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    return encode(lesion(7, (120, 160)), "JPEG", exif=exif.tobytes())


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` (a decompression bomb's calling card), with no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def png_bomb(side: int = 20000) -> bytes:
    """A real, valid 1-bit PNG of side×side black pixels: ~50 kB that would decode to 400 megapixels."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is patched to claim a huge size."""
    data = bytearray(jpeg(8, (64, 48)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def png_bad_idat() -> bytes:
    """Valid signature and header, pixel data that is not zlib."""
    ihdr = struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0)
    garbage = bytes(range(256)) * 8
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", garbage)
        + png_chunk(b"IEND", b"")
    )


def zip_file() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lesion.jpg", jpeg(9))
    return buffer.getvalue()


def tiny_png(width: int, height: int) -> bytes:
    return encode(Image.new("RGB", (width, height), (200, 150, 130)), "PNG")


#: Images the server must accept: (file name, bytes factory).
GOOD = {
    "plain.jpg": lambda: jpeg(10),
    "plain.png": lambda: png(11),
    "sixteen_bit.png": png16,
    "cmyk.jpg": cmyk_jpeg,
    "palette_transparent.png": palette_png_transparent,
    "animated.gif": animated_gif,
    "exif_rotated.jpg": exif_rotated_jpeg,
    "grayscale.jpg": lambda: encode(lesion(12).convert("L"), "JPEG"),
    "rgba.png": lambda: encode(lesion(13).convert("RGBA"), "PNG"),
    "bitmap.bmp": lambda: encode(lesion(14), "BMP"),
    "scan.tiff": lambda: encode(lesion(15), "TIFF"),
    "photo.webp": lambda: encode(lesion(16), "WEBP"),
    "really_a_png.jpg": lambda: png(17),
    "no_extension": lambda: jpeg(18),
    "日本語の名前.jpg": lambda: jpeg(19),
    "smallest_8x8.png": lambda: tiny_png(8, 8),
    "panorama.jpg": lambda: jpeg(20, (2000, 60)),
}

"""DICOM in: hospitals keep dermoscopy as DICOM objects (VL Photographic Image, "dermoscopic
photography"), so a `.dcm` file is read wherever an image is read, with its patient data.

Why pydicom, with pylibjpeg: pydicom reads the file and decodes uncompressed and RLE pixel data
itself; the JPEG transfer syntaxes (baseline, extended, lossless) need the codecs its
documentation names (pylibjpeg + pylibjpeg-libjpeg, or Pillow for baseline). A transfer syntax no
installed codec decodes is refused with its name and the ones this install reads, never guessed at.
Only the first frame of a multi-frame object is read, as for multi-frame TIFF and GIF.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.core.formats import Sniffed
from dermalens.core.metadata import PatientMetadata


class DicomError(ValueError):
    """A DICOM file that holds no image this install can read; `kind` as `ImageDecodeError`'s."""

    def __init__(self, message: str, kind: str = "unsupported") -> None:
        super().__init__(message)
        self.kind = kind


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise DicomError(
            "DICOM files need pydicom: pip install 'dermalens[serve]' (or pydicom pylibjpeg pylibjpeg-libjpeg)"
        ) from None
    return pydicom


def read_dataset(source: str | os.PathLike[str] | bytes | Sniffed, *, pixels: bool = True) -> Any:
    """The parsed DICOM dataset (`pixels=False`: the header only, for its patient data)."""
    pydicom = _pydicom()
    if isinstance(source, Sniffed):
        source = source.data
    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
    try:
        return pydicom.dcmread(stream, stop_before_pixels=not pixels)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError, KeyError) as err:
        raise DicomError(f"damaged DICOM file ({err})", "corrupt") from None


def accepted_syntaxes() -> list[str]:
    """Names of the transfer syntaxes this install decodes (its codecs present)."""
    from pydicom.pixels import decoders

    found = (getattr(decoders, name) for name in dir(decoders) if name.endswith("Decoder"))
    return sorted(d.UID.name for d in found if getattr(d, "is_available", False))


def _check_syntax(dataset: Any) -> None:
    """Refuse, by name, a transfer syntax that no installed codec decodes (before any decoding)."""
    from pydicom.pixels import get_decoder

    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None:
        return  # no file meta: pydicom reads it as implicit little endian
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise DicomError(
            f"DICOM transfer syntax {getattr(syntax, 'name', syntax)} ({syntax}) cannot be decoded here; "
            "accepted: " + ", ".join(accepted_syntaxes())
        )


def dicom_pixels(dataset: Any, max_pixels: int) -> np.ndarray:
    """The first frame of `dataset`'s pixel data as uint8, RGB (H×W×3) or grey (H×W)."""
    if "PixelData" not in dataset and "FloatPixelData" not in dataset:
        raise DicomError("DICOM file without pixel data (no image to classify: a report or structured data)")
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    if rows * columns > max_pixels:
        raise DicomError(
            f"image is {columns}×{rows} = {rows * columns:,} pixels; limit {max_pixels:,}", "too_large"
        )
    _check_syntax(dataset)
    try:
        array = dataset.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError, KeyError) as err:
        raise DicomError(f"DICOM pixel data cannot be read ({err})", "corrupt") from None
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        array = array[0]
    array = np.asarray(array)
    if array.dtype != np.uint8:  # 12- or 16-bit samples: scaled by their stored depth, not by 257
        peak = float(2 ** int(dataset.get("BitsStored", 16) or 16) - 1)
        array = (np.clip(array.astype(np.float64), 0, peak) * (255.0 / peak)).round().astype(np.uint8)
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        array = 255 - array  # MONOCHROME1: 0 is white
    return array


def _age_years(text: str) -> float | None:
    """DICOM's Age String ("045Y", "006M", "010W", "003D") in years; None when absent or odd."""
    units = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
    text = text.strip().upper()
    if len(text) != 4 or not text[:3].isdigit() or text[3] not in units:
        return None
    return round(int(text[:3]) * units[text[3]], 2)


def dicom_patient(dataset: Any) -> PatientMetadata:
    """Age, sex and body site from the standard tags (Patient's Age, Patient's Sex, the Anatomic
    Region Sequence's code meaning or Body Part Examined); what is absent or odd is unknown."""
    region = dataset.get("AnatomicRegionSequence")
    site = region[0].get("CodeMeaning") if region else None
    return PatientMetadata.parse(
        _age_years(str(dataset.get("PatientAge", "") or "")),
        str(dataset.get("PatientSex", "") or "") or None,
        site or str(dataset.get("BodyPartExamined", "") or "") or None,
        strict=False,
    )


def is_dicom(source: object) -> bool:
    """True for DICOM bytes or a file that is DICOM (by content: "DICM" after the 128-byte preamble)."""
    if isinstance(source, Sniffed):
        return source.format == "DICOM"
    if isinstance(source, bytes):
        return source[128:132] == b"DICM"
    if isinstance(source, str | os.PathLike) and Path(source).is_file():
        with open(source, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    return False


def with_dicom_tags(source: object, patient: PatientMetadata) -> PatientMetadata:
    """`patient` with its unknown fields filled from a DICOM input's tags (given values win);
    any other input, or a DICOM file that cannot be read, leaves it as it is."""
    if not is_dicom(source):
        return patient
    try:
        tags = dicom_patient(read_dataset(source, pixels=False))  # type: ignore[arg-type]
    except DicomError:
        return patient  # the decoder reports the file's fault, once
    return PatientMetadata(
        patient.age if patient.age is not None else tags.age,
        patient.sex or tags.sex,
        patient.site or tags.site,
    )

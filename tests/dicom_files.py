"""Real DICOM files for the tests, written with pydicom from the shared dermoscopy images: a VL
Photographic Image (the IOD of dermoscopic photography) with the patient tags a hospital fills."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    HTJ2K,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

#: VL Photographic Image Storage.
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"


def write_dicom(
    target: Path,
    jpeg: Path,
    *,
    syntax: str = "jpeg",
    pixels: bool = True,
    age: str | None = "063Y",
    sex: str | None = "F",
    site: str | None = "Back",
) -> Path:
    """`jpeg` as a DICOM file: "jpeg" keeps its own JPEG bytes (JPEG Baseline, as cameras write),
    "raw" stores its decoded RGB samples (Explicit VR Little Endian), "htj2k" claims a syntax with no
    codec here; `pixels=False` leaves the pixel data out."""
    rgb = np.asarray(Image.open(jpeg).convert("RGB"))
    uid = {"jpeg": JPEGBaseline8Bit, "raw": ExplicitVRLittleEndian, "htj2k": HTJ2K}[syntax]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = VL_PHOTOGRAPHIC
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = uid
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = VL_PHOTOGRAPHIC, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "XC", "Test^Patient", "T1"
    if age:
        ds.PatientAge = age
    if sex:
        ds.PatientSex = sex
    if site:
        region = Dataset()
        region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "T-D2100", "SRT", site
        ds.AnatomicRegionSequence = [region]
    if pixels:
        ds.Rows, ds.Columns = rgb.shape[:2]
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        if syntax == "raw":
            ds.PhotometricInterpretation = "RGB"
            ds.PixelData = rgb.tobytes()
        else:
            ds.PhotometricInterpretation = "YBR_FULL_422"
            ds.PixelData = encapsulate([jpeg.read_bytes()])
    ds.save_as(target, enforce_file_format=True)
    return target

"""DICOM in: real DICOM files written with pydicom from the shared images decode to the same pixels
as the JPEG they hold, give the patient's age, sex and site, and are refused clearly when they hold
no pixel data or a transfer syntax no installed codec decodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dermalens.core.decode import ImageDecodeError, decode_image, identify, probe_image
from dermalens.core.dicom import with_dicom_tags
from dermalens.core.metadata import PatientMetadata
from dicom_files import write_dicom

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def jpeg(ham10000: Path) -> Path:
    return ham10000 / "images" / "ISIC_0024306.jpg"


def test_dicom_decodes_to_the_images_pixels(jpeg: Path, tmp_path: Path) -> None:
    original = np.asarray(Image.open(jpeg).convert("RGB")).astype(int)
    raw = decode_image(write_dicom(tmp_path / "raw.dcm", jpeg, syntax="raw"))
    np.testing.assert_array_equal(raw, original)
    compressed = write_dicom(tmp_path / "jpeg.dcm", jpeg, syntax="jpeg")
    for source in (compressed, compressed.read_bytes()):
        pixels = decode_image(source).astype(int)
        assert pixels.shape == original.shape and np.abs(pixels - original).mean() < 2  # YCbCr rounding
    assert identify(compressed.read_bytes()) == "DICOM"
    assert probe_image(compressed) == (original.shape[1], original.shape[0])


def test_patient_tags_fill_what_was_not_given(jpeg: Path, tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "p.dcm", jpeg, age="045Y", sex="M", site="Lower extremity")
    assert with_dicom_tags(path, PatientMetadata()) == PatientMetadata(45.0, "male", "lower extremity")
    given = PatientMetadata(age=50.0)
    assert with_dicom_tags(path, given) == PatientMetadata(50.0, "male", "lower extremity")
    bare = write_dicom(tmp_path / "bare.dcm", jpeg, age=None, sex=None, site=None)
    assert with_dicom_tags(bare, PatientMetadata()) == PatientMetadata()
    months = write_dicom(tmp_path / "m.dcm", jpeg, age="018M", sex="O", site="Somewhere odd")
    assert with_dicom_tags(months, PatientMetadata()) == PatientMetadata(1.5, None, None)


def test_dicom_without_pixels_or_with_an_unknown_syntax_is_refused(jpeg: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="without pixel data") as empty:
        decode_image(write_dicom(tmp_path / "report.dcm", jpeg, pixels=False))
    assert empty.value.kind == "unsupported" and "DICOM files" in empty.value.detail()
    with pytest.raises(
        ImageDecodeError, match=r"High-Throughput JPEG 2000.*accepted: .*JPEG Baseline"
    ) as odd:
        decode_image(write_dicom(tmp_path / "htj2k.dcm", jpeg, syntax="htj2k"))
    assert odd.value.kind == "unsupported"
    damaged = (tmp_path / "jpeg.dcm", write_dicom(tmp_path / "jpeg.dcm", jpeg).read_bytes()[:400])
    with pytest.raises(ImageDecodeError):
        decode_image(damaged[1])


def test_sniffed_bytes_are_decoded_as_the_format_the_upload_check_read(
    jpeg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server sniffs each upload once (`server.uploads.check_content`) and hands the engine a
    `Sniffed`: it decodes to the same pixels and DICOM tags without reading the format again."""
    import dermalens.core.decode as decode
    from dermalens.core.formats import Sniffed

    dicom = write_dicom(tmp_path / "s.dcm", jpeg, age="045Y", sex="M", site="Lower extremity").read_bytes()
    plain = [decode_image(jpeg.read_bytes()), decode_image(dicom)]
    sniffed = [Sniffed(jpeg.read_bytes(), identify(jpeg.read_bytes())), Sniffed(dicom, identify(dicom))]

    def no_second_sniff(data: bytes) -> str:
        raise AssertionError("sniffed again")

    monkeypatch.setattr(decode, "identify", no_second_sniff)
    for expected, source in zip(plain, sniffed, strict=True):
        np.testing.assert_array_equal(decode_image(source), expected)
    assert with_dicom_tags(sniffed[1], PatientMetadata()) == PatientMetadata(45.0, "male", "lower extremity")
    assert with_dicom_tags(sniffed[0], PatientMetadata()) == PatientMetadata()

"""The one input record: an image to train on, evaluate or score, with what is known about it.

Every reader yields it (HAM10000, ISIC, Derm7pt, a folder per class, a path,label CSV) and so does
every source of an archive job (a folder walk, a manifest, a file named on the command line), so
"an input image" is described once. It is torch-free: the archive and the server use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from dermalens.core.metadata import PatientMetadata, site_text
from dermalens.core.taxonomy import binary_label, is_dx_code

#: The label's type: ``str`` in a dataset (every record has its truth), ``str | None`` for images
#: to score (`archive.sources.Item`), where the truth is often unknown. One type, so that a reader
#: of a training set gets a checked ``str`` without a second record class.
LabelT = TypeVar("LabelT", bound=str | None)


@dataclass(frozen=True)
class Record(Generic[LabelT]):
    """One input image, whatever the layout it came from.

    `label` is a dx code (``mel``...), a binary-only label (``benign``/``malignant``), or None
    when the truth is unknown (an image to score). `group` is the lesion (or patient) id that
    keeps every photo of one lesion in one split; readers fall back to the image id when the
    source has none. Patient fields are ``None`` when unknown: they are never imputed. `age` and
    `sex` are parsed values; `site` keeps the dataset's own spelling (`site_text`) for the data
    summary and per-site evaluation, and `patient` gives the model's site group.
    """

    path: Path
    label: LabelT
    group: str = ""
    image_id: str = ""
    age: float | None = None
    sex: str | None = None
    site: str | None = None
    #: Where the image comes from (``ham10000``, ``bcn``, ``msk``, ``isic-archive``, ``derm7pt``, or
    #: the reader's format for a user's folder): splits stratify by it and evaluation reports by it.
    source: str = ""
    #: The image's bytes when it came in memory (an upload); `path` is then its name.
    content: bytes | None = None

    @property
    def binary(self) -> str:
        """'benign' or 'malignant'; a ValueError for an image without a label."""
        if self.label is None:
            raise ValueError(f"{self.path}: no label, so no benign/malignant truth")
        return binary_label(self.label)

    @property
    def patient(self) -> PatientMetadata:
        """Age, sex and body-site group for metadata-fusion models, read by the one parser.

        ``dx_type`` is deliberately never read: it reveals how the label was obtained."""
        return PatientMetadata.parse(self.age, self.sex, self.site, strict=False)

    @property
    def has_dx(self) -> bool:
        """True when the label is a diagnosis, not only benign/malignant."""
        return self.label is not None and is_dx_code(self.label)


def patient_fields(row: Mapping[str, Any], *, strict: bool) -> dict[str, Any]:
    """The ``age``, ``sex`` and ``site`` keyword arguments of a `Record`, from a row's raw values,
    parsed by `PatientMetadata.parse` in the mode the caller's input needs (see there: strict for
    what a user gives, lenient for a public dataset's spellings)."""
    patient = PatientMetadata.parse(row.get("age"), row.get("sex"), row.get("site"), strict=strict)
    return {"age": patient.age, "sex": patient.sex, "site": site_text(row.get("site"))}


def with_patient(record: Record[LabelT], patient: PatientMetadata) -> Record[LabelT]:
    """A copy of `record` carrying `patient` (already parsed), e.g. a `--metadata` table's row."""
    return replace(record, age=patient.age, sex=patient.sex, site=patient.site)

"""Patient metadata (age, sex, body site) and the vector a metadata-fusion model reads.

Missing values are explicit, never imputed: every field has a "missing" indicator that an
absent value sets (age 0 + missing=1, no sex one-hot + missing=1, ...). A fusion model is
trained with fields randomly masked to missing, so "unknown" is a state it has seen, and
the predictor, CLI, API and web page may leave any field out.

The encoding (fields, age scale, vocabularies) is stored in the model artifact
(`ArtifactMeta.metadata_encoding`) and rebuilt from there, so the vector layout is
defined once. ``dx_type`` (how the diagnosis was confirmed) is never an input: it leaks
the label (histopathology is done on suspicious lesions). This module never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic.dataclasses import dataclass as pydantic_dataclass

from dermalens.core.schema import STRICT, load
from dermalens.core.taxonomy import SEXES, SITE_GROUPS, site_group

#: Fields a fusion model can read, in vector order.
METADATA_FIELDS = ("age", "sex", "site")
MAX_AGE = 120.0
_SEX_ALIASES = {
    "m": "male",
    "male": "male",
    "man": "male",
    "f": "female",
    "female": "female",
    "woman": "female",
}
_UNKNOWN = ("", "unknown", "nan", "none", "na", "n/a", "?")
#: Every spelling `parse_sex` accepts (lower case; the first is "unknown"): the API schema lists these.
SEX_SPELLINGS = (*_UNKNOWN, *_SEX_ALIASES)


def parse_age(value: object) -> float | None:
    """Years as a float, None when empty/unknown; ValueError for anything else."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _UNKNOWN):
        return None
    try:
        age = float(str(value).strip())
    except ValueError:
        raise ValueError(
            f"age {value!r} is not a number; give years between 0 and {MAX_AGE:.0f}, or leave it empty"
        ) from None
    if age != age:  # NaN from a float column = unknown
        return None
    if not 0 <= age <= MAX_AGE:
        raise ValueError(
            f"age {value!r} is out of range; give years between 0 and {MAX_AGE:.0f}, or leave it empty"
        )
    return age


def site_text(value: object) -> str | None:
    """A body site as its dataset spells it, in lower case with single spaces (``back``, ``anterior
    torso``), or None when empty/unknown. Records keep this finer spelling for the data summary and
    per-site evaluation; a model reads its `SITE_GROUPS` entry (`PatientMetadata.site`)."""
    text = " ".join(str(value).strip().lower().replace("_", " ").split()) if value is not None else ""
    return None if text in _UNKNOWN else text


def parse_sex(value: object) -> str | None:
    """'male'/'female', None when empty/unknown; ValueError for anything else."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _UNKNOWN:
        return None
    if text not in _SEX_ALIASES:
        raise ValueError(f"sex {value!r} is not understood; accepted: male, female, m, f (or empty)")
    return _SEX_ALIASES[text]


@dataclass(frozen=True)
class PatientMetadata:
    """One image's patient data; None = unknown. `site` is a `SITE_GROUPS` entry."""

    age: float | None = None
    sex: str | None = None
    site: str | None = None

    @classmethod
    def parse(
        cls, age: object = None, sex: object = None, site: object = None, *, strict: bool = True
    ) -> PatientMetadata:
        """The one parser of patient data, with two modes, because two kinds of input reach it.

        ``strict`` (the default) is for what a person types or sends (CLI options, API, web form, a
        prediction manifest, a ``--metadata`` table): a value that does not parse is a `ValueError`
        saying what is accepted, because a typo silently read as "unknown" would change a
        fusion model's answer without anyone noticing. ``strict=False`` is for the public datasets
        a training reader reads (HAM10000, ISIC, a DICOM's tags): their odd spellings are data, not
        mistakes of the user, so a value that does not parse becomes unknown, field by field,
        instead of stopping a 25,000-image read. Both modes accept exactly the same spellings.
        """
        if strict:
            return cls(parse_age(age), parse_sex(sex), site_group(site))

        def safe(parser: Callable[[object], Any], raw: object) -> Any:
            try:
                return parser(raw)
            except ValueError:
                return None

        return cls(safe(parse_age, age), safe(parse_sex, sex), safe(site_group, site))

    @classmethod
    def coerce(cls, value: PatientMetadata | Mapping[str, Any] | None) -> PatientMetadata:
        """From None, a PatientMetadata, or a mapping with any of the keys age/sex/site."""
        if value is None:
            return cls()
        if isinstance(value, PatientMetadata):
            return value
        unknown = set(value) - set(METADATA_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown metadata keys {sorted(unknown)}; accepted: {', '.join(METADATA_FIELDS)}"
            )
        return cls.parse(value.get("age"), value.get("sex"), value.get("site"))

    @property
    def is_empty(self) -> bool:
        return self.age is None and self.sex is None and self.site is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def masked(self, drop: Sequence[bool]) -> PatientMetadata:
        """A copy with the fields flagged in `drop` (age, sex, site order) set to unknown."""
        values = {f: None if d else getattr(self, f) for f, d in zip(METADATA_FIELDS, drop, strict=True)}
        return PatientMetadata(**values)


@pydantic_dataclass(config=STRICT)
class MetadataEncoding:
    """Layout of the metadata vector: ``[age/scale, age missing, sex one-hot…, sex missing,
    site one-hot…, site missing]`` for the fields listed."""

    fields: list[str] = field(default_factory=lambda: list(METADATA_FIELDS))
    sexes: list[str] = field(default_factory=lambda: list(SEXES))
    sites: list[str] = field(default_factory=lambda: list(SITE_GROUPS))
    age_scale: float = 100.0

    @property
    def dim(self) -> int:
        sizes = {"age": 2, "sex": len(self.sexes) + 1, "site": len(self.sites) + 1}
        return sum(sizes[f] for f in self.fields)

    def encode_one(self, item: PatientMetadata) -> np.ndarray:
        parts: list[float] = []
        for name in self.fields:
            if name == "age":
                parts += [0.0, 1.0] if item.age is None else [item.age / self.age_scale, 0.0]
            else:
                vocab = self.sexes if name == "sex" else self.sites
                value = getattr(item, name)
                parts += [float(value == v) for v in vocab] + [float(value is None or value not in vocab)]
        return np.asarray(parts, dtype=np.float32)

    def encode(self, items: Sequence[PatientMetadata | Mapping[str, Any] | None]) -> np.ndarray:
        """[N, dim] float32; None or {} rows are all-unknown."""
        rows = [self.encode_one(PatientMetadata.coerce(i)) for i in items]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetadataEncoding:
        unknown = set(data.get("fields", [])) - set(METADATA_FIELDS)
        if unknown:
            raise ValueError(
                f"metadata fields {sorted(unknown)} are not known; valid: {', '.join(METADATA_FIELDS)}"
            )
        return load(cls, dict(data), "metadata_encoding")


#: What callers may pass for one image's patient data.
MetadataInput = PatientMetadata | Mapping[str, Any] | None


def per_image(metadata: MetadataInput | Sequence[MetadataInput], n: int) -> list[PatientMetadata]:
    """One validated `PatientMetadata` per image: a list/tuple gives one per image, a single value
    (or None: all unknown) applies to every image."""
    if isinstance(metadata, list | tuple):
        if len(metadata) != n:
            raise ValueError(f"metadata has {len(metadata)} entries for {n} images; give one per image")
        return [PatientMetadata.coerce(m) for m in metadata]
    return [PatientMetadata.coerce(metadata)] * n  # type: ignore[arg-type]

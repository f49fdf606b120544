"""The label taxonomy: the only place in dermalens where diagnoses are listed.

Everything else (readers, training heads, the model artifact, the predictor, the
server and its translations) reads `DX_CODES`, `MALIGNANT` and `normalize_label`
from here. A model artifact stores the class order it was trained with, so a
served model never depends on this module's order staying the same; but new
models are always built in this order.

Why aliases: public skin-lesion data arrives with many spellings of the same
diagnosis (ISIC one-hot headers ``MEL``/``NV``, clinic folders ``MM``/``SK``,
binary folders ``benign``/``malignant``). Normalising them in one function keeps
readers from each inventing their own mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Diagnosis:
    """One diagnostic class: its code, a readable name, and whether it is malignant."""

    code: str
    name: str
    malignant: bool


# HAM10000's seven classes, in the alphabetical order of their codes (the order
# HAM10000/ISIC 2018 tooling uses), then ISIC 2019's extra classes.
_HAM: Final = (
    Diagnosis("akiec", "Actinic keratosis / Bowen's disease (intraepithelial carcinoma)", True),
    Diagnosis("bcc", "Basal cell carcinoma", True),
    Diagnosis("bkl", "Benign keratosis-like lesion (solar lentigo, seborrheic keratosis, LPLK)", False),
    Diagnosis("df", "Dermatofibroma", False),
    Diagnosis("mel", "Melanoma", True),
    Diagnosis("nv", "Melanocytic nevus", False),
    Diagnosis("vasc", "Vascular lesion", False),
)
_ISIC2019_EXTRA: Final = (
    Diagnosis("scc", "Squamous cell carcinoma", True),
    Diagnosis("unk", "Unknown / none of the others", False),
)

DIAGNOSES: Final[dict[str, Diagnosis]] = {d.code: d for d in (*_HAM, *_ISIC2019_EXTRA)}
#: The 7 HAM10000 classes: the default output order of every 7-class model.
DX_CODES: Final[tuple[str, ...]] = tuple(d.code for d in _HAM)
#: Every diagnosis code a reader accepts (HAM10000 + ISIC 2019's scc and unk).
ALL_CODES: Final[tuple[str, ...]] = tuple(DIAGNOSES)
#: Malignant codes among all known diagnoses.
MALIGNANT: Final[frozenset[str]] = frozenset(d.code for d in DIAGNOSES.values() if d.malignant)

#: The one mapping from codes outside HAM10000's seven onto them, used wherever a model or a
#: dataset with ISIC 2019's extra classes meets the 7-class taxonomy (training targets of a
#: 7-class head, 7-class metrics of a model that has SCC). SCC → akiec: HAM10000's akiec
#: already holds Bowen's disease (SCC in situ); both are malignant keratinocyte lesions, so the
#: benign/malignant label never changes. ``unk`` has no 7-class equivalent and maps to nothing.
HAM_FOLD: Final[dict[str, str]] = {"scc": "akiec"}

BENIGN: Final = "benign"
MALIGNANT_LABEL: Final = "malignant"
#: Binary-only labels, for data that says only benign/malignant.
BINARY_LABELS: Final[tuple[str, str]] = (BENIGN, MALIGNANT_LABEL)

_ALIASES: Final[dict[str, str]] = {
    # melanoma
    "mel": "mel",
    "mm": "mel",
    "melanoma": "mel",
    "malignant melanoma": "mel",
    # nevus
    "nv": "nv",
    "nevus": "nv",
    "naevus": "nv",
    "nevi": "nv",
    "common nevus": "nv",
    "atypical nevus": "nv",
    "melanocytic nevus": "nv",
    "melanocytic nevi": "nv",
    # basal cell carcinoma
    "bcc": "bcc",
    "basal cell carcinoma": "bcc",
    # actinic keratosis / Bowen's disease
    "ak": "akiec",
    "akiec": "akiec",
    "actinic keratosis": "akiec",
    "actinic keratoses": "akiec",
    "bowen": "akiec",
    "bowen's disease": "akiec",
    "bowens": "akiec",
    "bowen病": "akiec",
    # benign keratosis
    "sk": "bkl",
    "bkl": "bkl",
    "seborrheic keratosis": "bkl",
    "seborrhoeic keratosis": "bkl",
    "benign keratosis": "bkl",
    "solar lentigo": "bkl",
    "lentigo": "bkl",
    # others
    "df": "df",
    "dermatofibroma": "df",
    "vasc": "vasc",
    "vascular": "vasc",
    "vascular lesion": "vasc",
    "scc": "scc",
    "squamous cell carcinoma": "scc",
    "unk": "unk",
    "unknown": "unk",
    # binary-only labels
    "benign": BENIGN,
    "0": BENIGN,
    "malignant": MALIGNANT_LABEL,
    "1": MALIGNANT_LABEL,
}


class UnknownLabelError(ValueError):
    """A label that the taxonomy does not know."""


def valid_labels() -> list[str]:
    """Every spelling `normalize_label` accepts (for error messages and docs)."""
    return sorted(_ALIASES)


def normalize_label(label: object) -> str:
    """Map any known spelling of a label to its dx code, or to 'benign'/'malignant'.

    Matching ignores case, surrounding space, and ``_``/``-`` used as spaces.

    >>> normalize_label("MM"), normalize_label("Seborrheic_Keratosis"), normalize_label(1)
    ('mel', 'bkl', 'malignant')
    """
    text = str(label).strip().lower().replace("_", " ").replace("-", " ")
    text = " ".join(text.split())
    if text.endswith(".0") and text[:-2].isdigit():  # "1.0" from a float column
        text = text[:-2]
    try:
        return _ALIASES[text]
    except KeyError:
        raise UnknownLabelError(
            f"unknown label {label!r}; valid labels (case-insensitive): {', '.join(valid_labels())}"
        ) from None


def is_malignant(label: str) -> bool:
    """True for a malignant dx code or the binary label 'malignant'."""
    code = normalize_label(label)
    return code == MALIGNANT_LABEL or code in MALIGNANT


def binary_label(label: str) -> str:
    """'benign' or 'malignant' for any known label."""
    return MALIGNANT_LABEL if is_malignant(label) else BENIGN


def to_ham(label: str) -> str | None:
    """The HAM10000 7-class code for a dx code (`HAM_FOLD` applied); None when it has none."""
    code = HAM_FOLD.get(label, label)
    return code if code in DX_CODES else None


def is_dx_code(label: str) -> bool:
    """True when the label names a diagnosis (not only benign/malignant)."""
    return label in DIAGNOSES


def label_from_filename(filename: str) -> str | None:
    """The label a file name carries, e.g. ``sample_3_malignant_mel.jpg`` → ``mel``; None if none.

    Tokens are split on ``_``, ``-``, ``.`` and spaces; groups of up to three tokens are
    tried so ``basal_cell_carcinoma`` works. A diagnosis wins over a benign/malignant
    word; two different diagnoses, or only bare numbers, give None (``img_1.jpg`` is not
    "malignant").
    """
    import re
    from pathlib import PurePosixPath

    stem = PurePosixPath(filename.replace("\\", "/")).name
    stem = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", stem)
    tokens = [t for t in re.split(r"[\s_.\-]+", stem.lower()) if t and not t.isdigit()]
    found_dx: set[str] = set()
    found_binary: set[str] = set()
    for size in (3, 2, 1):
        for start in range(len(tokens) - size + 1):
            try:
                code = normalize_label(" ".join(tokens[start : start + size]))
            except UnknownLabelError:
                continue
            (found_binary if code in BINARY_LABELS else found_dx).add(code)
    if found_dx:
        return found_dx.pop() if len(found_dx) == 1 else None
    return found_binary.pop() if len(found_binary) == 1 else None


# ---- anatomical sites (patient metadata) ---------------------------------------------------
#: Coarse body-site groups shared by HAM10000 (``localization``, 14 fine values) and ISIC
#: 2019/2020 (``anatom_site_general``). Why coarse: a model fed HAM10000's "back" must still
#: read ISIC's "posterior torso"; only the groups below exist in both vocabularies.
SITE_GROUPS: Final[tuple[str, ...]] = (
    "head/neck",
    "torso",
    "upper extremity",
    "lower extremity",
    "palms/soles",
    "oral/genital",
)
_SITE_ALIASES: Final[dict[str, str]] = {
    **{s: s for s in SITE_GROUPS},
    **dict.fromkeys(("face", "scalp", "ear", "neck", "head", "head neck", "head and neck"), "head/neck"),
    **dict.fromkeys(
        (
            "back",
            "trunk",
            "abdomen",
            "chest",
            "anterior torso",
            "posterior torso",
            "lateral torso",
        ),
        "torso",
    ),
    **dict.fromkeys(("hand", "arm", "upper limb", "upper extremities"), "upper extremity"),
    **dict.fromkeys(("foot", "leg", "lower limb", "lower extremities"), "lower extremity"),
    **dict.fromkeys(("acral", "palms soles", "palm", "sole", "palms", "soles"), "palms/soles"),
    **dict.fromkeys(("genital", "oral genital", "oral", "mucosa"), "oral/genital"),
}
SEXES: Final[tuple[str, str]] = ("male", "female")


def site_group(site: object) -> str | None:
    """The `SITE_GROUPS` entry for any known spelling of a body site; None when empty/unknown.

    Raises `ValueError` (listing what is accepted) for text that names no known site, so a
    typo is reported instead of silently becoming "unknown".

    >>> site_group("Lower extremity"), site_group("posterior_torso"), site_group("")
    ('lower extremity', 'torso', None)
    """
    if site is None:
        return None
    text = " ".join(str(site).strip().lower().replace("_", " ").replace("/", " ").replace("-", " ").split())
    if text in ("", "unknown", "nan", "none", "na", "n a"):
        return None
    group = _SITE_ALIASES.get(text) or _SITE_ALIASES.get(str(site).strip().lower())
    if group is None:
        raise ValueError(f"unknown body site {site!r}; accepted: {', '.join(valid_sites())} (or empty)")
    return group


def valid_sites() -> list[str]:
    """Every site spelling `site_group` accepts (for error messages, the CLI and the web form)."""
    return sorted(_SITE_ALIASES)

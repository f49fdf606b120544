"""The model artifact: the hinge between training and serving.

An artifact is a folder::

    artifact.json   everything needed to use the weights (see `ArtifactMeta`) + file hashes
    model.onnx      inputs "image" [N,3,H,W] (+ "metadata" [N,M] for fusion models); outputs "logits" [N,C], "features" [N,D], "cam" [N,C,h,w]
    weights.pt      PyTorch state dict (training side: fine-tuning, export, Grad-CAM)
    ood.npz         statistics of the out-of-distribution gate (optional)

Class names and order, the malignant set, preprocessing, calibration temperature and
operating threshold live *only* here; the predictor, exporter, evaluator and server
read them. Loading checks every file's SHA-256, so a damaged or swapped file is a
clear error instead of silently wrong predictions. This module never imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from dermalens.core.hashing import file_sha256
from dermalens.core.metadata import MetadataEncoding
from dermalens.core.preprocess import Preprocessing
from dermalens.core.schema import STRICT, load

FORMAT_VERSION = 1
META_FILE = "artifact.json"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.pt"
OOD_FILE = "ood.npz"
BASELINE_FILE = "baseline.npz"

#: The bundled model as an installed wheel carries it (package data, copied there by setup.py from
#: models/default/ without weights.pt: serving reads the ONNX graph only).
PACKAGED_DIR = Path(str(resources.files("dermalens") / "_bundled"))
#: The bundled model in a source checkout or editable install: the one copy kept in git.
SOURCE_DIR = Path(__file__).resolve().parents[3] / "models" / "default"


def bundled_dir() -> Path:
    """The bundled default model: the packaged copy where there is one (an installed wheel), else
    the checkout's (a source tree or an editable install, whose package holds no copy)."""
    return PACKAGED_DIR if (PACKAGED_DIR / META_FILE).is_file() else SOURCE_DIR


BUNDLED_DIR = bundled_dir()


class ArtifactError(ValueError):
    """A model artifact that is missing, damaged, or of the wrong kind."""


@dataclass(config=STRICT)
class ConformalSets:
    """Split-conformal prediction sets over the diagnoses (`inference.conformal`): for each stated
    coverage, the quantile of the APS conformity score fitted on held-out labelled images.

    Why several coverages: a user may ask for another one (``--coverage 0.95``) without refitting;
    each is the library's own finite-sample quantile (MAPIE), never recomputed at serving time."""

    #: "0.90" → quantile of the APS score (cumulative probability up to the true class).
    quantiles: dict[str, float]
    #: The coverage shown when none is asked for.
    coverage: float = 0.9
    method: Literal["aps"] = "aps"
    #: What it was fitted on, how many images, with which library (the card shows them).
    source: str = ""
    n: int = 0
    library: str = ""

    def quantile(self, coverage: float | None = None) -> tuple[float, float]:
        """(coverage, quantile) for `coverage` (default: the artifact's); a coverage that was not
        fitted is an error that lists those that were."""
        wanted = self.coverage if coverage is None else coverage
        key = f"{wanted:.2f}"
        if key not in self.quantiles:
            raise ValueError(
                f"coverage {wanted} was not fitted for this model; fitted: {', '.join(sorted(self.quantiles))} "
                "(dermalens conformal --coverage C adds one)"
            )
        return float(key), self.quantiles[key]


@dataclass(config=STRICT)
class ArtifactMeta:
    """What `artifact.json` holds."""

    name: str
    architecture: str
    classes: list[str]
    malignant: list[str]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    #: "dx" (softmax over diagnoses), "binary" (classes == ["benign", "malignant"]) or
    #: "hierarchical" (benign/malignant, then the diagnosis within the branch; logits are log-probabilities)
    head: Literal["dx", "binary", "hierarchical"] = "dx"
    #: Temperature scaling fitted on validation logits (1.0 = uncalibrated).
    temperature: float = 1.0
    #: Operating threshold on p_malignant, and how it was chosen.
    threshold: float = 0.5
    threshold_rule: str = "default 0.5 (not tuned)"
    #: The diagnosis decision rule: per-class offsets added to log-probabilities before the argmax
    #: (`inference.probabilities.top_class`; empty = the most probable class), and how they were
    #: fitted. Probabilities and p_malignant do not change with them.
    class_bias: list[float] = field(default_factory=list)
    class_bias_rule: str = ""
    #: OOD gate: score threshold above which an image is "not dermoscopy" (None = no gate).
    ood_threshold: float | None = None
    ood_method: str = ""
    #: Prediction sets with a stated coverage (None = not fitted: no set is given).
    conformal: ConformalSets | None = None
    #: Metadata inputs the model expects (empty = image only) and their vector layout
    #: (`MetadataEncoding.to_dict()`); model.onnx then has a second input "metadata" [N, dim].
    metadata_inputs: list[str] = field(default_factory=list)
    metadata_encoding: dict[str, Any] = field(default_factory=dict)
    #: How the metadata enters the network: "mlp" (joint fusion) or "linear" (late fusion).
    metadata_branch: Literal["mlp", "linear"] = "mlp"
    version: str = "0.1.0"
    license: str = "CC BY-NC 4.0 (inherited from the HAM10000 training data)"
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocessing"] = self.preprocessing.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactMeta:
        data = dict(data)
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ArtifactError(
                f"artifact format {data['format_version']} is newer than this dermalens ({FORMAT_VERSION}); upgrade"
            )
        try:
            meta = load(cls, data, "artifact.json")
            meta.preprocessing.validate()  # here, at load: a model needing OpenCV (CLAHE) says so first
            if meta.class_bias and len(meta.class_bias) != len(meta.classes):
                raise ValueError(
                    f"artifact.json: class_bias has {len(meta.class_bias)} values for {len(meta.classes)} classes"
                )
        except ValueError as err:
            raise ArtifactError(str(err)) from None
        return meta

    @property
    def encoding(self) -> MetadataEncoding | None:
        """The metadata vector layout, or None for an image-only model."""
        return MetadataEncoding.from_dict(self.metadata_encoding) if self.metadata_inputs else None

    @property
    def decision_bias(self) -> list[float]:
        """`class_bias`, or zeros (the most probable class) where the artifact has none."""
        return list(self.class_bias) if self.class_bias else [0.0] * len(self.classes)

    @property
    def malignant_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.classes) if c in self.malignant]

    @property
    def model_id(self) -> str:
        """Short id for logs: name, version and the first hash characters of the ONNX file."""
        digest = (
            self.files.get(ONNX_FILE)
            or self.files.get(WEIGHTS_FILE)
            or self.files.get(BASELINE_FILE)
            or "unhashed"
        )
        return f"{self.name}-{self.version}-{digest[:8]}"


def resolve(path: str | os.PathLike[str] | None) -> Path:
    """The artifact folder for `path` (a folder, or a file inside one); None = the bundled model."""
    if path is None:
        path = os.environ.get("DERMALENS_MODEL") or BUNDLED_DIR
    folder = Path(path).expanduser()
    if folder.is_file():
        folder = folder.parent
    if not (folder / META_FILE).is_file():
        hint = " (the bundled model is missing: reinstall or pass --model)" if folder == BUNDLED_DIR else ""
        raise ArtifactError(f"{folder}: not a dermalens model artifact (no {META_FILE}){hint}")
    return folder


def load_meta(
    path: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> tuple[Path, ArtifactMeta]:
    """Read and check an artifact's metadata; with `verify`, check every listed file's SHA-256."""
    folder = resolve(path)
    try:
        meta = ArtifactMeta.from_dict(json.loads((folder / META_FILE).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, KeyError) as err:
        raise ArtifactError(f"{folder / META_FILE}: damaged or not an artifact file ({err})") from None
    if verify:
        for name, expected in meta.files.items():
            file = folder / name
            if not file.is_file():
                if name in absent_allowed(folder):
                    continue
                raise ArtifactError(f"{folder}: {name} is listed in {META_FILE} but missing")
            actual = file_sha256(file)
            if actual != expected:
                raise ArtifactError(
                    f"{file}: SHA-256 {actual[:12]}… does not match {expected[:12]}… in {META_FILE}; "
                    "the file is damaged or from another model"
                )
    return folder, meta


def absent_allowed(folder: Path) -> frozenset[str]:
    """Listed files `folder` may lack: weights.pt in the wheel's packaged copy of the bundled model
    only (13 MB that predicting never reads); every other artifact, and every file that is present,
    is checked in full."""
    return frozenset({WEIGHTS_FILE}) if folder.resolve() == PACKAGED_DIR.resolve() else frozenset()


def write_meta(folder: Path, meta: ArtifactMeta) -> Path:
    """Hash every artifact file present in `folder` and write `artifact.json`."""
    meta.files = {
        name: file_sha256(folder / name)
        for name in (ONNX_FILE, WEIGHTS_FILE, OOD_FILE, BASELINE_FILE)
        if (folder / name).is_file()
    }
    path = folder / META_FILE
    path.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def writable_copy(folder: Path, out: str | os.PathLike[str] | None) -> Path:
    """Where a command that changes an artifact writes: `folder` itself, or a new copy of it at
    `out` (an existing `out` is refused, never overwritten)."""
    if out is None:
        return folder
    if Path(out).exists():
        raise ValueError(f"{out} exists; choose a new folder for the changed copy")
    return Path(shutil.copytree(folder, out))

"""What `artifact.json` holds (`ArtifactMeta`), the names of an artifact's files, and its error.

Class names and order, the malignant set, preprocessing, calibration temperature and operating
threshold live *only* here; the predictor, exporter, evaluator and server read them. Reading and
verifying: `artifact.store`; writing: `artifact.write`. Never imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, field
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from dermalens.artifact.kinds import ModelKind, infer_kind, model_kind
from dermalens.core.metadata import MetadataEncoding
from dermalens.core.preprocess import Preprocessing
from dermalens.core.schema import STRICT, load

#: 2 (2026-12-06): ood.npz stores its symmetric precision matrices as upper triangles (half the
#: bytes); this version reads both, a version-1 reader refuses a version-2 artifact by this number.
FORMAT_VERSION = 2
META_FILE = "artifact.json"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.pt"
OOD_FILE = "ood.npz"
BASELINE_FILE = "baseline.npz"
#: Every file an artifact may hold besides `META_FILE`, each hashed into it.
HASHED_FILES = (ONNX_FILE, WEIGHTS_FILE, OOD_FILE, BASELINE_FILE)


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
                "(dermalens artifact conformal --coverage C adds one)"
            )
        return float(key), self.quantiles[key]


#: Most networks an ensemble artifact may hold: issue #34's serving budget (each member is one more
#: network run per image: three keep the bundled default within its latency and size budget).
MAX_MEMBERS = 3
#: Where `dermalens artifact ensemble` places the members inside the ensemble's folder.
MEMBERS_DIR = "members"


@dataclass(config=STRICT)
class EnsembleSpec:
    """The ensemble an artifact folder stands for: itself (member 0, the primary) and complete
    artifacts in its sub-folders, with the decision fitted on their *combined* output.

    Why its own decision: the members' thresholds, decision rules and prediction sets were each
    fitted on one network's probabilities; averaged probabilities need their own (their mean is
    only a guess, and a quantile holds for the one model it was fitted on). Why a gate rule: a
    member trained on another preprocessing path may accept images the primary's gate refuses
    rightly, or refuse a clinic's images the primary accepts; "first" lets the primary's gate
    alone decide refusal, "max" refuses what any member's gate refuses (`inference.combined`)."""

    #: Sub-folders (relative, "/"-separated) holding the other members, each a complete artifact.
    members: list[str]
    threshold: float
    threshold_rule: str
    class_bias: list[float] = field(default_factory=list)
    class_bias_rule: str = ""
    conformal: ConformalSets | None = None
    gate: Literal["first", "max"] = "first"
    #: What the decision was fitted on (source, n, date) and its evidence, as the single-model
    #: fitters record theirs in `ArtifactMeta.metrics`.
    fitted: dict[str, Any] = field(default_factory=dict)

    def check(self, n_classes: int) -> None:
        """Member paths inside the folder, at most `MAX_MEMBERS` networks, one offset per class."""
        if not self.members or len(self.members) + 1 > MAX_MEMBERS:
            raise ValueError(
                f"ensemble: {len(self.members)} member folder(s) besides the primary; valid: 1 to "
                f"{MAX_MEMBERS - 1} (at most {MAX_MEMBERS} networks: the serving budget of issue #34)"
            )
        for member in self.members:
            parts = member.split("/")
            if member.startswith("/") or "\\" in member or any(p in ("", ".", "..") for p in parts):
                raise ValueError(
                    f"ensemble: member {member!r}; valid: a relative sub-folder such as members/name"
                )
        if self.class_bias and len(self.class_bias) != n_classes:
            raise ValueError(
                f"ensemble: class_bias has {len(self.class_bias)} values for {n_classes} classes"
            )

    def member_file(self, member: str) -> str:
        """The key under which the primary's `files` lists a member's artifact.json hash."""
        return f"{member}/{META_FILE}"


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
    #: What sort of model this is (`artifact.kinds`: network, baseline, soup, imported). Artifacts
    #: written before the field lack it; it is then inferred (`infer_kind`) on reading and on
    #: writing, so every other module asks `model_kind` and tests no names.
    kind: str = ""
    #: The ensemble this folder stands for (None: one network, as every artifact before the field).
    ensemble: EnsembleSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocessing"] = self.preprocessing.to_dict()
        if self.ensemble is None:  # one network: artifact.json stays as every artifact before the field
            del data["ensemble"]
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
            meta.kind = meta.model_kind.name  # an unknown kind is an error listing the registered ones
            meta.preprocessing.validate()  # here, at load: a model needing OpenCV (CLAHE) says so first
            if meta.class_bias and len(meta.class_bias) != len(meta.classes):
                raise ValueError(
                    f"artifact.json: class_bias has {len(meta.class_bias)} values for {len(meta.classes)} classes"
                )
            if meta.ensemble is not None:
                meta.ensemble.check(len(meta.classes))
        except ValueError as err:
            raise ArtifactError(str(err)) from None
        return meta

    @property
    def model_kind(self) -> ModelKind:
        """The registry entry of this model's kind: the stated one, else the one its architecture
        and training record imply (a new `ArtifactMeta`, or an artifact from before the field)."""
        return model_kind(self.kind or infer_kind(self.architecture, self.training))

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

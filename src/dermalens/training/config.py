"""Typed training configuration, loaded from YAML, overridable from the command line.

The resolved config is written beside the checkpoints (``config.yaml``) and into the
artifact, so a run can be rebuilt without the original command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic.dataclasses import dataclass

from dermalens.core.preprocess import Preprocessing
from dermalens.core.schema import STRICT, load


@dataclass(config=STRICT)
class SourceConfig:
    """One dataset of a multi-source run, split on its own (grouped by lesion, stratified by
    source and class) so that adding a source never reshuffles another's test split."""

    path: str
    format: str | None = None
    #: Split file: created (seeded) when missing, reused when present.
    split_file: str | None = None


@dataclass(config=STRICT)
class DataConfig:
    path: str = "../shared/data/ham10000"
    format: str | None = None
    #: Split file: created (seeded) when missing, reused when present.
    split_file: str | None = None
    val: float = 0.15
    test: float = 0.15
    #: Merge near-duplicate images into one group before splitting (see data/duplicates.py).
    dedup: bool = True
    #: Use only this many training images (smoke tests); 0 = all.
    limit: int = 0
    #: Several datasets trained on together (then path/format/split_file above are unused).
    sources: list[SourceConfig] = field(default_factory=list)

    def source_list(self) -> list[SourceConfig]:
        """The run's sources: `sources`, or the single dataset of `path`."""
        return list(self.sources) or [SourceConfig(self.path, self.format, self.split_file)]


@dataclass(config=STRICT)
class ModelConfig:
    architecture: str = "tf_efficientnet_lite0"
    pretrained: bool = True
    checkpoint: str | None = None
    drop_rate: float = 0.2
    #: "dx" (7 classes), "binary" (benign/malignant) or "hierarchical" (benign/malignant, then the
    #: diagnosis within the branch; 7 consistent probabilities, see models/fusion.py)
    head: Literal["dx", "binary", "hierarchical"] = "dx"
    #: Fuse patient metadata (age, sex, body site) with the image features (models/fusion.py).
    metadata: bool = False
    #: Training only: probability of hiding each metadata field (so "unknown" is a state the
    #: model knows, and predictions without metadata stay sound).
    metadata_dropout: float = 0.25
    #: How metadata is fused: "joint" (an MLP branch trained with the heads, models/fusion.py) or
    #: "late" (a metadata-only logistic regression on the training split, combined with the image
    #: model of `checkpoint` by Bayes' rule, weight chosen on validation: training/late_fusion.py).
    fusion: Literal["joint", "late"] = "joint"


@dataclass(config=STRICT)
class AugmentConfig:
    hflip: bool = True
    vflip: bool = True
    rotate: float = 180.0
    #: RandomResizedCrop area range: zoom variation, as between clinics' dermatoscopes.
    scale: tuple[float, float] = (0.5, 1.0)
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.03
    #: Probability of a random per-channel gain (camera white balance) before colour constancy.
    color_cast: float = 0.5
    #: Largest per-channel gain deviation of a colour cast (0.2: gains in [0.8, 1.2]).
    color_cast_strength: float = 0.2
    #: Zoom *out* (the lesion fills less of the frame, as with a wider dermatoscope): probability
    #: and smallest linear factor; the border is filled from the image's own edge colours.
    zoom_out: float = 0.0
    zoom_out_min: float = 0.6
    #: Resolution and compression (users' images range from 84 px to full size, heavy JPEG to
    #: lossless): probability of a down-then-up rescale, its smallest linear factor, probability
    #: of a JPEG re-encode and its quality range, probability of a Gaussian blur and its σ range.
    rescale: float = 0.0
    rescale_min: float = 0.35
    jpeg: float = 0.0
    jpeg_quality: tuple[int, int] = (40, 95)
    blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    #: Dermatoscope artefacts: probability of a dark circular rim (vignette) and of a ruler.
    rim: float = 0.0
    ruler: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0


@dataclass(config=STRICT)
class BalanceConfig:
    method: Literal["none", "class_weights", "sampler", "focal", "undersample"] = "class_weights"
    #: Weights ∝ (1 / frequency) ** power; 1 = fully balanced, 0.5 = softened.
    power: float = 1.0
    focal_gamma: float = 2.0
    #: Sample sources ∝ (1 / images of the source) ** source_power (0 = as they come), so one
    #: large clinic does not dominate what the network learns "dermoscopy" looks like.
    source_power: float = 0.0
    #: Images drawn per epoch when sampling (0 = as many as the training split has).
    epoch_size: int = 0
    #: Draw each source's images so that its class mix is the pooled one (over the classes the
    #: source has): with BCN's 23 % BCC against HAM10000's 5 %, telling sources apart (by their
    #: sharpness) otherwise tells the network the likely diagnosis.
    class_by_source: bool = False


@dataclass(config=STRICT)
class DistillConfig:
    """Learning without forgetting (Li & Hoiem 2016): the teacher's soft labels (Hinton et al. 2015)
    on the images of `sources` keep what it learnt there while the network learns other clinics."""

    #: Teacher model artifact(s) (read through the inference engine, each with its own
    #: preprocessing); several = their probabilities averaged. None = no distillation.
    teacher: str | list[str] | None = None
    #: Weight of each teacher in that average (empty = equal).
    teacher_weights: list[float] = field(default_factory=list)
    #: Per teacher, the sources whose images it labels (empty = all of `sources`): a teacher weak
    #: on a clinic's images (the peer on ISIC 2019's: AUC 0.55-0.72) then adds nothing there, and
    #: each image's soft label averages the teachers that do label it.
    teacher_sources: list[list[str]] = field(default_factory=list)
    #: Weight of the distillation term beside the label loss.
    weight: float = 1.0
    #: Softmax temperature of teacher and student in the distillation term.
    temperature: float = 2.0
    #: Sources whose training images get the teacher's soft labels (its own training data).
    sources: list[str] = field(default_factory=lambda: ["ham10000"])
    #: Where the teachers' logits are cached per image (None = `<out_dir>/teacher-cache`), shared
    #: by every run and resumable (`dermalens distill-cache`).
    cache_dir: str | None = None

    @property
    def teachers(self) -> list[str]:
        if self.teacher is None:
            return []
        return [self.teacher] if isinstance(self.teacher, str) else list(self.teacher)

    def weights_for(self, n: int) -> list[float]:
        """The teachers' weights; a list of the wrong length or with no positive weight is refused."""
        if not self.teacher_weights:
            return [1.0] * n
        if len(self.teacher_weights) != n or min(self.teacher_weights) < 0 or sum(self.teacher_weights) <= 0:
            raise ValueError(
                f"distill.teacher_weights {self.teacher_weights}: give {n} non-negative weights, one per teacher"
            )
        return list(self.teacher_weights)

    def sources_for(self, n: int) -> list[list[str]]:
        """Each teacher's sources; a list of the wrong length is refused."""
        if not self.teacher_sources:
            return [list(self.sources)] * n
        if len(self.teacher_sources) != n:
            raise ValueError(
                f"distill.teacher_sources has {len(self.teacher_sources)} lists for {n} teachers"
            )
        return [list(s) for s in self.teacher_sources]


@dataclass(config=STRICT)
class StageConfig:
    name: str
    epochs: int
    lr: float
    #: Train the classifier head only (backbone frozen): the warm-up of staged fine-tuning.
    freeze_backbone: bool = False
    #: Keep the stem and the first `freeze_blocks` blocks of the backbone fixed (weights and
    #: BatchNorm statistics): no backward pass through them, the largest saving on a CPU, where
    #: the early high-resolution layers cost most.
    freeze_blocks: int = 0
    #: Layer-wise learning-rate decay per backbone block group (1.0 = none).
    layer_decay: float = 1.0
    warmup_epochs: float = 0.0
    #: With `freeze_backbone`: also keep the backbone's BatchNorm statistics fixed (eval mode), as
    #: when training new heads on an already trained backbone (linear probing).
    backbone_eval: bool = False
    #: Another dataset for this stage (curriculum); None = the run's data.
    data: DataConfig | None = None
    #: Input size (width, height) for this stage only (progressive resizing: cheap early epochs at
    #: low resolution); None = the run's `preprocessing.input_size`, which the artifact keeps.
    input_size: tuple[int, int] | None = None


@dataclass(config=STRICT)
class TrainConfig:
    name: str = "run"
    seed: int = 0
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    stages: list[StageConfig] = field(
        default_factory=lambda: [
            StageConfig("warmup", 1, 1e-3, freeze_backbone=True),
            StageConfig("finetune", 10, 3e-4, warmup_epochs=0.5),
        ]
    )
    batch_size: int = 64
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    #: Early stopping within a stage: metric on validation, epochs without improvement.
    #: ``source_auc``: the mean of each validation source's own benign/malignant AUC.
    early_stopping_metric: Literal["balanced_accuracy", "accuracy", "auc", "source_auc", "loss"] = (
        "balanced_accuracy"
    )
    patience: int = 4
    workers: int = 2
    channels_last: bool = True
    #: "auto" (CUDA when available), "cpu" or "cuda". Results are saved on the CPU either way.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Fit the OOD gate on training embeddings at the end (threshold: validation quantile).
    ood_quantile: float = 0.99
    #: Calibrate temperature and pick the threshold for this sensitivity on validation.
    target_sensitivity: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def teacher_cache_dir(self) -> Path:
        """Where the teachers' per-image logits are cached: shared by every run of `out_dir`."""
        return (
            Path(self.distill.cache_dir) if self.distill.cache_dir else Path(self.out_dir) / "teacher-cache"
        )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def get_dotted(data: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key as `--set` names it (``stages.1.lr``); KeyError/IndexError if absent."""
    node: Any = data
    for key in dotted.split("."):
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _set_dotted(data: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    value = yaml.safe_load(raw)
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Load YAML (None = defaults), apply ``key.sub=value`` overrides, and validate."""
    return config_from_data(read_config_yaml(Path(path)) if path is not None else {}, overrides)


def read_config_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping with its ``base:`` files merged in (not yet validated)."""
    return _read_yaml(path)


def config_from_data(raw: dict[str, Any], overrides: list[str] | None = None) -> TrainConfig:
    """Defaults ← `raw` ← ``key.sub=value`` overrides, validated."""
    data: dict[str, Any] = _merge(TrainConfig().to_dict(), raw)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r}: expected key.sub=value (e.g. stages.1.epochs=5)")
        key, value = item.split("=", 1)
        _set_dotted(data, key.strip(), value)
    config = load(TrainConfig, data, "config")
    config.preprocessing.validate()
    if config.model.fusion == "late" and not (config.model.metadata and config.model.checkpoint):
        raise ValueError(
            "model.fusion: late needs model.metadata: true and a model.checkpoint (the image model)"
        )
    return config


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's mapping; ``base: other.yaml`` (relative to this file) is read first and
    overridden, so an ablation config states only what it changes."""
    if path.resolve() in seen:
        raise ValueError(f"{path}: config bases form a cycle")
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a config file must be a mapping of keys")
    base = loaded.pop("base", None)
    if base is None:
        return loaded
    parent = _read_yaml(path.parent / str(base), (*seen, path.resolve()))
    if "stages" in loaded:  # a list replaces the base's list as a whole
        parent.pop("stages", None)
    return _merge(parent, loaded)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def save_config(config: TrainConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")

"""The kinds of model an artifact can hold, in a small registry keyed by `artifact.json`'s `kind`.

Why a registry (timm's `@register_model` in small): code that must treat a classical baseline
differently from a network (which runtime opens it, which trainer builds it) asks the kind's
entry, instead of each module testing the architecture's name (``startswith("baseline")``) on its
own. Artifacts written before the field existed are read by inferring their kind once, here
(`infer_kind`), from what they always carried; nothing else looks at names to tell kinds apart.
An ensemble is not a kind: it is several artifacts loaded together, each of its own kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelKind:
    """One kind of model: its `artifact.json` name and what serving and training need to know."""

    name: str
    #: True: a neural network (model.onnx for serving; weights.pt for export, Grad-CAM, refitting).
    #: False: classical features and plain arrays (baseline.npz), served by the baseline runtime.
    network: bool
    description: str


#: kind name → its entry; filled by `register_kind` below, read by `model_kind`.
KINDS: dict[str, ModelKind] = {}


def register_kind(name: str, *, network: bool, description: str) -> ModelKind:
    """Add a kind; a second registration of one name is a programming error."""
    if name in KINDS:
        raise ValueError(f"model kind {name!r} is registered twice")
    KINDS[name] = ModelKind(name, network, description)
    return KINDS[name]


register_kind("network", network=True, description="a network trained here (timm)")
register_kind("soup", network=True, description="the averaged weights of fine-tuned networks")
register_kind(
    "baseline",
    network=False,
    description="logistic regression or RBF SVM on colour/texture features",
)
register_kind(
    "imported",
    network=True,
    description="a Keras or ONNX classifier made into an artifact (`dermalens artifact import`)",
)

#: Architecture names that say the kind by themselves (artifacts and configs from before `kind`).
_BASELINE_PREFIX = "baseline"
IMPORTED_ARCHITECTURE = "imported"


def model_kind(name: str) -> ModelKind:
    """The registered kind `name`; an unknown one is an error that lists those registered."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}; registered: {', '.join(sorted(KINDS))}") from None


def infer_kind(architecture: str, training: Mapping[str, Any] | None = None) -> str:
    """The kind of a model that does not state one, from what every artifact and training config
    has always carried: the architecture name (``baseline-…``, ``imported``) and, for a soup, the
    members recorded in ``training.notes.soup_of``. The only place that tells kinds apart by names."""
    if architecture.startswith(_BASELINE_PREFIX):
        return "baseline"
    if architecture == IMPORTED_ARCHITECTURE:
        return "imported"
    notes = (training or {}).get("notes")
    if isinstance(notes, Mapping) and notes.get("soup_of"):
        return "soup"
    return "network"

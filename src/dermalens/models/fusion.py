"""`LesionNet`: a timm backbone with an optional metadata branch and a flat or hierarchical head.

Plain image-only models stay bare timm networks (the bundled artifact's weights are
one); `LesionNet` is used when a config asks for ``model.metadata: true`` or
``model.head: hierarchical``.

Fusion is late concatenation: pooled image features ⊕ an MLP embedding of the
metadata vector (`inference.metadata`), then a linear layer. Why concatenation and
not a gating block such as MetaBlock: the logits stay linear in the image feature
map, so the exact CAM (`models.heads`) survives: the metadata part is a per-image
constant added to every location.

The hierarchical head factorises p(class) = p(branch) · p(class | branch), with
branch ∈ {benign, malignant} and the within-branch softmax over that branch's classes
only, and returns log p(class) as its "logits". The 7 probabilities therefore sum to 1
and each branch's probability is exactly the sum of its classes; training minimises
−log p(class) = −log p(branch) − log p(class | branch), i.e. both levels jointly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dermalens.models.heads import backbone_maps, level_output

META_HIDDEN = 32
#: "mlp": a small MLP embeds the metadata (trained with the heads); "linear": the encoded vector
#: enters the linear head as is, so the metadata term of each logit is linear (late fusion).
METADATA_BRANCHES = ("mlp", "linear")


class FlatHead(nn.Module):
    """One linear layer over the fused features; CAM per class."""

    def __init__(self, in_features: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, n_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def linears(self) -> list[nn.Linear]:
        return [self.fc]

    def combine(self, scores: list[torch.Tensor]) -> torch.Tensor:
        return scores[0]


class HierarchicalHead(nn.Module):
    """Branch logits (benign, malignant) + within-branch logits → log p(class)."""

    def __init__(self, in_features: int, n_classes: int, malignant: Sequence[int]) -> None:
        super().__init__()
        if not 0 < len(malignant) < n_classes:
            raise ValueError("a hierarchical head needs benign and malignant classes")
        self.branch = nn.Linear(in_features, 2)
        self.within = nn.Linear(in_features, n_classes)
        for layer in (self.branch, self.within):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        is_mal = torch.zeros(n_classes, dtype=torch.long)
        is_mal[list(malignant)] = 1
        self.register_buffer("branch_of", is_mal)

    def linears(self) -> list[nn.Linear]:
        return [self.branch, self.within]

    def combine(self, scores: list[torch.Tensor]) -> torch.Tensor:
        """log p(branch) + log p(class | branch) for [N, C] scores."""
        branch, within = scores
        branch_of: torch.Tensor = self.branch_of  # type: ignore[assignment]
        members = [torch.nonzero(branch_of == b).flatten() for b in (0, 1)]
        log_norm = torch.stack([torch.logsumexp(within.index_select(1, m), dim=1) for m in members], dim=1)
        log_branch = F.log_softmax(branch, dim=1)
        return (log_branch - log_norm).index_select(1, branch_of) + within

    def cam(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Per-class map = branch CAM of the class's branch + its within-branch CAM (both exact
        linear CAMs; their spatial mean is the class's two raw logits)."""
        branch, within = maps
        branch_of: torch.Tensor = self.branch_of  # type: ignore[assignment]
        return branch.index_select(1, branch_of) + within


class LesionNet(nn.Module):
    """Backbone (timm, classifier removed) + optional metadata MLP + `FlatHead`/`HierarchicalHead`."""

    def __init__(
        self,
        backbone: nn.Module,
        n_classes: int,
        *,
        metadata_dim: int = 0,
        hierarchical: bool = False,
        malignant: Sequence[int] = (),
        drop_rate: float = 0.2,
        metadata_branch: str = "mlp",
    ) -> None:
        super().__init__()
        if metadata_branch not in METADATA_BRANCHES:
            raise ValueError(f"metadata branch {metadata_branch!r}; valid: {', '.join(METADATA_BRANCHES)}")
        backbone.reset_classifier(0)  # type: ignore[operator]
        self.backbone = backbone
        self.image_dim = int(backbone.num_features)  # type: ignore[arg-type]
        self.metadata_dim = metadata_dim
        self.meta: nn.Module | None = None
        meta_out = 0
        if metadata_dim and metadata_branch == "mlp":
            self.meta = nn.Sequential(
                nn.Linear(metadata_dim, META_HIDDEN),
                nn.ReLU(),
                nn.Dropout(0.1),
                nn.Linear(META_HIDDEN, META_HIDDEN),
                nn.ReLU(),
            )
            meta_out = META_HIDDEN
        elif metadata_dim:  # "linear": the encoded vector itself (late fusion, training/late_fusion.py)
            self.meta = nn.Identity()
            meta_out = metadata_dim
        fused = self.image_dim + meta_out
        self.dropout = nn.Dropout(drop_rate)
        self.head: FlatHead | HierarchicalHead = (
            HierarchicalHead(fused, n_classes, malignant) if hierarchical else FlatHead(fused, n_classes)
        )

    def get_classifier(self) -> nn.Module:
        """Everything that is not backbone (what a frozen-backbone stage trains)."""
        return nn.ModuleList([m for m in (self.meta, self.head) if m is not None])

    def forward_all(
        self, image: torch.Tensor, metadata: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"logits", "features" (pooled image features, for the OOD gate), "cam"}`` and, for
        EfficientNet backbones, ``"level_features"`` (the gate's mid-level input)."""
        fmap, mid = backbone_maps(self.backbone, image)
        features = fmap.mean(dim=(2, 3))
        extra = None
        if self.meta is not None:
            if metadata is None:
                raise ValueError(f"this model needs a metadata tensor [N, {self.metadata_dim}]")
            extra = self.meta(metadata)
        fused = self.dropout(features if extra is None else torch.cat([features, extra], dim=1))
        scores, maps = [], []
        for linear in self.head.linears():
            scores.append(linear(fused))
            w_img = linear.weight[:, : self.image_dim]
            constant = linear.bias[None, :]  # [1 or N, C]: what the metadata adds is the same everywhere
            if extra is not None:
                constant = constant + extra @ linear.weight[:, self.image_dim :].T
            maps.append(torch.einsum("cd,ndhw->nchw", w_img, fmap) + constant[:, :, None, None])
        logits = self.head.combine(scores)
        cam = maps[0] if isinstance(self.head, FlatHead) else self.head.cam(maps)
        return {"logits": logits, "features": features, "cam": cam} | level_output(mid)

    def forward(self, image: torch.Tensor, metadata: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(image, metadata)["logits"]

    def load_image_checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        """Start from an image-only model: backbone weights, and a flat head whose image columns copy
        its classifier (metadata columns zero), so training starts from the image-only predictions."""
        own = self.backbone.state_dict()
        self.backbone.load_state_dict(
            {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False
        )
        weight, bias = state.get("classifier.weight"), state.get("classifier.bias")
        fc = self.head.fc if isinstance(self.head, FlatHead) else self.head.within
        if weight is not None and bias is not None and weight.shape == (fc.out_features, self.image_dim):
            with torch.no_grad():
                fc.weight.zero_()
                fc.weight[:, : self.image_dim] = weight
                fc.bias.copy_(bias)

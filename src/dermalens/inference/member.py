"""One opened, verified network of the engine (`inference.engine`), and the ensemble an artifact
folder stands for: itself and its members (`ArtifactMeta.ensemble`), each with its own
preprocessing, runtime and gate. Nothing here imports torch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dermalens.artifact.meta import OOD_FILE, ArtifactMeta, EnsembleSpec
from dermalens.artifact.ood import OodGate
from dermalens.artifact.store import load_members, load_meta
from dermalens.core.metadata import PatientMetadata
from dermalens.inference.runtime import create_runtime

ArtifactPath = str | os.PathLike[str] | None
#: Images run through the network per runtime call.
BATCH_SIZE = 32


@dataclass
class Member:
    """One opened, verified artifact of a (possibly one-member) ensemble."""

    folder: Path
    meta: ArtifactMeta
    runtime: Any
    gate: OodGate | None

    @classmethod
    def open(
        cls, artifact: ArtifactPath, runtime: str = "onnx", threads: int = 1, verify: bool = True
    ) -> Member:
        return cls.opened(*load_meta(artifact, verify=verify), runtime, threads)

    @classmethod
    def opened(cls, folder: Path, meta: ArtifactMeta, runtime: str = "onnx", threads: int = 1) -> Member:
        """A member from an artifact already read (and verified)."""
        gate = OodGate.load(folder / OOD_FILE) if (folder / OOD_FILE).is_file() else None
        return cls(folder, meta, create_runtime(folder, meta, runtime, threads), gate)

    @classmethod
    def open_all(
        cls, artifact: ArtifactPath, runtime: str = "onnx", verify: bool = True
    ) -> tuple[list[Member], EnsembleSpec | None]:
        """An artifact's networks: itself, then the members of the ensemble it stands for (each
        verified against its own hashes, pinned by the primary's), and that ensemble's spec."""
        folder, meta = load_meta(artifact, verify=verify)
        others = load_members(folder, meta, verify=verify)
        members = [cls.opened(folder, meta, runtime)] + [cls.opened(f, m, runtime) for f, m in others]
        return members, meta.ensemble

    def infer(self, batch: np.ndarray, patients: Sequence[PatientMetadata]) -> dict[str, np.ndarray]:
        """Runtime outputs for a normalised batch, in runtime-sized pieces."""
        encoding = self.meta.encoding
        vectors = encoding.encode(patients) if encoding else None
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(batch), BATCH_SIZE):
            stop = start + BATCH_SIZE
            result = self.runtime.run(batch[start:stop], None if vectors is None else vectors[start:stop])
            for key, value in result.items():
                parts.setdefault(key, []).append(np.asarray(value))
        return {key: np.concatenate(values) for key, values in parts.items()}

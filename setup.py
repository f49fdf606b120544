"""The build step that puts the bundled model inside the wheel (issue #30); pyproject.toml holds the rest.

`models/default/` at the repository root stays the only copy in git. Building a wheel copies its
files into `dermalens/_bundled/` of the build tree, where `dermalens.artifact.store` finds them
with importlib.resources, so `pip install dermalens` predicts without a checkout; an ensemble's
member folders (members/<name>/) come along. weights.pt stays out, the model's and any member's: it
is the PyTorch state dict (13 MB each) that only training and export read, and the artifact check
lets exactly that file be absent from the packaged copy and its members. Editable installs copy
nothing: they read models/default/ in place, so a replaced model is served without a rebuild.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODEL_SOURCE = Path(__file__).resolve().parent / "models" / "default"
#: Where the copy lands inside the package (artifact.store.PACKAGED_DIR reads it).
MODEL_PACKAGE = ("dermalens", "_bundled")
#: Training-side files the serving install does without (artifact.WEIGHTS_FILE).
LEFT_OUT = {"weights.pt"}


class BuildWithModel(build_py):
    """`build_py`, then the bundled model's serving files into the build tree."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        if not (MODEL_SOURCE / "artifact.json").is_file():
            raise FileNotFoundError(
                f"{MODEL_SOURCE}/artifact.json: the bundled model is missing; a wheel needs it"
            )
        target = Path(self.build_lib, *MODEL_PACKAGE)
        for file in sorted(MODEL_SOURCE.rglob("*")):
            if file.is_file() and file.name not in LEFT_OUT:
                copy = target / file.relative_to(MODEL_SOURCE)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, copy)


setup(cmdclass={"build_py": BuildWithModel})

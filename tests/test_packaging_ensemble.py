"""A wheel whose bundled default is an ensemble artifact: setup.py copies the member folders
without any weights.pt, and the packaged copy verifies and predicts (`store.absent_allowed`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dermalens.artifact.meta import EnsembleSpec
from dermalens.artifact.store import SOURCE_DIR, load_meta
from dermalens.artifact.write import write_ensemble
from test_packaging import BUILD_INPUTS, REPO, run, setuptools_major

pytestmark = pytest.mark.slow


def ensemble_default(target: Path) -> tuple[str, float, int]:
    """The bundled default as an ensemble at `target` (the checkout's own where it is one, else the
    bundled network twice with a decision set by hand): (a member's folder, the threshold, the
    number of networks)."""
    meta = load_meta(SOURCE_DIR)[1]
    if meta.ensemble is not None:
        shutil.copytree(SOURCE_DIR, target)
        return meta.ensemble.members[0], meta.ensemble.threshold, len(meta.ensemble.members) + 1
    spec = EnsembleSpec(["members/second"], threshold=0.2, threshold_rule="by hand")
    write_ensemble(target, SOURCE_DIR, [SOURCE_DIR], spec, "wheel-check")
    return "members/second", 0.2, 2


def test_a_wheel_carries_an_ensemble_default_that_verifies(tmp_path: Path, ham10000: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in (n for n in BUILD_INPUTS if n != "models/default"):
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(REPO / name, tree / name)
    member, threshold, networks = ensemble_default(tree / "models/default")
    isolation = ["--no-build-isolation"] if setuptools_major() >= 77 else []
    built = run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", tmp_path / "out", tree
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "out").glob("dermalens-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
        names = {n for n in archive.namelist() if n.startswith("dermalens/_bundled/")}
    assert f"dermalens/_bundled/{member}/model.onnx" in names
    assert not any(n.endswith("weights.pt") for n in names)
    image = sorted((ham10000 / "images").glob("*.jpg"))[0]
    script = (
        "from dermalens import Classifier; c = Classifier.load(); "
        f"print(len(c.members), c.threshold, c.predict({str(image)!r}).decision)"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    env.pop("DERMALENS_MODEL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    members, served = done.stdout.split()[:2]
    assert int(members) == networks and float(served) == pytest.approx(threshold)

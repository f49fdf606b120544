"""`dermalens train --config configs/smoke.yaml` on the real HAM10000 images: a loadable artifact."""

import subprocess
import sys
from pathlib import Path

import pytest

from dermalens import Classifier

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_smoke_config_trains_on_ham10000(ham10000, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "dermalens.cli",
        "train",
        "--no-progress",
        "--config",
        str(ROOT / "configs/smoke.yaml"),
        "--set",
        f"data.path={ham10000}",
        "--set",
        f"out_dir={tmp_path}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    clf = Classifier.load(tmp_path / "smoke" / "artifact")
    assert clf.meta.preprocessing.input_size == (64, 48)
    assert clf.meta.data["train_images"] == 64

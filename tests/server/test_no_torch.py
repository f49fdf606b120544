"""The serving path never imports torch: build the app, start it, predict, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import io, sys
import numpy as np
from PIL import Image
from fastapi.testclient import TestClient
from dermalens.server.app import create_app
from dermalens.server.settings import ServerSettings

app = create_app(ServerSettings(models=[sys.argv[1]], log_db=sys.argv[2]))
buffer = io.BytesIO()
Image.fromarray(np.full((90, 120, 3), 128, np.uint8)).save(buffer, "PNG")
with TestClient(app) as client:
    files = {"files": ("x.png", buffer.getvalue())}
    response = client.post("/api/v1/predict", files=files, data={"heatmap": "1"})
    assert response.status_code == 200, response.text
    assert client.get("/").status_code == 200
torch = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "torchvision", "timm")))
print("TORCH:", torch)
sys.exit(1 if torch else 0)
"""


def test_serving_does_not_import_torch(tiny_artifact: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_artifact), str(tmp_path / "log.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

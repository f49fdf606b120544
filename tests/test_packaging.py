"""`pip install dermalens` works from the wheel alone, on every supported Python (issue #30).

The wheel is built once per session from a copy of the build inputs (so build/ and *.egg-info never
land in the repository), then installed, non-editable and without extras, into a fresh venv of each
Python 3.11–3.13 found (on PATH, else under ~/.pyenv/versions; a missing one is skipped, saying so).
Its dependencies come from the package index. The last test adds the `serve` extra and starts the
web app, so its pins are checked on each Python too. Slow: a venv and its downloads per Python.
"""

from __future__ import annotations

import csv
import email.parser
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from conftest import ham_root, lesion_like, save_image
from dermalens import Classifier
from dermalens.artifact.meta import WEIGHTS_FILE
from dermalens.artifact.store import SOURCE_DIR

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
#: What a wheel is built from; setup.py adds models/default/ to the package.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "src", "models/default")
PYTHONS = ("3.11", "3.12", "3.13")
PACKAGED = "dermalens/_bundled/"


def find_python(version: str) -> str | None:
    """A `python{version}` that runs: PATH first (a pyenv shim there refuses versions not selected),
    then pyenv's own installs."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = [
        shutil.which(f"python{version}"),
        *map(str, sorted(pyenv.glob(f"versions/{version}.*/bin/python{version}"))),
    ]
    for candidate in filter(None, found):
        if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


def outside_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH (src/ in development), so a venv imports only what is
    installed in it."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | extra


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(map(str, argv)), capture_output=True, text=True, env=outside_env(), cwd=cwd, timeout=600
    )


def setuptools_major() -> int:
    """This environment's setuptools (0: none); from 77 on (pyproject's build-system) it builds the
    wheel itself, saving pip a build environment from the index."""
    try:
        return int(metadata.version("setuptools").split(".")[0])
    except metadata.PackageNotFoundError:
        return 0


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("build-tree")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "_bundled")
            shutil.copytree(REPO / name, tree / name, ignore=skip)
        else:
            shutil.copy2(REPO / name, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    isolation = ["--no-build-isolation"] if setuptools_major() >= 77 else []
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", out, tree)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("dermalens-*.whl")
    return path


@pytest.fixture(scope="session", params=PYTHONS)
def base_install(
    request: pytest.FixtureRequest, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The bin/ folder of a fresh venv holding `pip install dermalens` (the wheel, no extras)."""
    python = find_python(request.param)
    if python is None:
        pytest.skip(f"python{request.param} not found on PATH nor under ~/.pyenv/versions")
    venv = tmp_path_factory.mktemp(f"venv-{request.param}")
    for step in (
        [python, "-m", "venv", venv],
        [venv / "bin" / "python", "-m", "pip", "install", "-q", wheel],
    ):
        done = run(*step)
        assert done.returncode == 0, done.stderr
    return venv / "bin"


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared HAM10000 image, or a synthetic lesion where the shared data is absent."""
    root = ham_root()
    if root is not None:
        return sorted((root / "images").glob("*.jpg"))[0]
    return save_image(tmp_path_factory.mktemp("image") / "lesion.jpg", lesion_like(5))


def test_the_wheel_carries_the_bundled_model_for_serving(wheel):
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n.removeprefix(PACKAGED) for n in archive.namelist() if n.startswith(PACKAGED)}
        shipped = {p.relative_to(SOURCE_DIR).as_posix() for p in SOURCE_DIR.rglob("*") if p.is_file()}
        assert packaged == {n for n in shipped if Path(n).name != WEIGHTS_FILE}  # ensemble members too
        assert {"artifact.json", "model.onnx", "ood.npz", "MODEL_CARD.md"} <= packaged
        for name in packaged:
            assert archive.read(PACKAGED + name) == (SOURCE_DIR / name).read_bytes(), name
        info = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA")))
    meta = email.parser.BytesParser().parsebytes(info)
    base = {r.split(";")[0] for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r}
    assert {"onnxruntime==1.31.1", "pydantic>=2.7"} <= base
    assert meta["Requires-Python"] in (">=3.11,<3.14", "<3.14,>=3.11")


def test_the_base_install_predicts_a_file_with_the_bundled_model(base_install, image, tmp_path):
    assert run(base_install / "dermalens", "--help").stdout.count("predict") >= 1
    out = tmp_path / "out.csv"
    ran = run(base_install / "dermalens", "predict", image, "--csv", out, "--quiet", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (row,) = csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines())
    expected = Classifier.load().predict(image)  # this checkout's models/default, in process
    assert row["decision"] == expected.decision
    assert float(row["ood_score"]) == pytest.approx(expected.ood_score, abs=1e-3)
    assert row["prediction"] == ("" if expected.decision == "refused" else expected.prediction)
    assert float(row["p_malignant"]) == pytest.approx(expected.p_malignant, abs=1e-3)
    where = run(
        base_install / "python", "-c", "from dermalens.artifact.store import BUNDLED_DIR; print(BUNDLED_DIR)"
    )
    assert Path(where.stdout.strip()).parts[-3:] == ("site-packages", "dermalens", "_bundled")


def test_the_base_install_names_the_extra_a_command_needs(base_install, tmp_path):
    ran = run(base_install / "dermalens", "serve", cwd=tmp_path)
    assert ran.returncode == 2
    assert "pip install 'dermalens[serve]'" in ran.stderr and "Traceback" not in ran.stderr


def get(url: str, deadline: float, server: subprocess.Popen[str]) -> str:
    """The body at `url` once the server answers (it loads the model first)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode("utf-8")
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_the_serve_extra_serves_the_bundled_model(base_install, wheel, tmp_path):
    """Last for each Python: it adds the `serve` extra to the venv the tests above share."""
    added = run(base_install / "python", "-m", "pip", "install", "-q", f"{wheel}[serve]")
    assert added.returncode == 0, added.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [base_install / "dermalens", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = outside_env(XDG_DATA_HOME=str(tmp_path))  # the prediction log goes to tmp_path
    with subprocess.Popen(argv, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True) as server:
        try:
            health = json.loads(get(f"http://127.0.0.1:{port}/api/v1/health", time.monotonic() + 300, server))
            page = get(f"http://127.0.0.1:{port}/", time.monotonic() + 30, server)
        finally:
            server.terminate()
    assert health["status"] == "ok", health
    assert "dermalens" in page.lower()

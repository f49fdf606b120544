"""`dermalens soup`: two real tiny runs averaged into one artifact that is refitted and serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dermalens import Classifier
from dermalens.artifact.meta import WEIGHTS_FILE
from dermalens.artifact.store import load_meta
from dermalens.training.soup import average_state, build_soup
from training.conftest import write_config
from training.test_train import ENV, _train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two artifacts of one recipe from two seeds (different weights, same architecture and classes)."""
    root = tmp_path_factory.mktemp("soup-runs")
    artifacts = []
    for seed in (1, 2):
        config = write_config(root / f"c{seed}.yaml", tiny_dataset, root / f"r{seed}", seed=seed)
        done = _train("--config", str(config))
        assert done.returncode == 0, done.stderr[-3000:]
        artifacts.append(root / f"r{seed}" / "tiny" / "artifact")
    return artifacts


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)


def test_soup_cli_averages_weights_and_refits(
    two_runs: list[Path], tiny_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "soup"
    cmd = [sys.executable, "-m", "dermalens.cli", "artifact", "soup", "--out", str(out)]
    cmd += [arg for run in two_runs for arg in ("--model", str(run))]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b, soup = (_weights(f) for f in (*two_runs, out))
    assert a.keys() == soup.keys()
    changed = 0
    for key, value in soup.items():
        if value.is_floating_point():
            assert torch.allclose(value.float(), (a[key].float() + b[key].float()) / 2, atol=1e-3), key
            changed += int(not torch.equal(a[key], b[key]))
    assert changed > 0, "the two seeds gave identical weights: the test would not see an average"
    _, meta = load_meta(out)  # hashes verified: the new artifact is whole
    members = [load_meta(r)[1] for r in two_runs]
    assert [m["model_id"] for m in meta.training["notes"]["soup_of"]] == [m.model_id for m in members]
    assert meta.name == "soup-tiny-tiny" and meta.classes == members[0].classes
    assert meta.temperature > 0 and meta.ood_threshold is not None  # fitted for the averaged network
    result = Classifier.load(out).predict(tiny_dataset.parent / "0.png")
    assert abs(sum(result.probabilities.values()) - 1) < 1e-6


def test_soup_refuses_models_that_cannot_be_averaged(
    two_runs: list[Path], tiny_artifact: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="differ in"):
        build_soup([two_runs[0], tiny_artifact], tmp_path / "x")
    with pytest.raises(ValueError, match="no training config"):
        build_soup([tiny_artifact, tiny_artifact], tmp_path / "z")
    with pytest.raises(ValueError, match="at least 2 models"):
        build_soup([two_runs[0]], tmp_path / "y")
    assert not any((tmp_path / n).exists() for n in "xyz")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="exists; choose a new folder"):
        build_soup(two_runs, tmp_path / "taken")
    assert not any((tmp_path / "taken").iterdir())


def test_average_state_keeps_integer_buffers_and_checks_keys() -> None:
    first = {"w": torch.tensor([1.0, 3.0]), "steps": torch.tensor(5)}
    second = {"w": torch.tensor([3.0, 5.0]), "steps": torch.tensor(9)}
    mean = average_state([first, second])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and int(mean["steps"]) == 5
    with pytest.raises(ValueError, match="parameters differ"):
        average_state([first, {"w": torch.tensor([1.0, 1.0])}])
    with pytest.raises(ValueError, match="shapes"):
        average_state([first, {"w": torch.tensor([1.0]), "steps": torch.tensor(1)}])


def test_soup_at_another_input_size_is_refitted_there(two_runs: list[Path], tmp_path: Path) -> None:
    """The same averaged weights, served (and calibrated, gated) at a larger input than trained at."""
    out = build_soup(two_runs, tmp_path / "larger", input_size=(40, 30))
    _, meta = load_meta(out)
    trained = load_meta(two_runs[0])[1]
    assert tuple(meta.preprocessing.input_size) == (40, 30) != tuple(trained.preprocessing.input_size)
    assert meta.name == "soup-tiny-tiny-at40x30"
    assert meta.training["notes"]["trained_input_size"] == list(trained.preprocessing.input_size)
    a, b, soup = (_weights(f) for f in (*two_runs, out))
    key = next(k for k, v in soup.items() if v.is_floating_point() and not torch.equal(a[k], b[k]))
    assert torch.allclose(soup[key].float(), (a[key].float() + b[key].float()) / 2, atol=1e-3)
    with pytest.raises(ValueError, match="at least 8 pixels"):
        build_soup(two_runs, tmp_path / "tiny", input_size=(4, 3))
    assert not (tmp_path / "tiny").exists()


def test_an_ensemble_gives_its_primary_weights_and_a_member_folder_is_refused(
    hand_ensemble: Path, tiny_artifact: Path, caplog
) -> None:
    """An ensemble's own weights.pt is its primary's (said in one line); its member folders hold none."""
    import logging

    from dermalens.training.soup import load_members

    with caplog.at_level(logging.WARNING):
        loaded = load_members([hand_ensemble, tiny_artifact])
    assert [folder for folder, _ in loaded] == [hand_ensemble, tiny_artifact]
    assert any("soup averages its primary network's weights" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match=r"no weights\.pt \(an ensemble's member folders"):
        load_members([tiny_artifact, hand_ensemble / "members" / "other"])

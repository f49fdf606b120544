"""AdaBN for `dermalens adapt --unlabelled`, on the bundled network and real HAM10000 images: only
the batch-norm statistics change, they are the clinic images' own whatever they were before, and
the copy's graph serves them; an artifact without PyTorch weights is refused with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dermalens.artifact.meta import WEIGHTS_FILE
from dermalens.artifact.store import BUNDLED_DIR, load_meta
from dermalens.artifact.write import write_meta
from dermalens.data.readers import load_dataset
from dermalens.inference.engine import Engine
from dermalens.models.factory import build_from_meta
from dermalens.training.adabn import adabn_copy, reestimate

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def images(ham10000: Path) -> list[Path]:
    return [r.path for r in load_dataset(ham10000).records[:40]]


def test_only_the_statistics_change_and_the_copy_serves_them(images: list[Path], tmp_path: Path) -> None:
    _, meta = load_meta(BUNDLED_DIR)
    copy = adabn_copy(BUNDLED_DIR, images, tmp_path / "adabn")
    load_meta(copy)  # hashes rewritten for the new graph and weights
    old = torch.load(BUNDLED_DIR / WEIGHTS_FILE, weights_only=True)
    new = torch.load(copy / WEIGHTS_FILE, weights_only=True)
    stats = [k for k in old if k.endswith(("running_mean", "running_var"))]
    assert stats and all(not torch.allclose(old[k].float(), new[k]) for k in stats[:5])
    learned = [k for k in old if k not in stats and not k.endswith("num_batches_tracked")]
    assert all(torch.equal(old[k].float(), new[k]) for k in learned)
    again = build_from_meta(meta, BUNDLED_DIR / WEIGHTS_FILE)  # from the original statistics: same result
    reestimate(again, Engine.load(BUNDLED_DIR).network_inputs(images))
    assert all(torch.allclose(again.state_dict()[k], new[k], atol=1e-5) for k in stats)
    before = Engine.load(BUNDLED_DIR).run(images[:4]).members[0].logits
    after = Engine.load(copy).run(images[:4]).members[0].logits
    assert not np.allclose(before, after, atol=1e-3)


def test_an_artifact_without_weights_is_refused_with_the_reason(images: list[Path], tmp_path: Path) -> None:
    folder = Path(shutil.copytree(BUNDLED_DIR, tmp_path / "no-weights"))
    (folder / WEIGHTS_FILE).unlink()
    write_meta(folder, load_meta(folder, verify=False)[1])
    with pytest.raises(ValueError, match=r"no weights\.pt; --unlabelled re-estimates"):
        adabn_copy(folder, images, tmp_path / "out")


def test_unlabelled_images_are_found_at_any_depth_and_a_wrong_folder_is_named(tmp_path: Path) -> None:
    from conftest import lesion_like, save_image
    from dermalens.training.adabn_run import unlabelled_images

    save_image(tmp_path / "a" / "b" / "one.jpg", lesion_like(0))
    save_image(tmp_path / "two.png", lesion_like(1), "PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in unlabelled_images(tmp_path)] == ["one.jpg", "two.png"]
    with pytest.raises(ValueError, match="not a folder"):
        unlabelled_images(tmp_path / "two.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        unlabelled_images(tmp_path / "empty")


def test_an_ensemble_is_adapted_as_its_primary_network_alone(hand_ensemble: Path, tmp_path: Path) -> None:
    """New statistics change the primary's probabilities: the copy is that one network, without
    the members or the ensemble's decision (fitted on their average)."""
    from conftest import lesion_like
    from dermalens.artifact.meta import MEMBERS_DIR

    copy = adabn_copy(hand_ensemble, [lesion_like(s, (64, 48)) for s in range(6)], tmp_path / "adabn")
    _, meta = load_meta(copy)
    assert meta.ensemble is None and not (copy / MEMBERS_DIR).exists() and "from_ensemble" in meta.training
    old = torch.load(hand_ensemble / WEIGHTS_FILE, weights_only=True)
    new = torch.load(copy / WEIGHTS_FILE, weights_only=True)
    stats = [k for k in old if k.endswith("running_mean")]
    assert not torch.allclose(old[stats[0]].float(), new[stats[0]])
    assert len(Engine.load(copy).members) == 1

"""Teachers' soft labels (training/distill.py): one teacher or the weighted average of several,
on the configured sources only, from a per-teacher logits cache that survives a kill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import lesion_like, save_image
from dermalens.core.taxonomy import DX_CODES
from dermalens.data.records import Record
from dermalens.inference.probabilities import softmax
from dermalens.training import distill as module
from dermalens.training.config import DistillConfig
from dermalens.training.distill import soft_labels, teacher_logits


def _records(folder: Path, n: int, ham: int) -> list[Record]:
    return [
        Record(save_image(folder / f"{i}.png", lesion_like(i, (64, 48)), "PNG"), "nv", f"g{i}", f"img{i}",
               source="ham10000" if i < ham else "bcn")
        for i in range(n)
    ]  # fmt: skip


def _no_teacher(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the teacher ran again")


def test_soft_labels_come_from_the_teacher_on_its_sources_only(tmp_path: Path, tiny_artifact):
    records, classes = _records(tmp_path, 6, ham=4), list(DX_CODES)
    soft = soft_labels(
        DistillConfig(teacher=str(tiny_artifact), sources=["ham10000"]), records, classes, tmp_path
    )
    assert soft is not None and soft.shape == (6, len(classes))
    assert np.allclose(soft[:4].sum(axis=1), 1.0, atol=1e-5) and not soft[4:].any()
    assert soft_labels(DistillConfig(), records, classes, tmp_path) is None
    with pytest.raises(ValueError, match="match none"):
        soft_labels(DistillConfig(teacher=str(tiny_artifact), sources=["msk"]), records, classes, tmp_path)


def test_cached_logits_serve_every_temperature_without_running_the_teacher_again(
    tmp_path: Path, tiny_artifact, monkeypatch
):
    records, classes = _records(tmp_path, 4, ham=4), list(DX_CODES)
    cool = soft_labels(DistillConfig(teacher=str(tiny_artifact), temperature=2.0), records, classes, tmp_path)
    monkeypatch.setattr(module, "_compute", _no_teacher)
    hot = soft_labels(DistillConfig(teacher=str(tiny_artifact), temperature=8.0), records, classes, tmp_path)
    assert cool is not None and hot is not None and hot.max() < cool.max()  # flatter, from the same logits


def test_several_teachers_are_averaged_with_their_weights(tmp_path: Path, tiny_artifact, tiny_artifact_other):
    records, classes = _records(tmp_path, 3, ham=3), list(DX_CODES)
    a = teacher_logits(str(tiny_artifact), records, classes, tmp_path)
    b = teacher_logits(str(tiny_artifact_other), records, classes, tmp_path)
    mixed = DistillConfig(teacher=[str(tiny_artifact), str(tiny_artifact_other)], teacher_weights=[3.0, 1.0])
    soft = soft_labels(mixed, records, classes, tmp_path)
    expected = [
        (3 * softmax(a[r.image_id][None], 2.0) + softmax(b[r.image_id][None], 2.0))[0] / 4 for r in records
    ]
    assert soft is not None and np.allclose(soft, np.stack(expected), atol=1e-6)
    assert not np.allclose(a[records[0].image_id], b[records[0].image_id])  # two different teachers
    with pytest.raises(ValueError, match="one per teacher"):
        soft_labels(DistillConfig(teacher=mixed.teacher, teacher_weights=[1.0]), records, classes, tmp_path)


def test_a_killed_cache_job_resumes_with_the_images_it_had_not_reached(
    tmp_path: Path, tiny_artifact, monkeypatch
):
    records, classes = _records(tmp_path, 5, ham=5), list(DX_CODES)
    monkeypatch.setattr(module, "CHUNK", 2)

    def killed(done: int, total: int) -> None:
        raise KeyboardInterrupt  # after the first part file is written

    with pytest.raises(KeyboardInterrupt):
        teacher_logits(str(tiny_artifact), records, classes, tmp_path, on_chunk=killed)
    assert len(list(tmp_path.rglob("part-*.npz"))) == 1
    seen: list[tuple[int, int]] = []
    logits = teacher_logits(
        str(tiny_artifact), records, classes, tmp_path, on_chunk=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (3, 3) and set(logits) == {
        r.image_id for r in records
    }  # only the 3 it had not reached
    fresh = teacher_logits(str(tiny_artifact), records, classes, tmp_path / "fresh")
    assert all(np.allclose(logits[k], fresh[k], atol=1e-5) for k in fresh)


def test_a_teacher_labels_only_its_own_sources(tmp_path: Path, tiny_artifact, tiny_artifact_other):
    records, classes = _records(tmp_path, 4, ham=2), list(DX_CODES)  # 2 HAM10000, 2 BCN
    a = teacher_logits(str(tiny_artifact), records, classes, tmp_path)
    b = teacher_logits(str(tiny_artifact_other), records, classes, tmp_path)
    distill = DistillConfig(
        teacher=[str(tiny_artifact), str(tiny_artifact_other)],
        sources=["ham10000", "bcn"],
        teacher_sources=[["ham10000", "bcn"], ["ham10000"]],
    )
    soft = soft_labels(distill, records, classes, tmp_path)
    both = [
        (softmax(a[r.image_id][None], 2.0) + softmax(b[r.image_id][None], 2.0))[0] / 2 for r in records[:2]
    ]
    alone = [softmax(a[r.image_id][None], 2.0)[0] for r in records[2:]]
    assert soft is not None and np.allclose(soft, np.stack(both + alone), atol=1e-6)
    with pytest.raises(ValueError, match="lists for 2 teachers"):
        soft_labels(
            DistillConfig(teacher=distill.teacher, teacher_sources=[["bcn"]]), records, classes, tmp_path
        )


def test_an_ensemble_teacher_teaches_its_averaged_probabilities_under_its_own_key(
    tmp_path: Path, hand_ensemble, tiny_artifact
):
    """What the ensemble serves (its members' calibrated probabilities averaged), cached apart from
    its primary network's raw logits."""
    from dermalens.inference.engine import Engine

    records, classes = _records(tmp_path, 3, ham=3), list(DX_CODES)
    taught = teacher_logits(hand_ensemble, records, classes, tmp_path / "cache")
    served = Engine.load(hand_ensemble).run([r.path for r in records], ids=[r.image_id for r in records])
    rows = np.stack([taught[i] for i in served.combined.image_ids])
    assert np.allclose(softmax(rows, 1.0), served.combined.probs, atol=1e-5)
    alone = teacher_logits(tiny_artifact, records, classes, tmp_path / "cache")
    assert not np.allclose(rows, np.stack([alone[i] for i in served.combined.image_ids]), atol=1e-3)
    keys = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(keys) == 2 and keys[0].startswith("hand-") and "-ensemble-" in keys[0]

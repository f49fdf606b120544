from collections import Counter

import numpy as np
from PIL import Image

from conftest import save_image
from dermalens.data.duplicates import find_duplicates
from dermalens.data.records import Dataset, Record
from dermalens.data.splits import Split, kfold_dataset, split_dataset


def _dataset(n_groups=300):
    records = []
    labels = ["nv"] * 6 + ["mel", "bkl", "bcc", "akiec"]
    for g in range(n_groups):
        for k in range(1 + g % 3):  # 1-3 images per lesion
            records.append(
                Record(path=None, label=labels[g % len(labels)], group=f"L{g}", image_id=f"I{g}_{k}")
            )  # type: ignore[arg-type]
    return Dataset("csv", None, records)  # type: ignore[arg-type]


def _assert_no_group_in_two_splits(dataset, split):
    where = {}
    for r in dataset.records:
        assert where.setdefault(r.group, split.assignments[r.image_id]) == split.assignments[r.image_id], (
            r.group
        )


def test_grouped_stratified_split_is_seeded_and_leak_free(tmp_path):
    ds = _dataset()
    split = split_dataset(ds, val=0.15, test=0.15, seed=3)
    _assert_no_group_in_two_splits(ds, split)
    sizes = Counter(split.assignments.values())
    assert 0.1 < sizes["test"] / len(ds.records) < 0.2 and 0.1 < sizes["val"] / len(ds.records) < 0.2
    for name in ("train", "val", "test"):
        labels = Counter(r.label for r in ds.records if split.assignments[r.image_id] == name)
        assert set(labels) == {"nv", "mel", "bkl", "bcc", "akiec"}
    assert split_dataset(ds, seed=3).assignments == split.assignments
    assert split_dataset(ds, seed=4).assignments != split.assignments
    split.save(tmp_path / "s.json")
    assert Split.load(tmp_path / "s.json").assignments == split.assignments


def test_linked_pairs_land_in_one_split():
    ds = _dataset()
    links = [(f"I{g}_0", f"I{g + 1}_0") for g in range(0, 60, 2)]
    split = split_dataset(ds, seed=0, linked_pairs=links)
    for a, b in links:
        assert split.assignments[a] == split.assignments[b]


def test_kfold_is_leak_free():
    ds = _dataset()
    split = kfold_dataset(ds, k=5, seed=1)
    assert split.names() == [f"fold{i}" for i in range(5)]
    _assert_no_group_in_two_splits(ds, split)


def _textured(seed: int) -> np.ndarray:
    """A photo-like image: a smooth random field (distinct per seed) plus sensor noise."""
    rng = np.random.default_rng(seed)
    field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        (200, 150), Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(field) + rng.normal(0, 3, (150, 200, 3)), 0, 255).astype(np.uint8)


def test_duplicates_exact_and_near(tmp_path):
    base = _textured(7)
    save_image(tmp_path / "a.png", base, "PNG")
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes())  # byte-identical
    tinted = (base * [1.1, 0.95, 0.9]).clip(0, 255).astype("uint8")  # same photo, other colour cast
    save_image(tmp_path / "c.jpg", tinted)
    save_image(tmp_path / "d.png", _textured(99), "PNG")  # another lesion
    report = find_duplicates({p.stem: p for p in sorted(tmp_path.iterdir())})
    assert [(p.a, p.b) for p in report.exact()] == [("a", "b")]
    near = {(p.a, p.b) for p in report.near()}
    assert ("a", "c") in near and ("b", "c") in near
    assert not any("d" in pair for pair in near)
    assert report.across({"a": "train", "b": "train", "c": "test"}) != []

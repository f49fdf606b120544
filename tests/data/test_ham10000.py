"""Checks on the real HAM10000 release (skipped with a message when it is not there)."""

import json
from pathlib import Path

import pytest

from dermalens.cli import main
from dermalens.data.duplicates import find_duplicates
from dermalens.data.readers import load_dataset
from dermalens.data.splits import Split

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ham(ham10000):
    return load_dataset(ham10000)


def test_summary_json(ham10000, capsys):
    assert main(["data", "summary", str(ham10000), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == 10015 and summary["n_groups"] == 7470
    assert summary["counts"] == {
        "akiec": 327,
        "bcc": 514,
        "bkl": 1099,
        "df": 115,
        "mel": 1113,
        "nv": 6705,
        "vasc": 142,
    }
    assert summary["binary_counts"] == {"benign": 8061, "malignant": 1954}
    assert summary["missing"] == [] and summary["unreadable"] == []


def test_duplicates_found(ham):
    report = find_duplicates({r.image_id: r.path for r in ham.records})
    exact = {(p.a, p.b) for p in report.exact()}
    assert {("ISIC_0024366", "ISIC_0029861"), ("ISIC_0024777", "ISIC_0029938")} <= exact
    groups = {r.image_id: r.group for r in ham.records}
    cross = {(p.a, p.b) for p in report.pairs if groups[p.a] != groups[p.b]}
    assert cross == {("ISIC_0025226", "ISIC_0030074")}


def test_committed_split_has_no_leak(ham):
    split = Split.load(Path(__file__).resolve().parents[2] / "configs/splits/ham10000-seed0.json")
    groups = {r.image_id: r.group for r in ham.records}
    assert set(split.assignments) == set(groups)
    where: dict[str, str] = {}
    for image_id, name in split.assignments.items():
        assert where.setdefault(groups[image_id], name) == name
    assert split.assignments["ISIC_0025226"] == split.assignments["ISIC_0030074"]

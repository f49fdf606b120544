"""The registry of model kinds (issue #30): `artifact.json` states its kind; artifacts from before
the field are read by inferring it once; an unknown kind is an error naming the registered ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermalens.artifact.kinds import KINDS, infer_kind, model_kind, register_kind
from dermalens.artifact.meta import META_FILE, ArtifactError, ArtifactMeta
from dermalens.artifact.store import SOURCE_DIR, load_meta
from dermalens.artifact.write import writable_copy, write_meta


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_registered_kind_says_what_it_is(name):
    kind = model_kind(name)
    assert kind.name == name and kind.description
    assert kind.network == (name != "baseline")


def test_the_bundled_model_states_its_kind():
    assert json.loads((SOURCE_DIR / META_FILE).read_text(encoding="utf-8"))["kind"] == "soup"
    assert load_meta(SOURCE_DIR)[1].model_kind.name == "soup"


def test_an_artifact_without_the_field_is_read_by_inference_and_written_with_it(tiny_artifact, tmp_path):
    folder = writable_copy(tiny_artifact, tmp_path / "old")
    data = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    del data["kind"]  # as artifacts were written before the field
    (folder / META_FILE).write_text(json.dumps(data), encoding="utf-8")
    _, meta = load_meta(folder)
    assert meta.kind == "network"
    write_meta(folder, meta)
    assert json.loads((folder / META_FILE).read_text(encoding="utf-8"))["kind"] == "network"


@pytest.mark.parametrize(
    ("architecture", "training", "kind"),
    [
        ("baseline-logreg", {}, "baseline"),
        ("baseline-svm-rbf", {}, "baseline"),
        ("imported", {}, "imported"),
        ("tf_efficientnet_lite0", {"notes": {"soup_of": [{"name": "a"}, {"name": "b"}]}}, "soup"),
        ("tf_efficientnet_lite0", {"notes": {}}, "network"),
    ],
)
def test_inference_from_what_old_artifacts_carry(architecture, training, kind):
    assert infer_kind(architecture, training) == kind
    meta = ArtifactMeta(name="x", architecture=architecture, classes=["nv"], malignant=[], training=training)
    assert meta.model_kind.name == kind


def test_an_unknown_kind_lists_the_registered_ones(tiny_artifact):
    data = load_meta(tiny_artifact)[1].to_dict()
    with pytest.raises(ArtifactError, match="unknown model kind 'hologram'; registered: baseline, imported"):
        ArtifactMeta.from_dict({**data, "kind": "hologram"})


def test_a_kind_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register_kind("network", network=True, description="again")


def test_runtime_and_trainer_ask_the_registry_not_the_name():
    """The string tests of kinds (``startswith("baseline")``) are gone from everywhere but
    `infer_kind`."""
    src = Path(__file__).resolve().parents[2] / "src" / "dermalens"
    found = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if 'startswith("baseline' in p.read_text(encoding="utf-8") and p.name != "kinds.py"
    ]
    assert found == []

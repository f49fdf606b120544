"""The bundled model and each committed candidate (models/candidates/NAME) on real data: it loads
without torch's help (every listed file's hash checked), predicts HAM10000 test images sensibly,
and its OOD gate refuses photos that are not dermoscopy. A candidate ships only what the ONNX
Runtime path needs, so that it stays measurable on data this project does not have."""

import numpy as np
import pytest

from dermalens import Classifier
from dermalens.artifact.store import BUNDLED_DIR
from dermalens.data.readers import load_dataset
from dermalens.data.splits import Split

pytestmark = pytest.mark.realdata


ARTIFACTS = [BUNDLED_DIR, *sorted(p for p in (BUNDLED_DIR.parent / "candidates").glob("*") if p.is_dir())]


@pytest.fixture(scope="module", params=ARTIFACTS, ids=[p.name for p in ARTIFACTS])
def bundled(request):
    return Classifier.load(request.param, runtime="onnx")


def test_card_fields(bundled):
    meta = bundled.meta
    assert meta.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert meta.malignant == ["akiec", "bcc", "mel"]
    assert 0 < meta.threshold < 1 and meta.temperature > 0 and meta.ood_threshold
    assert "CC BY-NC" in meta.license and (bundled.members[0].folder / "MODEL_CARD.md").is_file()


def test_test_split_sample_is_well_ranked_and_accepted(bundled, ham10000):
    from sklearn.metrics import roc_auc_score

    test_ids = Split.load(BUNDLED_DIR.parents[1] / "configs/splits/ham10000-seed0.json").ids("test")
    records = [r for r in load_dataset(ham10000, verify=False).records if r.image_id in test_ids][::6]
    results = bundled.predict([r.path for r in records])
    truth = np.array([r.binary == "malignant" for r in records])
    scores = np.array([p.p_malignant for p in results])
    assert roc_auc_score(truth, scores) > 0.8
    assert np.mean([p.ood for p in results]) < 0.05


def test_natural_photos_are_refused(bundled):
    from skimage import data

    photos = [
        data.chelsea(),
        data.coffee(),
        data.astronaut(),
        data.rocket(),
        data.page(),
        data.retina(),  # a fundus photo: only the gate's mid-level part refuses it
        np.zeros((100, 100, 3), np.uint8),
    ]
    assert all(p.ood for p in bundled.predict(photos))

"""The model card of an ensemble artifact: it says it is one, names its members, and states the
ensemble's own threshold and decision rule."""

from __future__ import annotations

from pathlib import Path

from dermalens.artifact.store import load_meta
from dermalens.inference.predictor import Classifier
from dermalens.server.modelcard import model_card
from dermalens.server.schemas import ModelCard
from dermalens.server.settings import ServerSettings

from .conftest import start_server


def test_the_card_of_an_ensemble_artifact(hand_ensemble: Path) -> None:
    classifier = Classifier.load(hand_ensemble)
    card = ModelCard(**model_card(classifier, ServerSettings()))
    assert card.members == 2 and card.member_names == ["hand", "tiny-other"]
    assert card.ensemble.startswith("an ensemble artifact of 2 networks (hand, tiny-other)")
    assert "the first member's OOD gate refuses" in card.ensemble
    assert card.threshold == 0.2 and card.threshold_rule == "by hand"
    assert card.prediction_sets == "none (not fitted for this model)"


def test_the_card_of_one_model_is_as_before(tiny_artifact: Path) -> None:
    classifier = Classifier.load(tiny_artifact)
    card = ModelCard(**model_card(classifier, ServerSettings()))
    _, meta = load_meta(tiny_artifact)
    assert card.ensemble == "" and card.member_names == [meta.name]
    assert card.threshold == meta.threshold and card.threshold_rule == meta.threshold_rule


def test_the_about_page_names_the_ensemble_s_networks(hand_ensemble: Path, tmp_path: Path) -> None:
    live = start_server(ServerSettings(models=[hand_ensemble], log_db=tmp_path / "log.db"))
    try:
        with live.client() as http:
            page = http.get("/about")
    finally:
        live.stop()
    assert page.status_code == 200
    assert "an ensemble artifact of 2 networks (hand, tiny-other)" in page.text

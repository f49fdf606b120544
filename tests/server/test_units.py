"""Server helpers without a server: sniffing, labels from file names, languages, settings, CLI, heatmap."""

from __future__ import annotations

import argparse
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from dermalens.commands.serve import register, settings_from_args
from dermalens.core.formats import describe, sniff
from dermalens.core.taxonomy import DIAGNOSES, label_from_filename
from dermalens.inference.overlay import heatmap_rgba
from dermalens.server.i18n import choose_language, parse_accept_language, translations
from dermalens.server.log import SCHEMA_VERSION
from dermalens.server.settings import LANGUAGES, ServerSettings

from .samples import jpeg, png


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (jpeg(0), "JPEG"),
        (png(0), "PNG"),
        (b"GIF89a....", "GIF"),
        (b"II*\0rest", "TIFF"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "WEBP"),
        (b"BM" + b"\0" * 12 + (40).to_bytes(4, "little"), "BMP"),
        (b"BMW", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_sniff(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"%PDF-1.4", "PDF"),
        (b"\xef\xbb\xbf  <svg xmlns='x'/>", "SVG"),
        (b"<!DOCTYPE html>", "HTML"),
        (b"\0\0\0\x1cftypheic", "HEIC"),
        (b"\0\0\0\x1cftypavif", "AVIF"),
        (b"hello", "text"),
        (b"\x00\x01\x02\x03\xff", "binary"),
        ("日本語のテキスト".encode(), "text"),
    ],
)
def test_describe_names_what_a_file_is(data: bytes, words: str) -> None:
    assert words in describe(data)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("sample_3_malignant_mel.jpg", "mel"),
        ("case-12-NV.png", "nv"),
        ("basal_cell_carcinoma_01.jpg", "bcc"),
        ("lesion benign.jpeg", "benign"),
        ("x_malignant.jpg", "malignant"),
        ("ISIC_0024306.jpg", None),
        ("img_1.jpg", None),  # a number is not a label
        ("mel_vs_nv.jpg", None),  # two diagnoses: ambiguous
        ("C:\\photos\\df_2.jpg", "df"),
        ("", None),
    ],
)
def test_label_from_filename(name: str, label: str | None) -> None:
    assert label_from_filename(name) == label


def test_translations_are_complete_and_never_list_new_classes() -> None:
    folder = resources.files("dermalens.server") / "translations"
    english = json.loads((folder / "en.json").read_text(encoding="utf-8"))
    for lang in LANGUAGES:
        own = json.loads((folder / f"{lang}.json").read_text(encoding="utf-8"))
        assert not any(k.startswith("dx.") for k in english), "English names come from taxonomy"
        assert {k[3:] for k in own if k.startswith("dx.")} <= set(DIAGNOSES)
        assert set(translations(lang)) >= set(english) | {f"dx.{c}" for c in DIAGNOSES} | {"disclaimer"}
        if lang != "en":
            assert set(english) <= set(own), f"{lang} lacks {sorted(set(english) - set(own))}"
            assert {f"dx.{c}" for c in DIAGNOSES} <= set(own)
        placeholders = {k: sorted(set(_names(v))) for k, v in english.items()}
        assert {k: sorted(set(_names(v))) for k, v in own.items() if k in english} == {
            k: v for k, v in placeholders.items() if k in own
        }


def _names(text: str) -> list[str]:
    import re

    return re.findall(r"\{(\w+)\}", text)


def test_language_choice() -> None:
    assert parse_accept_language("ru-RU,ru;q=0.9,en-US;q=0.8") == ["ru", "ru", "en"]
    assert parse_accept_language("en;q=0.5, ko") == ["ko", "en"]
    assert choose_language(None, None, "fr-FR,ja;q=0.7,en;q=0.3") == "ja"
    assert choose_language(None, "ko", "ja") == "ko"
    assert choose_language("ru", "ko", "ja") == "ru"
    assert choose_language("xx", None, "de") == "en"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DERMALENS_MODELS", json.dumps([str(tmp_path / "a"), str(tmp_path / "b")]))
    monkeypatch.setenv("DERMALENS_MAX_FILES", "5")
    monkeypatch.setenv("DERMALENS_LOG_DB", "off")
    monkeypatch.setenv("DERMALENS_MODEL", "/somewhere/else")  # the bundled-model override: ignored here
    settings = ServerSettings()
    assert settings.model_arg() == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert settings.max_files == 5 and settings.log_db is None
    assert ServerSettings(models=[]).model_arg() is None
    with pytest.raises(ValueError):
        ServerSettings(tta=9)


def test_serve_command_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DERMALENS_PORT", "9000")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "serve",
            "--model",
            "m1",
            "m2",
            "--model",
            "m3",
            "--tta",
            "4",
            "--log-db",
            str(tmp_path / "x.db"),
            "--store-images",
            str(tmp_path / "img"),
        ]
    )
    settings = settings_from_args(args)
    assert [p.name for p in settings.models] == ["m1", "m2", "m3"]
    assert settings.port == 9000 and settings.host == "127.0.0.1" and settings.tta == 4
    assert settings.log_db == tmp_path / "x.db" and settings.store_images == tmp_path / "img"
    assert settings.log_target() == tmp_path / "x.db" and settings.workers == 1
    assert args.func.__name__ == "run_serve"
    url = "postgresql://u:secret@db.example/logs"
    args = parser.parse_args(["serve", "--log-url", url, "--workers", "2", "--concurrent-batches", "2"])
    settings = settings_from_args(args)
    assert settings.log_target() == url and settings.workers == 2 and settings.concurrent_batches == 2
    assert settings.ort_threads() == max(1, (os.cpu_count() or 1) // 2)  # the cores shared out
    assert settings_from_args(parser.parse_args(["serve", "--threads", "3"])).ort_threads() == 3
    with pytest.raises(ValueError, match="unsupported log database"):
        settings_from_args(parser.parse_args(["serve", "--log-url", "oracle://x/y"]))


def test_worker_processes_rebuild_the_same_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`serve --workers N` hands the settings to its processes through the environment."""
    given = ServerSettings(
        models=[tmp_path / "a", tmp_path / "b"], log_url="postgresql://u@h/db", store_images=None, workers=3
    )
    for name, value in given.to_environment().items():
        monkeypatch.setenv(name, value)
    assert ServerSettings() == given


def test_migrate_log_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dermalens.cli import main

    assert main(["migrate-log", "--log-db", str(tmp_path / "new.db")]) == 0
    assert main(["migrate-log", "--log-url", f"sqlite:///{tmp_path / 'new.db'}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"new log, schema version {SCHEMA_VERSION}")
    assert out[1].endswith(f"already at schema version {SCHEMA_VERSION}")


def test_heatmap_colours() -> None:
    rgba = heatmap_rgba(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32))
    assert rgba.shape == (1, 4, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] == 0 and rgba[0, 2, 3] >= 180  # nothing → transparent, strongest → most opaque
    assert tuple(rgba[0, 2, :3]) == (255, 0, 0)


def test_a_log_database_that_is_down_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    from dermalens.cli import main

    assert main(["migrate-log", "--log-url", "postgresql://nobody:secret@127.0.0.1:1/none"]) == 2
    error = capsys.readouterr().err
    assert "cannot open the prediction log postgresql+psycopg://nobody:***@127.0.0.1:1/none" in error
    assert "secret" not in error and "Traceback" not in error


def test_the_api_schema_is_the_result_type() -> None:
    """One definition of a result's fields (`Prediction`): the API's image schema is it (plus the
    upload's PNG), its JSON form rounds, and the flat row (CSV, Parquet) flattens the same fields."""
    from dermalens.inference.results import Prediction
    from dermalens.inference.rows import result_columns
    from dermalens.server.schemas import ImageResult

    probs = {"nv": 0.7, "mel": 0.3000001234}
    result = Prediction.decided(
        probabilities=probs,
        p_malignant=0.3000001234,
        top_class="nv",
        decision="benign",
        threshold=0.5,
        ood=False,
        ood_score=0.2,
        ranked_set=None,
        coverage=None,
    )
    assert issubclass(ImageResult, Prediction)
    assert set(ImageResult.model_fields) - set(Prediction.model_fields) == {"heatmap_png"}
    dumped = result.model_dump(mode="json")
    assert list(dumped) == [f for f in Prediction.model_fields if f not in ("heatmap", "image")]
    assert dumped["p_malignant"] == 0.3 and dumped["prediction_name"] == "Melanocytic nevus"
    flat = result.flat()
    assert list(flat)[: len(result_columns(list(probs)))] == result_columns(list(probs))
    assert flat["p_mel"] == 0.3000001234  # full precision in the flat form
    assert {"threshold", "probabilities"} - set(flat) == {
        "threshold",
        "probabilities",
    }  # flattened / constant

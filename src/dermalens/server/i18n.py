"""Interface languages: translation files and choosing one per request.

The choice, in order: ``?lang=`` (the switch on the page), the ``dermalens_lang``
cookie the switch sets, the browser's ``Accept-Language`` (which mirrors
``navigator.language``), then English. Diagnosis names are keyed ``dx.<code>`` and
fall back to the English names in `dermalens.core.taxonomy`, so the class list itself is
never repeated in a translation file; the English disclaimer is `results.DISCLAIMER` itself.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from dermalens.core.taxonomy import DIAGNOSES
from dermalens.inference.results import DISCLAIMER
from dermalens.server.settings import LANGUAGES

COOKIE = "dermalens_lang"
DEFAULT = "en"


@cache
def translations(lang: str) -> dict[str, str]:
    """The flat key → text table of `lang` (English entries fill any gaps)."""
    if lang not in LANGUAGES:
        raise KeyError(f"unknown language {lang!r}; available: {', '.join(LANGUAGES)}")
    folder = resources.files("dermalens.server") / "translations"
    table: dict[str, str] = json.loads((folder / "en.json").read_text(encoding="utf-8"))
    base = {f"dx.{code}": d.name for code, d in DIAGNOSES.items()}
    table = {**base, "disclaimer": DISCLAIMER, **table}
    if lang != DEFAULT:
        table.update(json.loads((folder / f"{lang}.json").read_text(encoding="utf-8")))
    return table


def language_names() -> dict[str, str]:
    """Each language's name in itself, for the switch."""
    return {lang: translations(lang)["language.name"] for lang in LANGUAGES}


def parse_accept_language(header: str) -> list[str]:
    """Primary language subtags of an Accept-Language header, best first (``ja-JP;q=0.8`` → ``ja``)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, index, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    for candidate in (query, cookie):
        if candidate and candidate.lower() in LANGUAGES:
            return candidate.lower()
    for tag in parse_accept_language(accept_language or ""):
        if tag in LANGUAGES:
            return tag
    return DEFAULT


class Translator:
    """`t("key", n=3)` → the text in one language, formatted; unknown keys show the key."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.table = translations(lang)

    def __call__(self, key: str, **values: Any) -> str:
        text = self.table.get(key, key)
        for name, value in values.items():
            text = text.replace("{" + name + "}", str(value))
        return text

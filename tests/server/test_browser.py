"""The web page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; never
`playwright install`): upload, cards, heatmap toggle, CSV, languages, About, History, phone width."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from .conftest import LiveServer
from .samples import encode, jpeg, png

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def strings(lang: str) -> dict[str, str]:
    folder = resources.files("dermalens.server") / "translations"
    return json.loads((folder / f"{lang}.json").read_text(encoding="utf-8"))


def upload(name: str, data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


NOISE = encode(
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3)).astype(np.uint8)), "PNG"
)
FILES = [
    upload("case_1_malignant_mel.jpg", jpeg(31)),
    upload("case_2_nv.png", png(32), "image/png"),
    upload("ISIC_0000001.jpg", jpeg(33)),
    upload("noise_photo.png", NOISE, "image/png"),  # not a lesion: the OOD gate flags it
    upload("notes.jpg", b"this is a text file, not an image", "image/jpeg"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page_factory(browser: Any) -> Iterator[Any]:
    contexts = []

    def make(locale: str = "en-US", width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(
            locale=locale, viewport={"width": width, "height": height}, accept_downloads=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.js_errors = errors
        return page

    yield make
    for context in contexts:
        context.close()


def upload_all(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.set_input_files("#file-input", FILES)
    # Locator waits, not wait_for_function: the page's CSP (rightly) forbids the eval that needs.
    expect(page.locator(".card[data-state=done], .card[data-state=error]")).to_have_count(len(FILES))


def assert_not_blank(path: Path) -> None:
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    assert pixels.std() > 10, f"{path} looks blank (std {pixels.std():.1f})"


def test_predict_page_end_to_end(page_factory: Any, live_server: LiveServer) -> None:
    page = page_factory()
    upload_all(page, live_server)
    cards = page.locator(".card")
    assert cards.count() == len(FILES)
    done = page.locator(".card[data-state=done]")
    assert done.count() == 4
    assessed = page.locator(".card[data-state=done]:not([data-decision=refused])")
    assert assessed.count() == 3
    for i in range(3):
        card = assessed.nth(i)
        assert card.locator(".verdict").inner_text() in ("Malignant", "Benign")
        assert card.locator(".dx-bars li").count() == 7
        assert card.locator(".p-value").inner_text().endswith("%")
    mel = page.locator(".card", has_text="case_1_malignant_mel.jpg")
    assert mel.locator(".truth").count() == 1
    assert page.locator(".card", has_text="ISIC_0000001.jpg").locator(".truth").count() == 0
    # The noise image is refused: a neutral "Not assessed" card that says why and what to send,
    # no verdict, no diagnosis, no risk message; its figures only behind a closed toggle.
    noise = page.locator(".card", has_text="noise_photo.png")
    assert noise.get_attribute("data-decision") == "refused"
    assert noise.locator(".verdict").inner_text() == "Not assessed"
    assert noise.locator(".verdict.malignant, .verdict.benign, .warn.risk").count() == 0
    assert "dermoscopy" in noise.locator(".refused-why").inner_text()
    assert "send a dermoscopy image" in noise.inner_text()
    assert "Most likely diagnosis" not in noise.inner_text()
    assert noise.locator(".dx-bars").is_hidden()
    noise.locator("details.anyway summary").click()
    assert noise.locator(".dx-bars").is_visible() and noise.locator(".dx-bars li").count() == 7
    bad = page.locator(".card[data-state=error]")
    assert "notes.jpg" in bad.inner_text() and "not an accepted image" in bad.inner_text()
    if assessed.locator(".verdict.malignant").count():
        assert "dermatologist" in page.locator(".warn.risk").first.inner_text()
    # Statistics leave the refused image out of verdict counts and means.
    assert page.locator("[data-stat=refused] .value").inner_text() == "1"
    verdicts = assessed.locator(".verdict.malignant").count()
    assert page.locator("[data-stat=malignant] .value").inner_text() == str(verdicts)
    shown = [float(assessed.nth(i).locator(".p-value").inner_text().rstrip("%")) for i in range(3)]
    mean = float(page.locator("[data-stat=mean] .value").inner_text().rstrip("%"))
    assert abs(mean - sum(shown) / 3) < 0.2
    assert page.locator(".disclaimer-box").is_visible()
    assert "dermatologist" in page.locator(".disclaimer-box").inner_text()
    assert page.locator("[data-stat=accuracy]").is_visible()
    assert page.locator("[data-stat=errors] .value").inner_text() == "1"

    # Heatmap overlay: hidden, shown, hidden again; keyboard works too.
    toggle = mel.locator(".heat-toggle")
    heat = mel.locator("img.heat")
    assert heat.is_hidden() and toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    assert heat.is_visible() and toggle.get_attribute("aria-pressed") == "true"
    assert heat.get_attribute("src").startswith("data:image/png;base64,")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "predict.png"), full_page=True)
    assert_not_blank(ARTIFACTS / "predict.png")
    toggle.focus()
    page.keyboard.press("Enter")
    assert heat.is_hidden()

    # CSV: UTF-8 with BOM, one row per file, one probability column per class.
    with page.expect_download() as info:
        page.click("#csv-button")
    content = Path(info.value.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert [r["filename"] for r in rows] == [f["name"] for f in FILES]
    assert {f"p_{c}" for c in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")} <= set(rows[0])
    assert rows[0]["true_label"] == "mel" and rows[4]["status"] == "error"
    assert rows[3]["decision"] == "refused" and rows[3]["prediction"] == ""
    assert page.js_errors == []


def test_language_switch_keeps_results(page_factory: Any, live_server: LiveServer) -> None:
    page = page_factory()
    upload_all(page, live_server)
    verdict_before = page.locator(".card[data-state=done] .verdict").first.inner_text()
    for lang in ("ja", "ko", "ru", "en"):
        table = strings(lang)
        page.select_option("#lang-select", lang)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        assert page.locator("h1").inner_text() == table["predict.heading"]
        assert page.locator(".card").count() == len(FILES)  # results survive the switch
        verdicts = {table["verdict.malignant"], table["verdict.benign"]}
        assert page.locator(".card[data-state=done] .verdict").first.inner_text() in verdicts
        if lang == "ja":
            page.screenshot(path=str(ARTIFACTS / "predict-ja.png"))
    assert page.locator(".card[data-state=done] .verdict").first.inner_text() == verdict_before
    page.select_option("#lang-select", "ko")
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    page.goto(live_server.url + "/about")  # the choice is remembered (cookie)
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.locator("h1").inner_text() == strings("ko")["about.heading"]


def test_browser_language_is_the_default(page_factory: Any, live_server: LiveServer) -> None:
    page = page_factory(locale="ru-RU")
    page.goto(live_server.url + "/")
    assert page.locator("html").get_attribute("lang") == "ru"
    assert page.locator("h1").inner_text() == strings("ru")["predict.heading"]
    assert page.locator("#lang-select").input_value() == "ru"


def test_about_page_shows_model_card_and_disclaimer(page_factory: Any, live_server: LiveServer) -> None:
    page = page_factory()
    page.goto(live_server.url + "/about")
    text = page.locator("main").inner_text()
    assert "tf_efficientnet_lite0" in text and "tiny-test" in text
    assert "Not a medical device" in text
    assert page.locator(".class-list li").count() == 7
    assert page.locator(".class-list .tag.malignant").count() == 3


def test_history_page_filters_and_exports(page_factory: Any, live_server: LiveServer) -> None:
    with live_server.client() as http:
        files = {"files": ("history_browser_probe_df.jpg", jpeg(40), "image/jpeg")}
        assert http.post("/api/v1/predict", files=files).status_code == 200
    page = page_factory()
    page.goto(live_server.url + "/history")
    page.wait_for_selector("#history-table tbody tr")
    page.fill("#history-q", "history_browser_probe")
    page.click("#history-filter button[type=submit]")
    expect(page.locator("#history-table tbody tr")).to_have_count(1)
    row = page.locator("#history-table tbody tr").first.inner_text()
    assert "history_browser_probe_df.jpg" in row and "Dermatofibroma" in row
    assert "q=history_browser_probe" in page.locator("#history-csv").get_attribute("href")
    with page.expect_download() as info:
        page.click("#history-csv")
    content = Path(info.value.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and b"history_browser_probe_df.jpg" in content
    page.screenshot(path=str(ARTIFACTS / "history.png"))
    assert_not_blank(ARTIFACTS / "history.png")


def test_phone_width_and_accessibility(page_factory: Any, live_server: LiveServer) -> None:
    page = page_factory(width=375, height=740)
    upload_all(page, live_server)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"page is {overflow}px wider than a phone screen"
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, button, a')].filter((el) => {
            const label = el.getAttribute('aria-label') || (el.labels && el.labels.length);
            return !(label || el.textContent.trim());
        }).map((el) => el.outerHTML.slice(0, 80))"""
    )
    assert unlabeled == []
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    for _ in range(12):  # the file input is reachable by keyboard
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    assert page.evaluate("document.activeElement.id") == "file-input"
    page.screenshot(path=str(ARTIFACTS / "predict-phone.png"), full_page=True)
    assert_not_blank(ARTIFACTS / "predict-phone.png")


def test_patient_fields_are_labelled_and_sent(
    page_factory: Any, live_server: LiveServer, meta_server: LiveServer
) -> None:
    table = strings("en")
    page = page_factory(width=375, height=740)
    page.goto(live_server.url + "/")  # image-only model: the fields are there but disabled, with a hint
    for key, selector in (
        ("patient.age", "#patient-age"),
        ("patient.sex", "#patient-sex"),
        ("patient.site", "#patient-site"),
    ):
        field = page.get_by_label(table[key], exact=True)
        assert field.count() == 1 and field.evaluate("(el) => '#' + el.id") == selector
        assert field.is_disabled()
    assert page.locator("#patient-hint").inner_text() == table["patient.hint_unused"]
    assert page.locator("#patient-site option").count() == 7  # unknown + the six site groups

    page = page_factory()
    page.goto(meta_server.url + "/")  # a model that reads patient data
    assert page.locator("#patient-hint").inner_text() == table["patient.hint"]
    page.fill("#patient-age", "63")
    page.select_option("#patient-sex", "male")
    page.select_option("#patient-site", "torso")
    page.set_input_files("#file-input", [upload("meta_probe.jpg", jpeg(50))])
    expect(page.locator(".card[data-state=done]")).to_have_count(1)
    assert page.locator(".card .patient-read").inner_text() == "Patient data used: 63 years, Male, Torso"
    page.select_option("#lang-select", "ja")
    expect(page.locator("label[for=patient-sex]")).to_have_text(strings("ja")["patient.sex"])
    assert page.js_errors == []


def test_cards_show_a_row_per_model_when_several_are_loaded(
    page_factory: Any, ensemble_server: LiveServer
) -> None:
    page = page_factory()
    page.goto(ensemble_server.url + "/")
    page.set_input_files("#file-input", [FILES[0], FILES[3]])
    expect(page.locator(".card[data-state=done]")).to_have_count(2)
    lesion = page.locator(".card", has_text="case_1_malignant_mel.jpg")
    rows = lesion.locator("table.members tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(3)] == [
        "tiny-test",
        "tiny-other",
        "Ensemble (all models)",
    ]
    refused = page.locator(".card", has_text="noise_photo.png")
    assert refused.get_attribute("data-decision") == "refused"
    assert refused.locator("table.members").is_hidden()  # behind the closed "show anyway" toggle
    assert page.js_errors == []


@pytest.mark.realdata
def test_cards_show_the_prediction_set_in_words(
    page_factory: Any, sets_server: LiveServer, ham10000: Path, tmp_path: Path
) -> None:
    from dicom_files import write_dicom

    jpeg_file = ham10000 / "images" / "ISIC_0024306.jpg"
    dicom = write_dicom(tmp_path / "lesion.dcm", jpeg_file)
    page = page_factory()
    page.goto(sets_server.url + "/")
    files = [
        upload("lesion.jpg", jpeg_file.read_bytes()),
        upload("lesion.dcm", dicom.read_bytes(), "application/dicom"),
        upload("noise_photo.png", NOISE, "image/png"),
    ]
    page.set_input_files("#file-input", files)
    expect(page.locator(".card[data-state=done]")).to_have_count(3)
    words = strings("en")
    for name in ("lesion.jpg", "lesion.dcm"):
        card = page.locator(".card", has_text=name)
        box = card.locator(".prediction-set")
        assert box.inner_text().startswith(words["card.set"].replace("{pct}", "90%"))
        names = box.locator(".set-names").inner_text()
        size = int(box.get_attribute("data-size"))
        assert names and (names.count(" or ") == (1 if size > 1 else 0))
        assert "about 90 of every 100 images" in box.locator(".set-meaning").inner_text()
    refused = page.locator(".card", has_text="noise_photo.png")
    assert refused.get_attribute("data-decision") == "refused"
    assert refused.locator(".prediction-set").count() == 0
    assert not page.js_errors

"""The login in headless Chromium (issue #31): a server with tokens sends the page to its login
form; a wrong token is told so; the right one predicts (its POST carries the CSRF value), sees its
own history, and logs out. A form posted without the CSRF value is refused (403)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import test_browser as shared
from .access import bearer, make_tokens, predict, token_server
from .conftest import LiveServer
from .samples import jpeg

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = shared.CHROMIUM
#: The browser fixtures of the page tests (one Chromium per module, a context per page).
browser = shared.browser
page_factory = shared.page_factory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def login_server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    target = tmp_path_factory.mktemp("login") / "log.db"
    tokens = make_tokens(target, frank=False, grace=False)
    live = token_server(tiny_artifact, target)
    yield live, tokens
    live.stop()


def test_the_page_logs_in_predicts_and_logs_out(page_factory: Any, login_server) -> None:
    live, tokens = login_server
    with bearer(live, tokens["grace"]) as grace:
        assert predict(grace, "grace_only.jpg").status_code == 200
    page = page_factory()
    page.goto(live.url + "/history")
    expect(page).to_have_url(live.url + "/login?next=%2Fhistory")
    page.fill("#login-token", tokens["frank"][:-2] + "zz")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-failed")).to_be_visible()
    page.fill("#login-token", tokens["frank"])
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(live.url + "/history")
    expect(page.locator("#user-name")).to_have_text("frank")
    (session,) = [c for c in page.context.cookies() if c["name"] == "dermalens_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"  # no script reads it, no site sends it
    page.goto(live.url + "/")
    page.set_input_files("#file-input", [shared.upload("frank_lesion.jpg", jpeg(41))])
    expect(page.locator(".card[data-state=done]")).to_have_count(1)
    page.goto(live.url + "/history")
    expect(page.locator("#history-table tbody tr")).to_have_count(1)
    assert "frank_lesion.jpg" in page.locator("#history-table").inner_text()
    assert "grace_only.jpg" not in page.locator("#history-table").inner_text()
    page.click("#logout")
    expect(page).to_have_url(live.url + "/login")
    page.goto(live.url + "/")
    expect(page).to_have_url(live.url + "/login?next=%2F")
    assert not page.js_errors


def test_forms_without_the_csrf_value_are_refused(login_server) -> None:
    live, tokens = login_server
    with httpx.Client(base_url=live.url, timeout=60) as http:
        http.get("/login")
        assert http.post("/login", data={"token": tokens["frank"]}).status_code == 403
        wrong = {"token": tokens["frank"], "csrf": "guessed"}
        assert http.post("/login", data=wrong).status_code == 403
        form = {"token": tokens["frank"], "csrf": http.cookies["dermalens_login"], "next": "//evil.example/x"}
        done = http.post("/login", data=form, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/"  # no open redirect
        assert http.get("/api/v1/history").status_code == 200  # the session cookie alone reads
        files = {"files": ("a.jpg", jpeg(1), "image/jpeg")}
        refused = http.post("/api/v1/predict", files=files)
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        assert http.post("/logout", data={}).status_code == 403
        forged = http.cookies["dermalens_session"].replace("a", "b", 1)
        http.cookies.set("dermalens_session", forged)
        assert http.get("/api/v1/history").status_code == 401

"""Tokens on a real server, on SQLite and on a real PostgreSQL (issue #31): without a valid token
every route but health and static files answers 401; each user sees their own history, an admin
everyone's; revoking works at once; bad input answers as before; limits answer 429."""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dermalens.server.log import PredictionLog
from dermalens.server.tokens import TokenStore

from .access import bearer, make_tokens, predict, token_server
from .conftest import TEST_MAX_BYTES, LiveServer
from .samples import jpeg

PROTECTED = ["/api/v1/history", "/api/v1/history.csv", "/api/v1/model", "/openapi.json"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str], str | Path]]:
    """A server whose log holds tokens for alice, bob, carol (to be revoked) and root (admin)."""
    if request.param == "sqlite":
        target: str | Path = tmp_path_factory.mktemp("auth") / "log.db"
    else:
        target = request.getfixturevalue("postgres").database()
    tokens = make_tokens(target, alice=False, bob=False, carol=False, root=True)
    live = token_server(tiny_artifact, target)
    yield live, tokens, target
    live.stop()


def test_no_or_wrong_token_is_401_on_every_route_but_health(served) -> None:
    live, tokens, _ = served
    with live.client() as http:
        assert http.get("/api/v1/health").status_code == 200
        assert http.get("/static/app.css").status_code == 200
        answers = [predict(http, "a.jpg"), *(http.get(path) for path in PROTECTED)]
        for wrong in ("Bearer nope", "Bearer dl_000000000000_" + "x" * 43, "Basic YWxpY2U6cHc=", "Bearer"):
            answers.append(http.get("/api/v1/history", headers={"Authorization": wrong}))
        forged = tokens["alice"][:-4] + "AAAA"  # a real key with a wrong secret: scrypt says no
        answers.append(http.get("/api/v1/model", headers={"Authorization": f"Bearer {forged}"}))
        for response in answers:
            assert response.status_code == 401, response.text
            assert response.json()["detail"] and response.headers["www-authenticate"].startswith("Bearer")
        page = http.get("/history", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fhistory"
        assert http.get("/docs", follow_redirects=False).status_code == 303


def test_an_upload_without_a_token_is_refused_before_its_body_is_read(served) -> None:
    live, _, _ = served
    with live.client() as http:
        big = {"files": ("big.jpg", b"\xff\xd8" + b"0" * (TEST_MAX_BYTES + 10), "image/jpeg")}
        response = http.post("/api/v1/predict", files=big)
    assert response.status_code == 401  # not 413: nothing of it was parsed


def test_each_user_sees_their_own_rows_and_an_admin_all(served) -> None:
    live, tokens, _ = served
    with bearer(live, tokens["alice"]) as alice, bearer(live, tokens["bob"]) as bob:
        assert predict(alice, "alice_1.jpg").status_code == 200
        assert predict(alice, "alice_2.jpg", 2).status_code == 200
        assert predict(bob, "bob_1.jpg", 3).status_code == 200
        mine = alice.get("/api/v1/history", params={"limit": 1000}).json()
        assert {r["filename"] for r in mine["rows"]} == {"alice_1.jpg", "alice_2.jpg"}
        assert {r["user"] for r in mine["rows"]} == {"alice"} and mine["total"] == 2
        # Searching for another's rows finds nothing, however the text is written.
        for q in ("bob", "' OR '1'='1", "%", "bob_1.jpg"):
            assert alice.get("/api/v1/history", params={"q": q}).json()["total"] == 0
        rows = list(csv.DictReader(io.StringIO(bob.get("/api/v1/history.csv").text.lstrip("\ufeff"))))
        assert [r["filename"] for r in rows] == ["bob_1.jpg"] and rows[0]["user"] == "bob"
    with bearer(live, tokens["root"]) as root:
        everyone = root.get("/api/v1/history", params={"limit": 1000}).json()["rows"]
        assert {"alice_1.jpg", "alice_2.jpg", "bob_1.jpg"} <= {r["filename"] for r in everyone}
        assert root.get("/api/v1/model").status_code == 200
        assert root.get("/openapi.json").status_code == 200


def test_a_revoked_token_is_refused_at_once(served) -> None:
    live, tokens, target = served
    with bearer(live, tokens["carol"]) as carol:
        assert carol.get("/api/v1/history").status_code == 200  # verified once: remembered
        prediction_log = PredictionLog(target)
        assert TokenStore(prediction_log).revoke("carol")
        prediction_log.close()
        response = carol.get("/api/v1/history")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_bad_input_answers_stay_as_they_are_with_a_token(served) -> None:
    live, tokens, _ = served
    with bearer(live, tokens["alice"]) as http:
        cases = [
            (http.post("/api/v1/predict", content=b"x", headers={"Content-Type": "text/plain"}), 415),
            (http.post("/api/v1/predict", files={"other": ("a.jpg", jpeg(1), "image/jpeg")}), 422),
            (http.post("/api/v1/predict", files={"files": ("n.jpg", b"not an image", "image/jpeg")}), 415),
            (http.post("/api/v1/predict", files={"files": ("e.jpg", b"", "image/jpeg")}), 422),
            (http.post("/api/v1/predict", files={"files": ("t.jpg", jpeg(1)[:300], "image/jpeg")}), 422),
            (http.post("/api/v1/predict", files={"files": ("a.jpg", jpeg(1))}, data={"tta": "9"}), 422),
            (http.get("/api/v1/history", params={"limit": "0"}), 422),
            (http.get("/api/v1/nothing"), 404),
            (http.delete("/api/v1/history"), 405),
        ]
        big = {"files": ("big.jpg", b"\xff\xd8" + b"0" * (TEST_MAX_BYTES + 10), "image/jpeg")}
        cases.append((http.post("/api/v1/predict", files=big), 413))
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["detail"]


def test_security_headers_on_every_answer(served) -> None:
    live, tokens, _ = served
    with bearer(live, tokens["alice"]) as http:
        answers = [
            http.get("/api/v1/health"),
            http.get("/api/v1/history"),
            http.get("/"),
            http.get("/static/app.css"),
            http.get("/api/v1/history", headers={"Authorization": "Bearer wrong"}),
            http.post("/api/v1/predict", content=b"x"),
        ]
    for response in answers:
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], response.url
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer" and headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in headers  # plain HTTP: no HSTS
    assert answers[1].headers["cache-control"] == "no-store"  # personal data is never cached


@pytest.fixture(scope="module")
def limited(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """A server allowing 5 requests a minute per token and one upload at a time per client; one
    token per test, so the uploads of one test never spend the other's budget."""
    target = tmp_path_factory.mktemp("limited") / "log.db"
    tokens = make_tokens(target, dana=False, erin=False)
    live = token_server(tiny_artifact, target, rate_limit=5, max_uploads_per_client=1)
    yield live, tokens
    live.stop()


def test_one_upload_at_a_time_per_client(limited) -> None:
    live, tokens = limited
    token = tokens["dana"]
    port = int(live.url.rsplit(":", 1)[1])
    head = (
        "POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\n--b\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
        slow.sendall(head.encode())  # in flight: its body is still coming
        time.sleep(0.5)  # on a busy machine the server may take a moment to read its head
        with bearer(live, token) as http:
            for _ in range(4):  # within the 5-a-minute budget: a 429 here can only be "at once"
                response = predict(http, "second.jpg")
                if response.status_code == 429:
                    break
    assert response.status_code == 429 and "at once" in response.json()["detail"]
    assert response.headers["retry-after"] == "1"


def test_the_rate_limit_answers_429_with_retry_after(limited) -> None:
    live, tokens = limited
    token = tokens["erin"]
    with bearer(live, token) as http:
        statuses = [http.get("/api/v1/model").status_code for _ in range(8)]
        last = http.get("/api/v1/model")
    assert 429 in statuses and statuses[0] == 200 and last.status_code == 429
    assert int(last.headers["retry-after"]) >= 1 and "per minute" in last.json()["detail"]
    with live.client() as anonymous:
        assert anonymous.get("/api/v1/health").status_code == 200  # health is never limited

"""Start-up rules and data protection (issue #31): a server reachable from the network refuses to
start without a token unless --no-auth says so (and warns); file names logged as a keyed hash;
rows past their retention purged."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dermalens.cli import main
from dermalens.server.auth import exposure_problem, is_loopback
from dermalens.server.log import PredictionLog, log_url
from dermalens.server.settings import ServerSettings

from .access import bearer, make_tokens, predict, token_server


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.5", False), ("clinic.example", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_network_host_without_a_token_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.db"
    assert main(["serve", "--host", "0.0.0.0", "--log-db", str(log)]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on '0.0.0.0'" in err and "dermalens token create NAME --admin" in err
    assert "--no-auth" in err
    assert main(["serve", "--host", "0.0.0.0", "--log-db", "off"]) == 2
    assert "the prediction log, which is off" in capsys.readouterr().err
    settings = ServerSettings(host="0.0.0.0", log_db=log)
    assert exposure_problem(settings, tokens_exist=True) is None
    assert exposure_problem(ServerSettings(host="0.0.0.0", log_db=log, no_auth=True), False) is None
    assert exposure_problem(ServerSettings(host="127.0.0.1", log_db=log), False) is None
    assert main(["serve", "--ssl-certfile", str(tmp_path / "c.pem"), "--log-db", str(log)]) == 2
    assert "--ssl-keyfile" in capsys.readouterr().err


def test_no_auth_opens_the_server_on_purpose_with_a_warning(
    tiny_artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_tokens(tmp_path / "log.db", henry=False)
    with caplog.at_level(logging.WARNING, logger="dermalens.server.app"):
        live = token_server(tiny_artifact, tmp_path / "log.db", no_auth=True)
    try:
        assert any("WITHOUT authentication" in r.getMessage() for r in caplog.records)
        with live.client() as http:
            assert http.get("/api/v1/history").status_code == 200
    finally:
        live.stop()


def test_file_names_can_be_logged_as_a_keyed_hash(tiny_artifact: Path, tmp_path: Path) -> None:
    target, key = tmp_path / "log.db", tmp_path / "keys" / "names.key"
    token = make_tokens(target, iris=False)["iris"]
    live = token_server(tiny_artifact, target, filename_key=key)
    try:
        with bearer(live, token) as http:
            answer = predict(http, "doe_jane_1961_back.jpg")
            assert answer.json()["results"][0]["filename"] == "doe_jane_1961_back.jpg"  # the caller's own
            (row,) = http.get("/api/v1/history").json()["rows"]
    finally:
        live.stop()
    assert row["filename"].startswith("hmac:") and len(row["filename"]) == 37
    assert key.stat().st_mode & 0o077 == 0  # the key file is its owner's only
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("log.db*"))  # the WAL file too
    assert b"doe_jane" not in stored and b"hmac:" in stored


def test_rows_past_their_retention_are_purged_at_start(tiny_artifact: Path, tmp_path: Path) -> None:
    target = tmp_path / "log.db"
    token = make_tokens(target, jack=False)["jack"]
    live = token_server(tiny_artifact, target)
    with bearer(live, token) as http:
        assert predict(http, "old.jpg").status_code == 200
        assert predict(http, "new.jpg").status_code == 200
    live.stop()
    engine = sa.create_engine(log_url(target))
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE predictions SET created = '2020-01-01T00:00:00+00:00' WHERE filename = 'old.jpg'")
        )
    engine.dispose()
    live = token_server(tiny_artifact, target, retention_days=30)
    try:
        prediction_log = PredictionLog(target)
        deadline = time.monotonic() + 30
        while prediction_log.count() != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r["filename"] for r in prediction_log.query()] == ["new.jpg"]
        prediction_log.close()
    finally:
        live.stop()


def test_the_first_token_closes_a_running_open_server(tiny_artifact: Path, tmp_path: Path) -> None:
    live = token_server(tiny_artifact, tmp_path / "log.db")
    try:
        with live.client() as http:
            assert http.get("/api/v1/history").status_code == 200  # loopback, no token: open as before
            token = make_tokens(tmp_path / "log.db", kate=True)["kate"]
            deadline = time.monotonic() + 20
            while http.get("/api/v1/history").status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert http.get("/api/v1/history").status_code == 401
        with bearer(live, token) as kate:
            assert kate.get("/api/v1/history").status_code == 200
    finally:
        live.stop()

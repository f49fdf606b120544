"""Bad input of many kinds: every answer is the documented status with a JSON detail saying what is
accepted; never a 500; and the server keeps serving good requests afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .conftest import TEST_MAX_BYTES, LiveServer
from .samples import jpeg, jpeg_claiming, png, png_bad_idat, png_bomb, png_header_only, tiny_png, zip_file

ACCEPTED = "JPEG, PNG"  # every file error names the accepted formats


def one(name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"files": {"files": (name, data, "application/octet-stream")}, **extra}


def labelled(labels: str | list[str]) -> dict[str, Any]:
    return {"files": {"files": ("a.jpg", GOOD_JPEG, "image/jpeg")}, "data": {"labels": labels}}


def with_form(**data: Any) -> dict[str, Any]:
    return {"files": {"files": ("ok.jpg", jpeg(0), "image/jpeg")}, "data": data}


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> tuple[bytes, str]:
    """A hand-written multipart body: (field, filename or None for a text field, content)."""
    chunks = []
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
        )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def raw(parts: list[tuple[str, str | None, bytes]]) -> dict[str, Any]:
    body, content_type = multipart(parts)
    return {"content": body, "headers": {"content-type": content_type}}


def chunked_oversize() -> dict[str, Any]:
    """More than max_bytes, streamed without a Content-Length (chunked transfer encoding)."""
    body, content_type = multipart([("files", "big.jpg", b"\xff\xd8\xff" + b"\0" * (TEST_MAX_BYTES + 1000))])

    def stream() -> Iterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    return {"content": stream(), "headers": {"content-type": content_type}}


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
GOOD_JPEG = jpeg(0)
BIG_JPEG = GOOD_JPEG + b"\0" * (TEST_MAX_BYTES // 24 - len(GOOD_JPEG))  # 21 of them fit under max_bytes

#: name → (request kwargs factory, expected status, text the detail must contain)
CASES: dict[str, tuple[Callable[[], dict[str, Any]], int, str]] = {
    "empty file": (lambda: one("empty.jpg", b""), 422, ACCEPTED),
    "plain text": (lambda: one("notes.txt", b"hello, this is not an image\n"), 415, ACCEPTED),
    "pdf": (lambda: one("scan.pdf", PDF), 415, "PDF"),
    "html": (lambda: one("page.html", b"<!DOCTYPE html><html><body>hi</body></html>"), 415, "HTML"),
    "svg": (lambda: one("drawing.svg", SVG), 415, "SVG"),
    "zip": (lambda: one("images.zip", zip_file()), 415, "ZIP"),
    "gzip": (lambda: one("x.gz", b"\x1f\x8b\x08\x00" + b"\0" * 40), 415, ACCEPTED),
    "heic": (lambda: one("iphone.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64), 415, "HEIC"),
    "photoshop": (lambda: one("art.psd", b"8BPS\0\x01" + b"\0" * 64), 415, ACCEPTED),
    "windows icon": (lambda: one("favicon.ico", b"\0\0\x01\0\x01\0" + b"\0" * 64), 415, ACCEPTED),
    "executable": (lambda: one("setup.jpg", b"MZ\x90\0" + b"\0" * 64), 415, ACCEPTED),
    "random bytes": (lambda: one("noise.jpg", bytes(range(7, 256)) * 4), 415, ACCEPTED),
    "json named .jpg": (lambda: one("photo.jpg", b'{"image": "no"}'), 415, ACCEPTED),
    "text starting BM": (lambda: one("bm.bmp", b"BMW is a car, not a bitmap"), 415, ACCEPTED),
    "truncated jpeg": (lambda: one("cut.jpg", GOOD_JPEG[: len(GOOD_JPEG) // 3]), 422, ACCEPTED),
    "truncated png": (lambda: one("cut.png", png(1)[:200]), 422, ACCEPTED),
    "corrupt jpeg header": (lambda: one("bad.jpg", b"\xff\xd8\xff\xe0" + b"\x13\x37" * 300), 422, ACCEPTED),
    "corrupt png header": (lambda: one("bad.png", b"\x89PNG\r\n\x1a\n" + b"garbage!" * 50), 422, ACCEPTED),
    "png with garbage pixels": (lambda: one("idat.png", png_bad_idat()), 422, ACCEPTED),
    "jpeg header only": (lambda: one("head.jpg", GOOD_JPEG[:600]), 422, ACCEPTED),
    "gif header only": (lambda: one("head.gif", b"GIF89a\x40\0\x30\0\0\0\0"), 422, ACCEPTED),
    "tiff garbage": (lambda: one("bad.tif", b"II*\0" + b"\xff" * 100), 422, ACCEPTED),
    "webp garbage": (lambda: one("bad.webp", b"RIFF\x40\0\0\0WEBPVP8 " + b"\0" * 60), 422, ACCEPTED),
    "1x1 image": (lambda: one("dot.png", tiny_png(1, 1)), 422, "8×8"),
    "4x100 image": (lambda: one("sliver.png", tiny_png(4, 100)), 422, "8×8"),
    "bomb png header": (lambda: one("bomb.png", png_header_only(50_000, 50_000)), 413, "pixels"),
    "bomb png real": (lambda: one("bomb2.png", png_bomb()), 413, "pixels"),
    "bomb jpeg header": (lambda: one("bomb.jpg", jpeg_claiming(65_000, 65_000)), 413, "pixels"),
    "too many files": (
        lambda: {"files": [("files", (f"{i}.jpg", GOOD_JPEG, "image/jpeg")) for i in range(21)]},
        413,
        "at most 20",
    ),
    "too many bytes": (lambda: one("huge.jpg", b"\xff\xd8\xff" + b"\0" * TEST_MAX_BYTES), 413, "at most"),
    "too many bytes, chunked": (chunked_oversize, 413, "at most"),
    "no files": (lambda: {"files": {"heatmap": (None, "true")}}, 422, "'files'"),
    "empty multipart": (lambda: raw([]), 422, "'files'"),
    "large non-multipart body": (  # answered before reading the body: the body is drained, no reset
        lambda: {
            "content": b"{" + b" " * (TEST_MAX_BYTES - 10_000) + b"}",
            "headers": {"content-type": "text/json"},
        },
        415,
        "multipart/form-data",
    ),
    "too many large files": (
        lambda: {"files": [("files", (f"{i}.jpg", BIG_JPEG, "image/jpeg")) for i in range(21)]},
        413,
        "at most 20",
    ),
    "json body": (lambda: {"json": {"files": ["a.jpg"]}}, 415, "multipart/form-data"),
    "urlencoded body": (lambda: {"data": {"files": "a.jpg"}}, 415, "multipart/form-data"),
    "no body": (lambda: {}, 415, "multipart/form-data"),
    "closing boundary cut off": (
        lambda: {
            "content": multipart([("files", "a.jpg", GOOD_JPEG)])[0][:-9],
            "headers": {"content-type": "multipart/form-data; boundary=XyZ"},
        },
        400,
        "cut off",
    ),
    "missing boundary": (
        lambda: {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
        400,
        "multipart",
    ),
    "threshold above 1": (lambda: with_form(threshold="1.5"), 422, "0 to 1"),
    "threshold not a number": (lambda: with_form(threshold="abc"), 422, "0 to 1"),
    "threshold nan": (lambda: with_form(threshold="nan"), 422, "0 to 1"),
    "tta zero": (lambda: with_form(tta="0"), 422, "1 to 8"),
    "tta too large": (lambda: with_form(tta="99"), 422, "1 to 8"),
    "tta not a number": (lambda: with_form(tta="two"), 422, "1 to 8"),
    "heatmap not a boolean": (lambda: with_form(heatmap="maybe"), 422, "true or false"),
    "wrong field name": (lambda: {"files": {"file": ("a.jpg", GOOD_JPEG, "image/jpeg")}}, 422, "'files'"),
    "files as text": (lambda: raw([("files", None, b"not a file")]), 422, "file uploads"),
    "unknown label": (lambda: labelled("freckle"), 422, "valid labels"),
    "labels count mismatch": (lambda: labelled(["mel", "nv"]), 422, "one label per file"),
    "option given twice": (
        lambda: raw([("files", "a.jpg", GOOD_JPEG), ("tta", None, b"1"), ("tta", None, b"2")]),
        422,
        "1 to 8",
    ),
}


@pytest.fixture(scope="module")
def answers(live_server: LiveServer) -> dict[str, httpx.Response]:
    """Every bad request, sent in turn to the one live server."""
    with live_server.client() as http:
        return {name: http.post("/api/v1/predict", **factory()) for name, (factory, _, _) in CASES.items()}


def test_there_are_at_least_30_kinds() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_answer(answers: dict[str, httpx.Response], name: str) -> None:
    _, status, accepted = CASES[name]
    response = answers[name]
    assert response.status_code == status, f"{name}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and accepted in detail, detail


def test_file_errors_name_the_file(answers: dict[str, httpx.Response]) -> None:
    body = answers["pdf"].json()
    assert body["detail"].startswith("scan.pdf:")
    assert body["errors"] == [
        {"filename": "scan.pdf", "status": 415, "kind": "unsupported", "detail": body["detail"]}
    ]


def test_one_bad_file_fails_the_whole_request(client: httpx.Client) -> None:
    files = [
        ("files", ("good.jpg", jpeg(1), "image/jpeg")),
        ("files", ("cut.png", png(2)[:150], "image/png")),
        ("files", ("dot.png", tiny_png(1, 1), "image/png")),
    ]
    response = client.post("/api/v1/predict", files=files)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("cut.png:") and "1 more" in body["detail"]
    assert [e["filename"] for e in body["errors"]] == ["cut.png", "dot.png"]


def test_content_type_stage_answers_before_decoding(client: httpx.Client) -> None:
    """A corrupt image and a PDF: the PDF is found without running the model, so its 415 answers."""
    files = [("files", ("cut.jpg", GOOD_JPEG[:300], "image/jpeg")), ("files", ("doc.pdf", PDF, "image/jpeg"))]
    response = client.post("/api/v1/predict", files=files)
    assert response.status_code == 415
    assert [e["filename"] for e in response.json()["errors"]] == ["doc.pdf"]


def test_other_routes_answer_json(client: httpx.Client) -> None:
    assert client.get("/api/v1/predict").status_code == 405
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and "/api/v1" in missing.json()["detail"]
    assert client.get("/i18n/xx.json").status_code == 404


def test_server_still_serves_after_bad_input(
    answers: dict[str, httpx.Response], client: httpx.Client
) -> None:
    assert len(answers) == len(CASES)
    response = client.post("/api/v1/predict", files={"files": ("after.jpg", jpeg(3), "image/jpeg")})
    assert response.status_code == 200, response.text
    assert client.get("/api/v1/health").json()["status"] == "ok"
    assert json.loads(client.get("/api/v1/model").text)["name"] == "tiny-test"


def _raw_http(server: LiveServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are on a socket (what httpx would refuse to send); parse the answer."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(server.url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_content_length_shorter_than_the_body_is_malformed(live_server: LiveServer) -> None:
    body, content_type = multipart([("files", "a.jpg", GOOD_JPEG)])
    head = (
        f"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body) - 40}\r\nConnection: close\r\n\r\n"
    )
    status, headers, answer = _raw_http(live_server, head.encode() + body)
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert "cut off" in json.loads(answer)["detail"]


def test_invalid_content_length_gets_a_json_400(live_server: LiveServer) -> None:
    request = b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    status, headers, answer = _raw_http(live_server, request)
    assert status == 400 and headers["content-type"] == "application/json"
    assert "malformed HTTP request" in json.loads(answer)["detail"]


def test_a_megabyte_query_string_gets_an_answer(live_server: LiveServer) -> None:
    request = (
        b"GET /api/v1/health?q=" + b"x" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    status, headers, answer = _raw_http(live_server, request)
    assert status == 414 and headers["content-type"] == "application/json"
    assert "too long" in json.loads(answer)["detail"]


def test_a_client_that_hangs_up_mid_upload_is_one_info_line(live_server: LiveServer, caplog) -> None:
    """Headers that promise 100 kB, half of it, then a closed socket: the server logs one info
    line, no traceback ("Exception in ASGI application"), and goes on serving."""
    import logging
    import socket
    import time

    where = httpx.URL(live_server.url)
    head = (
        b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    caplog.set_level(logging.INFO)
    with socket.create_connection((where.host, where.port), timeout=30) as sock:
        sock.sendall(head + b"--b\r\n" + b"x" * 50_000)
    deadline = time.time() + 20
    while time.time() < deadline and not any("client disconnected" in r.getMessage() for r in caplog.records):
        time.sleep(0.05)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    gone = [m for level, m in messages if "client disconnected" in m and level == logging.INFO]
    assert len(gone) == 1, messages
    assert not [m for level, m in messages if level >= logging.ERROR], messages
    with live_server.client() as client:
        assert client.get("/api/v1/health").status_code == 200

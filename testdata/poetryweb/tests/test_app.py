"""Tests run by `oxbuild assess` inside the test variant of the image."""

import json

from pyweb.app import app


def call(path):
    seen = {}

    def start_response(status, headers):
        seen["status"] = status

    body = b"".join(app({"PATH_INFO": path}, start_response))
    return seen["status"], json.loads(body)


def test_health():
    assert call("/health") == ("200 OK", {"status": "ok"})


def test_escapes_with_the_native_extension():
    status, body = call("/")
    assert status == "200 OK"
    assert body["escaped"] == "&lt;b&gt;oxbuild&lt;/b&gt;"
    assert body["native"] is True

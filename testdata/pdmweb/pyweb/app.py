"""Answers / with escaped HTML made by markupsafe's C extension, and /health."""

import json
import os

import markupsafe
from markupsafe import _speedups  # the native extension: fails if the wrong wheel was installed


def app(environ, start_response):
    if environ["PATH_INFO"] == "/health":
        body = {"status": "ok"}
    else:
        body = {
            "escaped": str(markupsafe.escape("<b>oxbuild</b>")),
            "native": _speedups.__file__.endswith(".so"),
            "uid": os.getuid(),
        }
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]

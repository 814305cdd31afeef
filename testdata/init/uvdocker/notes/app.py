"""A Flask notes app whose Dockerfile installs with uv."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return {"app": "uvdocker", "uid": os.getuid()}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}

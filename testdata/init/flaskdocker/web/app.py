"""A Flask app whose Dockerfile has two stages, an entrypoint script and a healthcheck."""

import os
from pathlib import Path

from flask import Flask

STATIC = Path(__file__).resolve().parent.parent / "static"
app = Flask(__name__, static_folder=str(STATIC))


@app.get("/")
def index():
    return {"app": "flaskdocker", "env": os.environ.get("APP_ENV", ""), "uid": os.getuid()}


@app.get("/health")
def health():
    return {"status": "ok"}

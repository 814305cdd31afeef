"""A Flask shop whose Dockerfile installs with Poetry."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return {"app": "poetrydocker", "uid": os.getuid()}


@app.get("/health")
def health():
    return {"status": "ok"}

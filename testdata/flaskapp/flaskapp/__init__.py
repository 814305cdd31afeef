"""A small Flask app that uses numpy."""

import numpy
from flask import Flask

app = Flask(__name__)


@app.get("/health")
def health():
    return {"ok": True, "sum": int(numpy.arange(4).sum())}

"""A Flask app whose answer needs pydantic and numpy."""

import numpy
from flask import Flask
from pydantic import BaseModel

app = Flask(__name__)


class Stats(BaseModel):
    mean: float
    count: int


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/")
def index():
    values = numpy.arange(10)
    return Stats(mean=float(values.mean()), count=int(values.size)).model_dump()

"""A FastAPI service under backend/app/, with no Dockerfile and no Procfile."""

import os

from fastapi import FastAPI

app = FastAPI(title="fastapibackend")


@app.get("/")
def index():
    return {"app": "fastapibackend", "uid": os.getuid()}


@app.get("/health")
def health():
    return {"status": "ok"}

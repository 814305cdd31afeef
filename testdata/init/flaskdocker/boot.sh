#!/bin/sh
# Starts the app as the Dockerfile's ENTRYPOINT does.
set -e
exec gunicorn --bind 0.0.0.0:5000 --workers 2 web.app:app

"""Serves / (a greeting with the process's uid) and /health on $PLAINWEB_PORT."""

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            # PLAINWEB_HEALTH=fail lets tests see an unhealthy app.
            if os.environ.get("PLAINWEB_HEALTH") == "fail":
                self.reply(500, {"status": "failing on purpose"})
            else:
                self.reply(200, {"status": "ok"})
        elif self.path == "/":
            self.reply(200, {"app": "plainweb", "uid": os.getuid()})
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("plainweb:", fmt % args, flush=True)


def main():
    # PLAINWEB_EXIT=N lets tests see an app that dies at start.
    if os.environ.get("PLAINWEB_EXIT"):
        print("plainweb: exiting at start, as PLAINWEB_EXIT asks", flush=True)
        sys.exit(int(os.environ["PLAINWEB_EXIT"]))
    # PLAINWEB_START_DELAY=SECONDS lets tests see an app that is slow to start.
    time.sleep(float(os.environ.get("PLAINWEB_START_DELAY", "0")))
    port = int(os.environ.get("PLAINWEB_PORT", "8000"))
    # As PID 1 in a container, Python ignores SIGTERM unless told otherwise.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # PLAINWEB_HOST=127.0.0.1 lets tests see an app that only its own container can reach.
    server = ThreadingHTTPServer((os.environ.get("PLAINWEB_HOST", "0.0.0.0"), port), Handler)
    print(f"plainweb: listening on :{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

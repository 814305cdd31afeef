#!/usr/bin/env python3
"""A counting reverse proxy in front of PyPI, for `scripts/bench lock`.

Each locker is pointed at http://127.0.0.1:PORT/simple/ once, so that the
requests it sends (pages, PEP 658 metadata, range requests, whole files,
conditional revalidations) can be counted the same way for every tool.
Files hosted on files.pythonhosted.org are served under /files/: absolute
links in pages are rewritten to come back through here.

  bench-countproxy.py PORTFILE   # writes the port it listens on, then serves
  GET /_count                    # the number of proxied requests so far
"""

import http.client
import os
import http.server
import sys
import threading

UPSTREAM = {"/simple/": ("pypi.org", "/simple/"), "/files/": ("files.pythonhosted.org", "/")}
PASS_UP = ["Accept", "Range", "If-None-Match", "If-Modified-Since", "User-Agent"]
PASS_DOWN = ["Content-Type", "ETag", "Cache-Control", "Last-Modified", "Content-Range", "Accept-Ranges", "Age"]

count = 0
lock = threading.Lock()
local = threading.local()


def upstream(host):
    conns = getattr(local, "conns", None)
    if conns is None:
        conns = local.conns = {}
    if host not in conns:
        conns[host] = http.client.HTTPSConnection(host, timeout=60)
    return conns[host]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        global count
        if self.path == "/_count":
            body = str(count).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        route = next(((p, u) for p, u in UPSTREAM.items() if self.path.startswith(p)), None)
        if route is None:
            self.send_error(404)
            return
        with lock:
            count += 1
        if os.environ.get("COUNTPROXY_LOG"):
            print(self.command, self.path, self.headers["Range"] or "", file=sys.stderr)
        prefix, (host, base) = route
        path = base + self.path[len(prefix):]
        headers = {h: self.headers[h] for h in PASS_UP if self.headers[h]}
        headers["Accept-Encoding"] = "identity"
        for attempt in range(2):
            try:
                conn = upstream(host)
                conn.request(self.command, path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                break
            except (http.client.HTTPException, OSError):
                local.conns.pop(host, None)
                if attempt:
                    raise
        if prefix == "/simple/" and resp.status == 200:
            me = f"http://{self.headers['Host']}/files/".encode()
            body = body.replace(b"https://files.pythonhosted.org/", me)
        self.send_response(resp.status)
        for h in PASS_DOWN:
            if resp.getheader(h):
                self.send_header(h, resp.getheader(h))
        # A HEAD answer has no body, but says how long the file is.
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()

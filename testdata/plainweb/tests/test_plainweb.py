"""Quality gate for plainweb, run by `oxbuild assess` in the test variant (stdlib unittest only)."""

import json
import threading
import unittest
import urllib.request
from http.server import ThreadingHTTPServer

from plainweb.__main__ import Handler


class PlainwebTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()

    def get(self, path):
        with urllib.request.urlopen(self.base + path) as r:
            return r.status, json.loads(r.read())

    def test_health(self):
        self.assertEqual(self.get("/health"), (200, {"status": "ok"}))

    def test_root_reports_a_non_root_uid(self):
        status, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertNotEqual(body["uid"], 0)


if __name__ == "__main__":
    unittest.main()

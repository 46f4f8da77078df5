"""A binary cache served over real HTTP on 127.0.0.1, with faults per path.

:class:`CacheServer` serves a directory (``nix copy --to file://...`` output) with
``http.server``'s threading server, honours ``Range`` (206), optionally lists the root as an
autoindex page and optionally requires basic auth. Faults are set per path after start:

* ``missing``: 404;
* ``truncate``: a Content-Length of the whole file, then only the first ``bytes`` and close,
  on every request;
* ``flaky``: the first ``times`` requests get 500, later ones the file;
* ``slow``: sleep ``seconds`` before answering;
* ``drop_once``: the first answer cut off after ``bytes``, later ones whole (Range works).

``hits`` counts requests per path, so tests can see the retries happen.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CacheServer:
    def __init__(self, root: str, *, listing: bool = False, auth: tuple[str, str] | None = None):
        self.root = root
        self.listing = listing
        self.auth = auth
        self.faults: dict[str, dict[str, Any]] = {}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._get(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def fault(self, path: str, kind: str, **params: Any) -> None:
        self.faults[path.lstrip("/")] = {"kind": kind, **params}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> CacheServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0].lstrip("/")
        with self._lock:
            self.hits[path] += 1
            n = self.hits[path]
        if self.auth is not None:
            want = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if h.headers.get("Authorization") != want:
                h.send_response(401)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
        fault = self.faults.get(path, {})
        kind = fault.get("kind")
        if kind == "slow":
            time.sleep(fault["seconds"])
        if kind == "missing":
            return self._status(h, 404)
        if kind == "flaky" and n <= fault["times"]:
            return self._status(h, 500)
        if path == "" and self.listing:
            names = sorted(os.listdir(self.root))
            body = "".join(f'<a href="{x}">{x}</a>\n' for x in names).encode()
            return self._send(h, 200, body, len(body))
        full = os.path.join(self.root, path)
        if not path or not os.path.isfile(full):
            return self._status(h, 404)
        with open(full, "rb") as f:
            data = f.read()
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
        body = data[start:]
        length = len(body)
        if kind == "truncate":
            body = body[: max(0, fault["bytes"] - start)]
        elif kind == "drop_once" and n == 1:
            body = body[: fault["bytes"]]
        code = 206 if start else 200
        self._send(h, code, body, length, start, len(data))
        if len(body) < length:
            h.close_connection = True

    def _status(self, h: BaseHTTPRequestHandler, code: int) -> None:
        h.send_response(code)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _send(
        self, h: BaseHTTPRequestHandler, code: int, body: bytes, length: int, start: int = 0,
        total: int = 0,
    ) -> None:  # fmt: skip
        h.send_response(code)
        h.send_header("Content-Length", str(length))
        if code == 206:
            h.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        if len(body) < length:
            h.send_header("Connection", "close")
        h.end_headers()
        try:
            h.wfile.write(body)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

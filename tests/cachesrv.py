"""A binary cache served over real HTTP on 127.0.0.1, with faults per path.

:class:`CacheServer` serves a directory (``nix copy --to file://...`` output) with
``http.server``'s threading server, honours ``Range`` (206), optionally lists the root as an
autoindex page and optionally requires basic auth. Faults are set per path after start:

* ``missing``: 404;
* ``status``: answer ``code`` (with ``Retry-After: retry_after`` when given), every time;
* ``truncate``: a Content-Length of the whole file, then only the first ``bytes`` and close,
  on every request;
* ``flaky``: the first ``times`` requests get ``code`` (500; ``retry_after`` as above), later
  ones the file;
* ``slow``: sleep ``seconds`` before answering;
* ``redirect``: 302 to the URL ``to``;
* ``drop_once``: the first answer cut off after ``bytes``, later ones whole (``Range`` is
  honoured with 206, or ignored with a whole 200 when ``ranges=False``).

``hits`` counts requests per path and ``headers`` keeps each request's headers (lower-case
names), so tests can see the retries happen and what was asked. :func:`moto_s3` runs moto's
S3-compatible server on 127.0.0.1 with throwaway credentials in the environment for as long as
it runs.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CacheServer:
    def __init__(self, root: str, *, listing: bool = False, auth: tuple[str, str] | None = None):
        self.root = root
        self.listing = listing
        self.auth = auth
        self.faults: dict[str, dict[str, Any]] = {}
        self.hits: Counter[str] = Counter()
        self.headers: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
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
            self.headers[path].append({k.lower(): v for k, v in h.headers.items()})
            n = self.hits[path]
        if self.auth is not None:
            want = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if h.headers.get("Authorization") != want:
                return self._status(h, 401)
        fault = self.faults.get(path, {})
        kind = fault.get("kind")
        if kind == "slow":
            time.sleep(fault["seconds"])
        if kind == "missing":
            return self._status(h, 404)
        if kind == "redirect":
            return self._status(h, 302, {"Location": fault["to"]})
        if kind == "status" or (kind == "flaky" and n <= fault["times"]):
            retry_after = fault.get("retry_after")
            extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return self._status(h, fault.get("code", 500), extra)
        if path == "" and self.listing:
            names = sorted(os.listdir(self.root))
            body = "".join(f'<a href="{x}">{x}</a>\n' for x in names).encode()
            return self._send(h, 200, body, len(body))
        return self._file(h, path, fault, n)

    def _file(self, h: BaseHTTPRequestHandler, path: str, fault: dict[str, Any], n: int) -> None:
        full = os.path.join(self.root, path)
        if not path or not os.path.isfile(full):
            return self._status(h, 404)
        with open(full, "rb") as f:
            data = f.read()
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-") and fault.get("ranges", True):
            start = int(rng[6:-1])
        body = data[start:]
        length = len(body)
        if fault.get("kind") == "truncate":
            body = body[: max(0, fault["bytes"] - start)]
        elif fault.get("kind") == "drop_once" and n == 1:
            body = body[: fault["bytes"]]
        code = 206 if start else 200
        self._send(h, code, body, length, start, len(data))
        if len(body) < length:
            h.close_connection = True
        return None

    def _status(
        self, h: BaseHTTPRequestHandler, code: int, extra: dict[str, str] | None = None
    ) -> None:
        h.send_response(code)
        h.send_header("Content-Length", "0")
        for k, v in (extra or {}).items():
            h.send_header(k, v)
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


# Only these are set, and the machine's own AWS files and instance metadata are kept out:
# botocore must find the dummy keys and never look further (no 169.254.169.254).
_MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAMOTOTESTKEY",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret-value",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
_MOTO_UNSET = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
)  # fmt: skip


@contextmanager
def aws_env(values: dict[str, str], unset: tuple[str, ...] = ()) -> Iterator[None]:
    """The environment with ``values`` set and ``unset`` removed, restored afterwards."""
    saved = {k: os.environ.get(k) for k in (*values, *unset)}
    try:
        for k in unset:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1 (its endpoint URL), with dummy credentials
    (:data:`_MOTO_ENV`) in the environment until it stops. ``ImportError`` without moto."""
    from moto.server import ThreadedMotoServer

    with aws_env(_MOTO_ENV, _MOTO_UNSET):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()

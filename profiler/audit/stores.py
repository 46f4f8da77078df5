"""Read-only access to a binary cache: a local directory, an HTTP(S) server, or S3.

A store lists its narinfos (:class:`Listed`), reads small objects whole (``read_bytes``) and
streams large ones (``open``), nothing else: the audit never writes. Remote requests are
bounded (a timeout), retried with exponential backoff and jitter on what can pass
(connection errors, timeouts, 429 and 5xx, ``Retry-After`` honoured up to a cap), rate-limited
by a token bucket shared by every request, and resumed with a ``Range`` request when a body
breaks off. A missing object is :class:`ObjectMissing`; anything else that does not pass is
:class:`StoreError`; both are one line naming the store and the key, never credentials
(``url`` is the display form: no user, password or secret query values).

URL forms follow Nix's store URIs: ``file://PATH`` or a bare directory;
``http(s)://host[:port][/prefix]``; ``s3://bucket[/prefix]?region=&endpoint=&profile=&scheme=``
(the S3 store's settings: NixOS/nix 88b09c64 src/libstore/include/nix/store/
s3-binary-cache-store.hh:25-62; ``endpoint`` and ``scheme`` read in src/libstore/s3-url.cc:70-71).
"""

from __future__ import annotations

import base64
import html.parser
import io
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from typing import Any, BinaryIO, Protocol, TypeVar

from profiler import __version__
from profiler.errors import PayloadError

T = TypeVar("T")
RETRY_AFTER_CAP_SECONDS = 30.0
_HASH = re.compile(r"^[0-9a-df-np-sv-z]{32}$")


class ObjectMissing(PayloadError):
    """The object does not exist (404, NoSuchKey, ENOENT)."""


class StoreError(PayloadError):
    """The store could not be read (after retries); one line, what and where."""


class _Refused(StoreError):
    """An HTTP 4xx other than 404: not retried."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Listed:
    key: str
    last_modified: datetime | None = None
    size_bytes: int | None = None


class CacheStore(Protocol):
    url: str

    def list_narinfos(self, since: datetime | None = None) -> Iterator[Listed]: ...
    def read_bytes(self, key: str, max_bytes: int = 1 << 20) -> bytes: ...
    def open(self, key: str) -> BinaryIO: ...
    def close(self) -> None: ...


def _read_small(opened: BinaryIO, where: str, max_bytes: int) -> bytes:
    """All of a small object (a narinfo), or ``StoreError`` when it is over ``max_bytes``."""
    with opened as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise StoreError(f"{where}: larger than {max_bytes} bytes")
    return data


class TokenBucket:
    """At most ``rate`` requests per second on average, bursts of one second's worth."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._tokens = rate or 0.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> None:
        if not self.rate:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


def _utc(since: datetime | None) -> datetime | None:
    """``since`` as an aware time (a naive one is taken as UTC, as ``--since`` reads it)."""
    if since is not None and since.tzinfo is None:
        return since.replace(tzinfo=UTC)
    return since


def key_for_path(path: str) -> str:
    """A narinfo key from a store path, a base name or a bare hash."""
    base = path.strip().rstrip("/").rsplit("/", 1)[-1]
    digest = base[:32]
    if not _HASH.match(digest):
        raise StoreError(f"{path!r} is not a store path or a 32-character nix32 hash")
    return f"{digest}.narinfo"


def _filter_paths(paths: Sequence[str]) -> Iterator[Listed]:
    seen: set[str] = set()
    for p in paths:
        key = key_for_path(p)
        if key not in seen:
            seen.add(key)
            yield Listed(key)


# --- local -------------------------------------------------------------------------------


class LocalStore:
    def __init__(self, root: str, paths: Sequence[str] | None = None) -> None:
        self.root = os.path.abspath(root)
        self.url = f"file://{self.root}"
        self._paths = paths
        if not os.path.isfile(os.path.join(self.root, "nix-cache-info")):
            raise StoreError(f"{self.url}: not a binary cache (no nix-cache-info)")

    def list_narinfos(self, since: datetime | None = None) -> Iterator[Listed]:
        since = _utc(since)
        if self._paths is not None:
            listed: Iterator[Listed] = _filter_paths(self._paths)
        else:
            names = sorted(n for n in os.listdir(self.root) if n.endswith(".narinfo"))
            listed = (Listed(n) for n in names)
        for item in listed:
            try:
                st = os.stat(os.path.join(self.root, item.key))
            except OSError:  # a listed path not in the cache: reading it will say so
                yield item
                continue
            modified = datetime.fromtimestamp(st.st_mtime, UTC)
            if since is None or modified >= since:
                yield Listed(item.key, modified, st.st_size)

    def _path(self, key: str) -> str:
        path = os.path.normpath(os.path.join(self.root, key))
        if not path.startswith(self.root + os.sep):
            raise StoreError(f"{self.url}: key {key!r} leaves the cache")
        return path

    def read_bytes(self, key: str, max_bytes: int = 1 << 20) -> bytes:
        return _read_small(self.open(key), f"{self.url}/{key}", max_bytes)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectMissing(f"{self.url}/{key}: missing") from None
        except OSError as exc:
            raise StoreError(f"{self.url}/{key}: {exc.strerror}") from None

    def close(self) -> None:
        pass


# --- HTTP --------------------------------------------------------------------------------


class _Retryable(Exception):
    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.hostname or "", parts.port or default


class _KeepAuthHome(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but never takes the cache's credentials to another origin (a CDN or
    a presigned bucket URL must not see them)."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:  # fmt: skip
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


class HttpStore:
    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        retries: int,
        bucket: TokenBucket,
        paths: Sequence[str] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self._auth = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            word = urllib.parse.unquote(parts.password or "")
            self._auth = "Basic " + base64.b64encode(f"{user}:{word}".encode()).decode()
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.url = self.base
        self.timeout = timeout_seconds
        self.retries = retries
        self.bucket = bucket
        self._paths = paths
        self._opener = urllib.request.build_opener(_KeepAuthHome())

    def _request(self, key: str, offset: int = 0) -> Any:
        headers = {"User-Agent": f"hydra-profiler/{__version__}"}
        if self._auth:
            headers["Authorization"] = self._auth
        if offset:
            headers["Range"] = f"bytes={offset}-"
        req = urllib.request.Request(f"{self.base}/{key}" if key else self.base + "/",
                                     headers=headers)  # fmt: skip
        self.bucket.take()
        try:
            return self._opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            where = f"{self.url}/{key}"
            if exc.code == 404:
                raise ObjectMissing(f"{where}: missing (HTTP 404)") from None
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}", _retry_after(exc.headers)) from None
            raise _Refused(f"{where}: HTTP {exc.code} {exc.reason}", exc.code) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, HTTPException) as exc:
            raise _Retryable(_reason(exc)) from None

    def _with_retries(self, key: str, call: Callable[[], T]) -> T:
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                return call()
            except _Retryable as exc:
                if attempt == self.retries:
                    raise StoreError(
                        f"{self.url}/{key}: {exc} (after {self.retries + 1} attempts)"
                    ) from None
                wait = exc.after if exc.after is not None else delay * (1 + random.random())
                time.sleep(min(wait, RETRY_AFTER_CAP_SECONDS))
                delay *= 2
        raise AssertionError("unreachable")

    def read_bytes(self, key: str, max_bytes: int = 1 << 20) -> bytes:
        return _read_small(self.open(key), f"{self.url}/{key}", max_bytes)

    def open(self, key: str) -> BinaryIO:
        return io.BufferedReader(_Resuming(self, key), buffer_size=1 << 20)

    def list_narinfos(self, since: datetime | None = None) -> Iterator[Listed]:
        if since is not None:
            raise StoreError(
                f"{self.url}: --since needs a listing with dates (a local or s3 cache)"
            )
        if self._paths is not None:
            yield from _filter_paths(self._paths)
            return
        try:
            page = self.read_bytes("", 64 << 20).decode("utf-8", "replace")
        except ObjectMissing:
            page = ""
        except _Refused as exc:  # a bucket behind the server says 403 where it lists nothing
            if exc.status not in (403, 405):
                raise
            page = ""
        parser = _Links()
        parser.feed(page)
        keys = sorted({h.rsplit("/", 1)[-1] for h in parser.hrefs if h.endswith(".narinfo")})
        if not keys:
            raise StoreError(
                f"{self.url}: the server does not list its narinfos; give --paths FILE "
                "(store paths or hashes, e.g. from `nix path-info -r`)"
            )
        for k in keys:
            yield Listed(urllib.parse.unquote(k))

    def close(self) -> None:
        pass


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    text = str(inner if inner is not None else exc) or type(exc).__name__
    return text.replace("\n", " ")


class _Resuming(io.RawIOBase):
    """A body that, when it breaks off or ends before its length, is asked for again from
    the offset reached (``Range``; a server answering 200 has the start skipped)."""

    def __init__(self, store: HttpStore, key: str) -> None:
        self.store, self.key = store, key
        self.offset = 0
        self.length: int | None = None
        self.resp: Any = None
        self._connect()

    def _connect(self) -> None:
        def call() -> Any:
            resp = self.store._request(self.key, self.offset)
            if self.offset and resp.status == 200:
                skip = self.offset
                while skip:
                    got = resp.read(min(skip, 1 << 20))
                    if not got:
                        raise _Retryable("body ended while skipping to the resume offset")
                    skip -= len(got)
            return resp

        self.resp = self.store._with_retries(self.key, call)
        if self.length is None:
            length = self.resp.headers.get("Content-Length")
            self.length = int(length) if length and length.isdigit() else None

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        attempts = 0
        while True:
            try:
                n = self.resp.readinto(buf)
            except (TimeoutError, ConnectionError, HTTPException, OSError) as exc:
                n, error = 0, _reason(exc)
            else:
                if n or self.length is None or self.offset >= self.length:
                    self.offset += n
                    return int(n)
                error = "body ended early"
            attempts += 1
            self.resp.close()
            if attempts > self.store.retries:
                total = f" of {self.length}" if self.length is not None else ""
                raise StoreError(
                    f"{self.store.url}/{self.key}: truncated: got {self.offset}{total} bytes "
                    f"({error}, {attempts} attempts)"
                )
            time.sleep(0.1 * 2**attempts)
            self._connect()

    def close(self) -> None:
        if self.resp is not None:
            self.resp.close()
        super().close()


# --- S3 ----------------------------------------------------------------------------------


class S3Store:
    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        retries: int,
        bucket: TokenBucket,
        paths: Sequence[str] | None = None,
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError
        except ImportError:
            raise StoreError("s3:// caches need boto3: pip install 'hydra-profiler[s3]'") from None
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.bucket_name = parts.netloc
        self.prefix = parts.path.strip("/")
        endpoint = query.get("endpoint")
        if endpoint and "://" not in endpoint:
            endpoint = f"{query.get('scheme', 'https')}://{endpoint}"
        shown = f"?endpoint={endpoint}" if endpoint else ""
        self.url = f"s3://{self.bucket_name}{'/' + self.prefix if self.prefix else ''}{shown}"
        config = Config(
            retries={"mode": "standard", "max_attempts": retries + 1},
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            user_agent_extra=f"hydra-profiler/{__version__}",
        )
        try:  # a profile that is not configured, an endpoint that is no URL
            session = boto3.session.Session(
                profile_name=query.get("profile") or None, region_name=query.get("region") or None
            )
            self.client = session.client("s3", endpoint_url=endpoint, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise StoreError(f"{self.url}: {type(exc).__name__}: {_reason(exc)}") from None
        self.tokens = bucket
        self.retries = retries
        self._paths = paths

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, exc: Exception, key: str) -> PayloadError:
        from botocore.exceptions import ClientError

        where = f"{self.url} {key}" if key else self.url
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", "?"))
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectMissing(f"{where}: missing ({code})")
            return StoreError(f"{where}: {code}")
        return StoreError(f"{where}: {type(exc).__name__}: {_reason(exc)}")

    def list_narinfos(self, since: datetime | None = None) -> Iterator[Listed]:
        since = _utc(since)
        if self._paths is not None:
            if since is not None:
                raise StoreError(f"{self.url}: --since needs the bucket's listing, not --paths")
            yield from _filter_paths(self._paths)
            return
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = iter(
                self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket_name, Prefix=prefix, Delimiter="/"
                )
            )
            while True:
                self.tokens.take()  # before each page's request, which next() sends
                page = next(pages, None)
                if page is None:
                    return
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(prefix) :]
                    modified = obj.get("LastModified")
                    if not key.endswith(".narinfo"):
                        continue
                    if since is not None and modified is not None and modified < since:
                        continue
                    yield Listed(key, modified, obj.get("Size"))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "") from None

    def read_bytes(self, key: str, max_bytes: int = 1 << 20) -> bytes:
        return _read_small(self.open(key), f"{self.url} {key}", max_bytes)

    def open(self, key: str) -> BinaryIO:
        return io.BufferedReader(_S3Body(self, key), buffer_size=1 << 20)

    def _get(self, key: str, offset: int) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        self.tokens.take()
        extra = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            return self.client.get_object(Bucket=self.bucket_name, Key=self._key(key), **extra)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, key) from None

    def close(self) -> None:
        self.client.close()


class _S3Body(io.RawIOBase):
    def __init__(self, store: S3Store, key: str) -> None:
        self.store, self.key = store, key
        self.offset = 0
        resp = store._get(key, 0)
        self.length = int(resp.get("ContentLength", 0))
        self.body = resp["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        from botocore.exceptions import BotoCoreError

        for attempt in range(self.store.retries + 1):
            try:
                data = self.body.read(len(buf))
            except (BotoCoreError, OSError) as exc:
                error = _reason(exc)
            else:
                if data or self.offset >= self.length:
                    buf[: len(data)] = data
                    self.offset += len(data)
                    return len(data)
                error = "body ended early"
            self.body.close()
            time.sleep(0.1 * 2**attempt)
            self.body = self.store._get(self.key, self.offset)["Body"]
        raise StoreError(
            f"{self.store.url} {self.key}: truncated: got {self.offset} of {self.length} bytes "
            f"({error})"
        )

    def close(self) -> None:
        self.body.close()
        super().close()


def open_store(
    url: str,
    *,
    timeout_seconds: float = 30.0,
    retries: int = 4,
    requests_per_second: float | None = 20.0,
    paths: Sequence[str] | None = None,
) -> CacheStore:
    """The store at ``url``; ``paths`` (store paths or hashes) replace its listing."""
    bucket = TokenBucket(requests_per_second)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("http", "https"):
        return HttpStore(url, timeout_seconds=timeout_seconds, retries=retries, bucket=bucket,
                         paths=paths)  # fmt: skip
    if scheme == "s3":
        return S3Store(url, timeout_seconds=timeout_seconds, retries=retries, bucket=bucket,
                       paths=paths)  # fmt: skip
    if scheme == "file":
        parts = urllib.parse.urlsplit(url)
        return LocalStore(urllib.parse.unquote(parts.netloc + parts.path), paths)
    if scheme and len(scheme) > 1:
        raise StoreError(f"{url.split('?', 1)[0]}: unsupported cache URL (file, http(s), s3)")
    return LocalStore(url, paths)

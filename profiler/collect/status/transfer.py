"""Bounded requests for the collectors: an HTTP GET and a command, each with a total deadline.

``urlopen(timeout=...)`` bounds each socket operation, so a server that drips one byte a
second never times out, and a request cannot be interrupted. Here every request has a total
deadline (the ``--timeout``), is cut short within :data:`POLL_SECONDS` when the collector is
told to stop (SIGTERM, SIGINT) or reaches its ``--duration``, and its answer is capped at
``max_bytes``. Every failure is a one-line :class:`~profiler.errors.CollectorError` naming the
target with its secrets redacted; a request cut short by a stop is :class:`Cancelled`.

The HTTP GET runs in a worker thread while the caller waits in slices: a blocking read, a
slow DNS lookup or a dripping server can then never hold the caller past the deadline (the
socket is shut down to end the worker). It speaks HTTP/1.1 with ``Connection: close``,
follows up to :data:`MAX_REDIRECTS` redirects (dropping credentials when the origin changes),
sends ``Authorization: Basic`` from the URL's ``user:password@`` and honours ``http_proxy`` /
``https_proxy`` / ``no_proxy`` as urllib does.
"""

from __future__ import annotations

import base64
import errno
import http.client
import math
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from profiler.errors import CollectorError, UsageError
from profiler.store.redact import redact

POLL_SECONDS = 0.1  # how often a waiting caller looks at its stop event
MAX_REDIRECTS = 5
READ_CHUNK = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)
_T = TypeVar("_T")


class Cancelled(CollectorError):
    """A request cut short because the collector stops (a signal, or its ``--duration``)."""


@dataclass(frozen=True)
class Budget:
    """When a request must give up besides its own timeout: the collector's stop event
    (set by SIGTERM/SIGINT) and the end of its run (``time.monotonic()``)."""

    stop: threading.Event | None = None
    until: float = math.inf

    def ended(self) -> str | None:
        """Why no request may go on now (``"stopped"``, ``"--duration reached"``), or None."""
        if self.stop is not None and self.stop.is_set():
            return "stopped"
        if time.monotonic() >= self.until:
            return "--duration reached"
        return None


NO_BUDGET = Budget()


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters, secrets redacted."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe(exc: BaseException) -> str:
    """One line for an exception from a socket, http.client or a child process."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else exc.strerror
    text = str(exc)
    name = type(exc).__name__
    return one_line(f"{name}: {text}" if text and not text.startswith(name) else text or name)


# --------------------------------------------------------------------------------------------
# URLs


@dataclass(frozen=True)
class Url:
    """A checked http(s) URL: where to connect, what to ask for, and how to log in."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    authorization: str | None  # "Basic ..." from user:password@
    display: str  # the URL with its secrets redacted

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    def absolute(self) -> str:
        """The URL without its userinfo (what a proxy is asked for, what redirects join)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.target}"


def _bad_character(url: str) -> int | None:
    for i, ch in enumerate(url):
        if ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F:
            return i
    return None


def parse_url(url: str, what: str = "--url") -> Url:
    """``url`` checked (http or https, a host, a valid port, no spaces or control characters);
    a :class:`~profiler.errors.UsageError` otherwise, which never echoes the URL's secrets."""
    if not url:
        raise UsageError(f"{what}: empty URL")
    bad = _bad_character(url)
    if bad is not None:
        raise UsageError(
            f"{what}: the URL has a space or control character at position {bad + 1} "
            "(percent-encode it, e.g. %20)"
        )
    shown = redact(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        hint = ""
        if "@" in url:
            hint = " (a password holding '/', '?' or '#' must be percent-encoded: %2F, %3F, %23)"
        raise UsageError(f"{what} {shown}: {one_line(str(exc))}{hint}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        use = "; use --file for files" if scheme == "file" else ""
        raise UsageError(f"{what} {shown}: not an http:// or https:// URL{use}")
    host = parts.hostname
    if not host:
        raise UsageError(f"{what} {shown}: no host")
    try:
        host.encode("idna")
    except UnicodeError:
        raise UsageError(f"{what} {shown}: invalid host name") from None
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    auth = None
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        auth = f"Basic {token}"
    return Url(
        scheme,
        host,
        port if port is not None else (443 if scheme == "https" else 80),
        path + (f"?{query}" if query else ""),
        auth,
        shown,
    )


def parse_header(text: str) -> tuple[str, str]:
    """A ``Name: value`` header option; :class:`~profiler.errors.UsageError` when malformed."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    token = name and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name)
    if not colon or not token or any(c in value for c in "\r\n\0"):
        raise UsageError(f"--header {one_line(text, 60)!r}: expected 'Name: value'")
    return name, value


# --------------------------------------------------------------------------------------------
# running something with a total deadline


@dataclass
class _Abort:
    """What the waiting caller shuts down to end a worker that is blocked on the network."""

    fired: bool = False
    sockets: list[socket.socket] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, sock: socket.socket | None) -> None:
        with self.lock:
            if sock is not None:
                self.sockets.append(sock)
            fired = self.fired
        if fired:
            self._shutdown(sock)
            raise OSError(errno.ECANCELED, "cancelled")

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            sockets = list(self.sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket | None) -> None:
        if sock is None:
            return
        try:  # socket.socket's own shutdown: an SSLSocket's would drop its state first
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _bounded(
    work: Callable[[_Abort], _T], timeout: float, budget: Budget, target: str, what: str
) -> _T:
    """``work`` in a daemon thread; its result, or an error at ``timeout`` or a stop."""
    abort = _Abort()
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = work(abort)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    limit = time.monotonic() + timeout
    threading.Thread(target=run, name=f"collect {what}", daemon=True).start()
    while not done.wait(max(0.0, min(POLL_SECONDS, limit - time.monotonic()))):
        why = budget.ended()
        if why is not None:
            abort.fire()
            raise Cancelled(f"{target}: {what} cut short ({why})")
        if time.monotonic() >= limit:
            abort.fire()
            raise CollectorError(f"{target}: timed out after {timeout:g} s (no complete answer)")
    if "error" in box:
        raise box["error"]
    value: _T = box["value"]
    return value


# --------------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes


def _content_length(resp: http.client.HTTPResponse, max_bytes: int) -> int | None:
    """The declared body length, None when there is none (chunked, read to close)."""
    if resp.chunked:
        return None
    values = resp.headers.get_all("Content-Length") or []
    if not values:
        return None
    items = {v.strip() for value in values for v in value.split(",")}
    if len(items) != 1 or not next(iter(items)).isdigit():
        shown = one_line(", ".join(values), 40)
        raise CollectorError(f"invalid Content-Length {shown!r}")
    declared = int(next(iter(items)))
    if declared > max_bytes:
        raise CollectorError(f"body larger than {max_bytes} bytes (Content-Length {declared})")
    return declared


def _read_body(resp: http.client.HTTPResponse, max_bytes: int) -> bytes:
    declared = _content_length(resp, max_bytes)
    parts: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = resp.read(min(READ_CHUNK, max_bytes + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    if size > max_bytes:
        raise CollectorError(f"body larger than {max_bytes} bytes")
    if declared is not None and size != declared:
        raise CollectorError(f"truncated body ({size} of {declared} bytes)")
    return b"".join(parts)


def _proxy_for(url: Url) -> Url | None:
    """The proxy urllib would use for ``url`` (``*_proxy``, ``no_proxy``), or None."""
    proxy = urllib.request.getproxies().get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(url.host):
        return None
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    try:
        return parse_url(proxy, f"{url.scheme}_proxy")
    except UsageError as exc:
        raise CollectorError(str(exc)) from None


def _connection(url: Url, timeout: float) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """A connection for ``url`` (through a proxy if urllib would use one), the request
    target to send and the proxy's headers."""
    proxy = _proxy_for(url)
    if proxy is None:
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        return cls(url.host, url.port, timeout=timeout), url.target, {}
    login = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else {}
    if url.scheme == "https":  # a CONNECT tunnel: the proxy sees only the host and port
        conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=timeout)
        conn.set_tunnel(url.host, url.port, headers=login)
        return conn, url.target, {}
    return (
        http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout),
        url.absolute(),
        login,
    )


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    location: str | None  # of a redirect (then there is no body)
    body: bytes


def _exchange(
    url: Url, headers: Mapping[str, str], max_bytes: int, timeout: float, abort: _Abort
) -> _Answer:
    """One request and its answer; the connection closed whatever happens."""
    conn, target, extra = _connection(url, timeout)
    try:
        conn.connect()
        abort.track(conn.sock)
        conn.request("GET", target, headers={**headers, **extra})
        resp = conn.getresponse()
        try:
            location = resp.getheader("Location")
            if resp.status in _REDIRECTS and location:
                return _Answer(resp.status, resp.reason, location, b"")
            return _Answer(resp.status, resp.reason, None, _read_body(resp, max_bytes))
        finally:
            resp.close()
    finally:
        conn.close()


def http_get(
    url: Url,
    *,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int,
    budget: Budget = NO_BUDGET,
) -> Response:
    """GET ``url`` within ``timeout`` seconds in all (redirects included); an HTTP error status
    is a :class:`~profiler.errors.CollectorError`, as is every network or protocol failure."""
    why = budget.ended()
    if why is not None:
        raise Cancelled(f"{url.display}: request not sent ({why})")

    def work(abort: _Abort) -> Response:
        return _follow(url, headers, timeout, max_bytes, abort)

    return _bounded(work, timeout, budget, url.display, "request")


def _follow(
    url: Url, headers: Mapping[str, str], timeout: float, max_bytes: int, abort: _Abort
) -> Response:
    first = url
    for _ in range(MAX_REDIRECTS + 1):
        sent = {"Connection": "close", **headers}
        if url.authorization and "authorization" not in {k.lower() for k in sent}:
            sent["Authorization"] = url.authorization
        try:
            answer = _exchange(url, sent, max_bytes, timeout, abort)
        except CollectorError as exc:
            raise CollectorError(f"{first.display}: {exc}") from None
        except (http.client.HTTPException, OSError, ValueError) as exc:
            raise CollectorError(f"{first.display}: {_failure(exc, timeout)}") from None
        if answer.location is None:
            if answer.status >= 400:
                raise CollectorError(f"{first.display}: {_status_text(answer)}")
            return Response(answer.status, answer.reason, answer.body)
        url, headers = _redirect(first, url, answer, headers)
    raise CollectorError(f"{first.display}: more than {MAX_REDIRECTS} redirects (a loop?)")


def _failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, http.client.RemoteDisconnected):
        return "bad HTTP answer: connection closed without a response"
    if isinstance(exc, http.client.HTTPException | ValueError):
        return f"bad HTTP answer: {describe(exc)}"
    if isinstance(exc, socket.timeout | TimeoutError):  # as _bounded says it
        return f"timed out after {timeout:g} s (no complete answer)"
    return f"unreachable: {describe(exc)}"


def _status_text(resp: _Answer) -> str:
    text = f"HTTP {resp.status} {one_line(resp.reason or '', 80)}".rstrip()
    if resp.status == 401:
        text += " (credentials missing or wrong: user:password@ in the URL, or --header)"
    return text


def _redirect(
    first: Url, url: Url, resp: _Answer, headers: Mapping[str, str]
) -> tuple[Url, Mapping[str, str]]:
    location = resp.location or ""
    try:
        nxt = parse_url(urllib.parse.urljoin(url.absolute(), location.strip()), "redirect")
    except UsageError as exc:
        raise CollectorError(f"{first.display}: HTTP {resp.status} to a bad URL: {exc}") from None
    if nxt.origin != url.origin:  # credentials stay with the origin they were given for
        headers = {}
        if nxt.authorization is None:
            nxt = Url(nxt.scheme, nxt.host, nxt.port, nxt.target, None, nxt.display)
    elif nxt.authorization is None and url.authorization:
        nxt = Url(nxt.scheme, nxt.host, nxt.port, nxt.target, url.authorization, nxt.display)
    return nxt, headers


# --------------------------------------------------------------------------------------------
# commands


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes  # the last 64 KiB


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass


def run_command(
    argv: Sequence[str],
    *,
    target: str,
    timeout: float,
    max_bytes: int,
    budget: Budget = NO_BUDGET,
) -> Completed:
    """Run ``argv`` (its own process group) and collect its output within ``timeout`` s in
    all; stdout beyond ``max_bytes``, the timeout or a stop kill the whole group."""
    why = budget.ended()
    if why is not None:
        raise Cancelled(f"{target}: command not started ({why})")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise CollectorError(f"{target}: command not found") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in an argument
        raise CollectorError(f"{target}: cannot run: {describe(exc)}") from None
    try:
        out, err = _drain(proc, target, time.monotonic() + timeout, timeout, max_bytes, budget)
    finally:
        if proc.poll() is None:
            _kill(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return Completed(proc.returncode, out, err)


def _drain(
    proc: subprocess.Popen[bytes],
    target: str,
    limit: float,
    timeout: float,
    max_bytes: int,
    budget: Budget,
) -> tuple[bytes, bytes]:
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = bytearray(), bytearray()
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    with selectors.DefaultSelector() as sel:
        for fd in streams:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map() or proc.poll() is None:
            why = budget.ended()
            if why is not None:
                raise Cancelled(f"{target}: command cut short ({why})")
            left = limit - time.monotonic()
            if left <= 0:
                raise CollectorError(f"{target}: no answer within {timeout:g} s")
            if not sel.get_map():
                time.sleep(min(POLL_SECONDS, left))
                continue
            for key, _ in sel.select(min(POLL_SECONDS, left)):
                try:
                    data = os.read(key.fd, READ_CHUNK)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fd)
                    continue
                buf = streams[key.fd]
                buf += data
                if buf is err and len(err) > 1 << 16:
                    del err[: len(err) - (1 << 16)]
                if len(out) > max_bytes:
                    raise CollectorError(f"{target}: output larger than {max_bytes} bytes")
    return bytes(out), bytes(err)

"""The emulated build machine: a loopback TCP peer the C++ runner talks to.

It stands for ``nix-store --serve --write`` over SSH: the runner connects, sends the input
closure as NAR bytes (``IMPORT``), asks for a build (``BUILD``: a wait, or a CPU burn) and
pulls each output as a real NAR stream (``EXPORT``). Transfers can be capped to a link
bandwidth, in both directions, by the sending side.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 64 << 10


def send_capped(
    sock: socket.socket, data: bytes | memoryview, bytes_per_second: float | None
) -> None:
    """Send ``data``, pacing it to ``bytes_per_second`` (None: as fast as loopback goes)."""
    view = memoryview(data)
    start = time.perf_counter()
    sent = 0
    while sent < len(view):
        sock.sendall(view[sent : sent + CHUNK])
        sent += min(CHUNK, len(view) - sent)
        if bytes_per_second:
            ahead = sent / bytes_per_second - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)


def recv_exact(f: BinaryIO, n: int) -> bytes:
    """Read exactly ``n`` bytes from a socket file; a short read is a broken connection."""
    parts = []
    left = n
    while left:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError(f"peer closed with {left} of {n} bytes unread")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def burn_cpu(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(10_000):
            x ^= i * i


class Agent:
    """One machine's listener on 127.0.0.1; ``nar_of(index)`` gives an output's NAR."""

    def __init__(
        self, hostname: str, nar_of: Callable[[int], bytes], link_bytes_per_second: float | None
    ) -> None:
        self.hostname = hostname
        self.nar_of = nar_of
        self.rate = link_bytes_per_second
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, name=f"agent-{hostname}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._stop = True
        self.server.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        """Serve one runner connection; a failure here is sent to the runner as one
        ``ERROR`` line (its step then fails with the reason), never a thread traceback."""
        try:
            self._requests(conn)
        except OSError:
            pass  # the runner went away (its step failed or the run ended)
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            with contextlib.suppress(OSError):
                conn.sendall(f"ERROR {self.hostname}: {reason}\n".encode())
        finally:
            conn.close()

    def _requests(self, conn: socket.socket) -> None:
        with conn.makefile("rb") as f:
            while line := f.readline():
                verb, *args = line.decode().split()
                if verb == "IMPORT":
                    recv_exact(f, int(args[0]))
                    conn.sendall(b"OK\n")
                elif verb == "BUILD":
                    start = time.time()
                    (burn_cpu if args[1] == "burn" else time.sleep)(float(args[0]))
                    conn.sendall(f"DONE {start} {time.time()}\n".encode())
                elif verb == "EXPORT":
                    data = self.nar_of(int(args[0]))
                    conn.sendall(f"{len(data)}\n".encode())
                    send_capped(conn, data, self.rate)
                else:
                    return


class Connection:
    """The runner's side of a session with an :class:`Agent`."""

    def __init__(self, port: int, rate: float | None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")
        self.rate = rate

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def _reply(self, what: str) -> str:
        """The machine's next line; its ``ERROR`` line, or none, is a ``ConnectionError``."""
        line = self.file.readline().decode(errors="replace").strip()
        if line.startswith("ERROR "):
            raise ConnectionError(f"{what}: {line[6:]}")
        if not line:
            raise ConnectionError(f"{what}: the machine closed the connection")
        return line

    def send_inputs(self, nar: bytes) -> None:
        self.sock.sendall(f"IMPORT {len(nar)}\n".encode())
        send_capped(self.sock, nar, self.rate)
        if self._reply("import") != "OK":
            raise ConnectionError("remote machine failed to import closure")

    def build(self, seconds: float, burn: bool) -> tuple[float, float]:
        self.sock.sendall(f"BUILD {seconds} {'burn' if burn else 'wait'}\n".encode())
        _, start, stop = self._reply("build").split()
        return float(start), float(stop)

    def receive_output(self, index: int) -> bytes:
        self.sock.sendall(f"EXPORT {index}\n".encode())
        size = int(self._reply("export"))
        return recv_exact(self.file, size)

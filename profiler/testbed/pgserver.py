"""A throwaway real PostgreSQL server (tests, and the demo when PostgreSQL is installed).

:class:`PostgresServer` runs Debian's ``initdb`` and ``pg_ctl`` on a fresh temporary data
directory, listening on a unix socket in that directory and on 127.0.0.1 at a free port, with
trust authentication, and creates one database. PostgreSQL refuses to run as root, so as root
the server runs as an unprivileged system user (:data:`PG_USER`, created on first use); as any
other user it runs as that user. ``stop()`` (or leaving the ``with`` block) kills the server and
removes the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

PG_USER = "hydraprof-pg"
SUPERUSER = "postgres"  # the database role initdb creates (-U), whatever the OS user is

# Speed over durability: the data is thrown away.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}


def find_pg_bindir() -> Path | None:
    """The directory with ``initdb``/``pg_ctl``: PATH first, then Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None

    def version(path: str) -> tuple[int, ...]:
        part = Path(path).parents[1].name
        return tuple(int(x) for x in part.split(".") if x.isdigit())

    return Path(max(found, key=version)).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_pg_user(name: str = PG_USER) -> pwd.struct_passwd:
    """The unprivileged system user to run PostgreSQL as root; created if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    done = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:  # another test process may have created it concurrently
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"useradd {name} failed: {done.stderr.strip()}") from None


class PostgresServer:
    """One temporary PostgreSQL cluster with one database; a context manager."""

    def __init__(self, bindir: Path, dbname: str = "hydra") -> None:
        self.bindir = bindir
        self.dbname = dbname
        self.base: Path | None = None
        self.port = 0
        self._run_as: list[str] = []
        self._started = False

    @property
    def socket_dir(self) -> Path:
        """The directory holding the server's unix socket."""
        assert self.base is not None, "server not started"
        return self.base / "sock"

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        assert self.base is not None, "server not started"
        return self.base / "data"

    @property
    def dsn(self) -> str:
        """libpq DSN of the database over the unix socket."""
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={self.dbname}"

    @property
    def tcp_dsn(self) -> str:
        """libpq DSN of the database over TCP on 127.0.0.1."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={self.dbname}"

    def _run(self, *args: str, as_owner: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.base is not None
        prefix = self._run_as if as_owner else []
        done = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, check=False, cwd=self.base
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"{self._log_tail()}"
            )
        return done

    def _log_tail(self) -> str:
        log = self.base / "postgres.log" if self.base is not None else None
        if log is None or not log.exists():
            return ""
        tail = log.read_text(errors="replace").splitlines()[-20:]
        return "\n-- postgres.log:\n" + "\n".join(tail)

    def start(self) -> str:
        """initdb, start the server, create the database; the DSN."""
        self.base = Path(tempfile.mkdtemp(prefix="hydraprof-pg-"))
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            user = ensure_pg_user()
            for path in (self.base, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
            self._run_as = ["runuser", "-u", user.pw_name, "--"]
        bin_ = self.bindir
        self._run(
            str(bin_ / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        self._start_server()
        self._run(
            str(bin_ / "createdb"),
            "--host",
            str(self.socket_dir),
            "--port",
            str(self.port),
            "--username",
            SUPERUSER,
            self.dbname,
            as_owner=False,
        )
        return self.dsn

    def _start_server(self) -> None:
        """Start on a free port; pick another if it was taken in between (a few tries)."""
        assert self.base is not None
        log = self.base / "postgres.log"
        conf = self.data_dir / "postgresql.conf"
        original = conf.read_text()
        last_error: RuntimeError | None = None
        for _ in range(3):
            self.port = free_port()
            settings = {
                **SETTINGS,
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.socket_dir}'",
            }
            extra = "".join(f"{key} = {value}\n" for key, value in settings.items())
            conf.write_text(original + "\n# tests/pg.py\n" + extra)
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.data_dir),
                    "--log",
                    str(log),
                    "--wait",
                    "--timeout",
                    "60",
                    "start",
                )
            except RuntimeError as error:
                last_error = error
                continue
            self._started = True
            return
        assert last_error is not None
        raise last_error

    def shutdown(self) -> None:
        """Stop the server as an operator would (fast mode), keeping its data (see resume)."""
        self._run(str(self.bindir / "pg_ctl"), "--pgdata", str(self.data_dir), "--mode", "fast",
                  "--wait", "stop")  # fmt: skip

    def resume(self) -> None:
        """Start a server stopped by :meth:`shutdown` again, on the same port and data."""
        assert self.base is not None
        log = str(self.base / "postgres.log")
        self._run(str(self.bindir / "pg_ctl"), "--pgdata", str(self.data_dir), "--log", log,
                  "--wait", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server (immediate mode: nothing to keep) and remove its directory."""
        if self.base is None:
            return
        try:
            if self._started:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.data_dir),
                    "--mode",
                    "immediate",
                    "--wait",
                    "stop",
                )
                self._started = False
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""Shared test helpers.

Tests that need an outside resource (Nix's tools, xz, zstd) call :func:`require_tool`. On a
developer machine a missing tool skips the test with the reason; with ``CI=true`` (as
``.ci/run`` sets) it fails instead, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.pg import PostgresServer, find_pg_bindir

STRICT = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, package: str) -> str:
    """Path of ``name``; skip (or fail under CI=true) when it is not installed."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} not installed (Debian package {package}; scripts/setup-tests.sh)"
        if STRICT:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return found


NIX_ENV = {**os.environ, "NIX_CONFIG": "experimental-features = nix-command"}


def add_to_store(tree: os.PathLike[str] | str) -> str:
    """``nix-store --add`` of ``tree`` into the real local store (as root); its store path."""
    require_tool("nix-store", "nix-bin")
    done = subprocess.run(
        ["nix-store", "--add", str(tree)], capture_output=True, text=True, check=True, env=NIX_ENV
    )
    return done.stdout.strip()


def nix_copy(store_path: str, dest: os.PathLike[str] | str, query: str) -> Path:
    """The real ``nix copy --to file://DEST?QUERY`` of ``store_path``: a binary cache as Nix
    writes it. Returns ``dest``."""
    require_tool("nix", "nix-bin")
    subprocess.run(
        ["nix", "copy", "--to", f"file://{dest}?{query}", store_path],
        check=True,
        capture_output=True,
        env=NIX_ENV,
    )
    return Path(dest)


def nix_dump(path: Path | bytes | str) -> bytes:
    """The real ``nix-store --dump`` of ``path``."""
    require_tool("nix-store", "nix-bin")
    done = subprocess.run(
        ["nix-store", "--dump", path], capture_output=True, check=True, env=NIX_ENV
    )
    return done.stdout


def nix_hash(path: Path | bytes | str) -> str:
    """The real ``nix-hash --type sha256 --base32`` of ``path``, as ``sha256:<nix32>``."""
    require_tool("nix-hash", "nix-bin")
    done = subprocess.run(
        ["nix-hash", "--type", "sha256", "--base32", path],
        capture_output=True,
        check=True,
        env=NIX_ENV,
    )
    return "sha256:" + done.stdout.decode().strip()


def make_example_tree(root: Path) -> Path:
    """The worked example of reference §1.6 (its NAR is 1240 bytes)."""
    d = root / "d"
    (d / "sub").mkdir(parents=True)
    (d / "emptydir").mkdir()
    (d / "a.txt").write_bytes(b"hello\n")
    (d / "empty").write_bytes(b"")
    (d / "link").symlink_to("a.txt")
    run = d / "sub" / "run.sh"
    run.write_bytes(b"#!/bin/sh\necho hi\n")
    run.chmod(0o755)
    return d


@pytest.fixture
def example_tree(tmp_path: Path) -> Path:
    return make_example_tree(tmp_path)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a throwaway real PostgreSQL server (tests/pg.py), one per test session.

    Skips when PostgreSQL is not installed, or fails under CI=true, like :func:`require_tool`.
    """
    bindir = find_pg_bindir()
    if bindir is None:
        message = (
            "PostgreSQL not installed (initdb; Debian package postgresql; scripts/setup-tests.sh)"
        )
        if STRICT:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    with PostgresServer(bindir) as server:
        yield server.dsn


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """Create an empty database on the server of ``server_dsn``; its DSN; drop it after."""
    import uuid

    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    yield make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def db_dsn(pg_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped afterwards."""
    with fresh_database(pg_dsn) as dsn:
        yield dsn

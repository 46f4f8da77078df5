"""The audit's read-only stores (profiler/audit/stores.py) against a real small binary cache
written by Debian's Nix: a local directory, a real HTTP server on 127.0.0.1 with faults
(tests/cachesrv.py) and moto's S3-compatible server on 127.0.0.1. Listing, whole reads and
streams must give the cache's own bytes; every fault must be one line naming the store and
the key, after the retries it deserves and none it does not; credentials never show."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from profiler import __version__
from profiler.audit import stores
from profiler.audit.stores import CacheStore, Listed, ObjectMissing, StoreError, open_store
from profiler.errors import PayloadError
from tests.cachesrv import CacheServer, aws_env, moto_s3
from tests.conftest import NIX_ENV, STRICT, require_tool
from tests.integration.test_cache_audit import nix_cache
from tests.pg import free_port

FAST = {"timeout_seconds": 2.0, "retries": 2, "requests_per_second": None}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real xz cache of three store paths (Python sources, a binary, a tiny file)."""
    require_tool("nix-store", "nix-bin")
    root = tmp_path_factory.mktemp("storecache")
    lib = Path(os.__file__).parent
    trees = {
        "py": sorted(p for p in lib.glob("*.py") if p.stat().st_size > 20_000)[:12],
        "bin": [Path(shutil.which("ls") or "/bin/ls")],
    }
    paths = []
    for name, files in trees.items():
        d = root / name
        d.mkdir()
        for f in files:
            shutil.copy(f, d / f.name)
        paths.append(d)
    (root / "tiny").write_text("a tiny store path\n")
    paths.append(root / "tiny")
    added = [
        subprocess.run(["nix-store", "--add", str(p)], capture_output=True, text=True,
                       check=True, env=NIX_ENV).stdout.strip()
        for p in paths
    ]  # fmt: skip
    (root / "paths.txt").write_text("\n".join(added) + "\n")
    return nix_cache(added, root / "cache", "compression=xz")


def narinfos(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("*.narinfo"))


def nar_of(cache: Path, narinfo: str) -> str:
    """The URL field (the NAR's key) of a narinfo."""
    text = (cache / narinfo).read_text()
    return next(line[5:] for line in text.splitlines() if line.startswith("URL: "))


def biggest_nar(cache: Path) -> tuple[str, bytes]:
    path = max((cache / "nar").iterdir(), key=lambda p: p.stat().st_size)
    return f"nar/{path.name}", path.read_bytes()


def read_all(store: CacheStore, key: str) -> bytes:
    out = bytearray()
    with store.open(key) as f:
        while chunk := f.read(10_000):
            out += chunk
    return bytes(out)


def one_line(exc: pytest.ExceptionInfo[Any]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, text
    return text


def shown(exc: BaseException | None) -> str:
    """Everything an exception shows: its text, repr and args, and those of what it chains."""
    if exc is None:
        return ""
    text = "".join([str(exc), repr(exc), repr(exc.args), *traceback.format_exception_only(exc)])
    chained = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return text + shown(chained)


@pytest.fixture
def served(cache: Path, tmp_path: Path) -> Path:
    """A copy of the cache a test may change."""
    return Path(shutil.copytree(cache, tmp_path / "cache"))


# --- local ---------------------------------------------------------------------------------


def test_local_store_lists_reads_and_streams_the_cache(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = narinfos(served)
    assert len(names) == 3
    old = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    os.utime(served / names[0], (old.timestamp(), old.timestamp()))
    monkeypatch.chdir(served.parent)
    for url in (f"file://{served}", "file://cache", str(served), "cache"):
        store = open_store(url)
        assert store.url == f"file://{served}"
        listed = list(store.list_narinfos())
        assert [x.key for x in listed] == names
        assert listed[0].last_modified == old
        for x in listed:
            st = (served / x.key).stat()
            assert x.size_bytes == st.st_size
            assert x.last_modified == datetime.fromtimestamp(st.st_mtime, UTC)
        since = list(store.list_narinfos(old + timedelta(seconds=1)))
        assert [x.key for x in since] == names[1:]
        naive = list(store.list_narinfos(datetime(2020, 1, 2, 3, 4, 6)))  # noqa: DTZ001
        assert naive == since  # a naive --since is UTC
        for name in names:
            assert store.read_bytes(name) == (served / name).read_bytes()
            key = nar_of(served, name)
            assert read_all(store, key) == (served / key).read_bytes()
        store.close()


def test_local_store_faults_are_one_line(served: Path, tmp_path: Path) -> None:
    store = open_store(str(served))
    with pytest.raises(ObjectMissing) as missing:
        store.read_bytes("0" * 32 + ".narinfo")
    assert one_line(missing) == f"file://{served}/{'0' * 32}.narinfo: missing"
    with pytest.raises(StoreError, match="larger than 10 bytes"):
        store.read_bytes(narinfos(served)[0], max_bytes=10)
    with pytest.raises(StoreError, match="leaves the cache"):
        store.open("../paths.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    for url in (str(empty), f"file://{tmp_path}/nowhere"):
        with pytest.raises(StoreError) as info:
            open_store(url)
        assert one_line(info).endswith(": not a binary cache (no nix-cache-info)")
    with pytest.raises(StoreError, match="unsupported cache URL"):
        open_store("ftp://example.invalid/cache")
    assert isinstance(ObjectMissing("x"), PayloadError) and issubclass(StoreError, PayloadError)


def test_local_store_with_paths_keeps_their_order_and_dates(cache: Path, served: Path) -> None:
    paths = (cache.parent / "paths.txt").read_text().split()
    given = [paths[2], Path(paths[0]).name, Path(paths[1]).name[:32], paths[2], "0" * 32]
    store = open_store(str(served), paths=given)
    listed = list(store.list_narinfos())
    keys = [Path(p).name[:32] + ".narinfo" for p in (paths[2], paths[0], paths[1])]
    assert [x.key for x in listed] == [*keys, "0" * 32 + ".narinfo"]
    assert all(x.last_modified is not None for x in listed[:3])
    assert listed[3] == Listed("0" * 32 + ".narinfo")  # not in the cache: reading says so
    with pytest.raises(StoreError, match="not a store path or a 32-character nix32 hash"):
        list(open_store(str(served), paths=["/nix/store/short-name"]).list_narinfos())


# --- HTTP ----------------------------------------------------------------------------------


def test_http_listing_autoindex_paths_and_none(cache: Path) -> None:
    names = narinfos(cache)
    with CacheServer(str(cache), listing=True) as srv:
        store = open_store(srv.url, **FAST)
        assert store.url == srv.url
        assert list(store.list_narinfos()) == [Listed(n) for n in names]
        with pytest.raises(StoreError) as since:
            list(store.list_narinfos(datetime.now(UTC)))
        assert "--since needs a listing with dates (a local or s3 cache)" in one_line(since)
        for name in names:
            assert store.read_bytes(name) == (cache / name).read_bytes()
            key = nar_of(cache, name)
            assert read_all(store, key) == (cache / key).read_bytes()
        store.close()
        agent = srv.headers[names[0]][0]["user-agent"]
        assert agent == f"hydra-profiler/{__version__}"
    paths = (cache.parent / "paths.txt").read_text().split()
    with CacheServer(str(cache)) as srv:
        given = [paths[1], Path(paths[0]).name, Path(paths[2]).name[:32]]
        store = open_store(srv.url + "/", paths=given, **FAST)
        keys = [Path(p).name[:32] + ".narinfo" for p in (paths[1], paths[0], paths[2])]
        assert list(store.list_narinfos()) == [Listed(k) for k in keys]
        bare = open_store(srv.url, **FAST)
        with pytest.raises(StoreError) as info:
            list(bare.list_narinfos())
        assert one_line(info) == (
            f"{srv.url}: the server does not list its narinfos; give --paths FILE (store "
            "paths or hashes, e.g. from `nix path-info -r`)"
        )
        srv.fault("", "status", code=403)  # a bucket website: 403 where it lists nothing
        with pytest.raises(StoreError, match="give --paths FILE"):
            list(bare.list_narinfos())


def test_http_faults_missing_flaky_and_refused(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = narinfos(cache)
    with CacheServer(str(cache)) as srv:
        store = open_store(srv.url, **FAST)
        srv.fault(a, "missing")
        with pytest.raises(ObjectMissing) as missing:
            store.read_bytes(a)
        assert one_line(missing) == f"{srv.url}/{a}: missing (HTTP 404)"
        assert srv.hits[a] == 1  # a 404 is an answer: no retry
        srv.fault(b, "flaky", times=2)
        assert store.read_bytes(b) == (cache / b).read_bytes()
        assert srv.hits[b] == 3  # two 500s, then the narinfo
        srv.fault(c, "status", code=403)
        with pytest.raises(StoreError) as refused:
            store.read_bytes(c)
        assert one_line(refused) == f"{srv.url}/{c}: HTTP 403 Forbidden"
        assert srv.hits[c] == 1
        key = nar_of(cache, c)
        srv.fault(key, "flaky", times=1, code=429, retry_after=100)
        monkeypatch.setattr(stores, "RETRY_AFTER_CAP_SECONDS", 0.4)
        start = time.monotonic()
        assert read_all(store, key) == (cache / key).read_bytes()
        assert 0.4 <= time.monotonic() - start < 3  # Retry-After honoured, up to the cap
        assert srv.hits[key] == 2
        srv.fault(a, "status", code=503)
        with pytest.raises(StoreError) as gone:
            store.read_bytes(a)
        assert one_line(gone) == f"{srv.url}/{a}: HTTP 503 (after 3 attempts)"
        assert srv.hits[a] == 1 + 3


def test_http_streams_resume_or_say_truncated(cache: Path) -> None:
    key, data = biggest_nar(cache)
    assert len(data) > 20_000
    with CacheServer(str(cache)) as srv:
        store = open_store(srv.url, **FAST)
        srv.fault(key, "drop_once", bytes=5000)
        assert read_all(store, key) == data
        assert srv.hits[key] == 2
        assert srv.headers[key][1]["range"] == "bytes=5000-"
        srv.fault(key, "drop_once", bytes=7000, ranges=False)  # answers 200: skip what we have
        srv.hits[key] = 0
        assert read_all(store, key) == data
        assert srv.hits[key] == 2
        srv.fault(key, "truncate", bytes=3000)
        with pytest.raises(StoreError) as info:
            read_all(store, key)
        text = one_line(info)
        assert text.startswith(f"{srv.url}/{key}: truncated: got 3000 of {len(data)} bytes")
        small = narinfos(cache)[0]
        srv.fault(small, "truncate", bytes=10)
        with pytest.raises(StoreError, match="truncated: got 10 of "):
            store.read_bytes(small)
        with pytest.raises(StoreError, match="larger than 100 bytes"):
            store.read_bytes(key, max_bytes=100)


def test_http_slow_and_unreachable_fail_after_retries(cache: Path) -> None:
    name = narinfos(cache)[0]
    with CacheServer(str(cache)) as srv:
        srv.fault(name, "slow", seconds=0.8)
        store = open_store(srv.url, timeout_seconds=0.2, retries=1, requests_per_second=None)
        start = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.read_bytes(name)
        assert time.monotonic() - start < 2
        assert one_line(info).startswith(f"{srv.url}/{name}: ")
        assert "timed out" in str(info.value) and "(after 2 attempts)" in str(info.value)
        assert srv.hits[name] == 2
    url = f"http://127.0.0.1:{free_port()}/cache"
    store = open_store(url, timeout_seconds=0.5, retries=1, requests_per_second=None)
    with pytest.raises(StoreError) as down:
        store.read_bytes(name)
    assert one_line(down).startswith(f"{url}/{name}: ")
    assert "refused" in str(down.value).lower() and "(after 2 attempts)" in str(down.value)


def test_http_basic_auth_is_used_and_never_shown(cache: Path) -> None:
    user, word = "alice", "s3cret-pw"
    names = narinfos(cache)
    with CacheServer(str(cache), listing=True, auth=(user, word)) as srv, \
            CacheServer(str(cache)) as other:  # fmt: skip
        url = srv.url.replace("http://", f"http://{user}:{word}@") + "/"
        store = open_store(url, **FAST)
        assert store.url == srv.url
        assert [x.key for x in store.list_narinfos()] == names
        assert store.read_bytes(names[0]) == (cache / names[0]).read_bytes()
        errors: list[BaseException] = []
        calls = [
            lambda: store.read_bytes("0" * 32 + ".narinfo"),
            lambda: list(open_store(url, **FAST, paths=["bad"]).list_narinfos()),
            lambda: open_store(url.replace(word, "wrong"), **FAST).read_bytes(names[0]),
            lambda: list(open_store(url, **FAST).list_narinfos(datetime.now(UTC))),
        ]
        for call in calls:
            with pytest.raises(PayloadError) as info:
                call()
            errors.append(info.value)
        assert "HTTP 401" in str(errors[2])
        for exc in errors:
            assert exc.__cause__ is None
            assert not any(s in shown(exc) for s in (user, word, "wrong")), shown(exc)
        # a redirect at home keeps the credentials; one elsewhere (a CDN) never gets them
        key = nar_of(cache, names[1])
        srv.fault("alias.narinfo", "redirect", to=f"{srv.url}/{names[1]}")
        assert store.read_bytes("alias.narinfo") == (cache / names[1]).read_bytes()
        srv.fault(key, "redirect", to=f"{other.url}/{key}")
        assert read_all(store, key) == (cache / key).read_bytes()
        assert srv.headers[key][0]["authorization"].startswith("Basic ")
        assert [h.get("authorization") for h in other.headers[key]] == [None]


def test_http_requests_share_one_token_bucket(cache: Path) -> None:
    names = narinfos(cache)
    with CacheServer(str(cache)) as srv:
        store = open_store(srv.url, timeout_seconds=5, retries=0, requests_per_second=10)
        failures: list[Exception] = []

        def reader() -> None:
            try:
                for _ in range(5):
                    store.read_bytes(names[0])
            except Exception as exc:  # handed to the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - start
        assert not failures
        assert srv.hits[names[0]] == 15
        assert elapsed >= 0.45  # a burst of 10, then 5 more at 10/s


# --- S3 ------------------------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (its host:port); skipped without moto (fails under CI)."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        message = "boto3 and moto[server] not installed (pip install '.[test]')"
        if STRICT:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    with moto_s3() as endpoint:
        yield endpoint.removeprefix("http://")


def upload(endpoint: str, cache: Path, bucket: str, prefix: str, late: str) -> None:
    """The cache under ``prefix``, ``late`` a second after the rest, and decoys that are not
    the cache's narinfos (one in a sub-folder, one outside the prefix)."""
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
    try:
        client.create_bucket(Bucket=bucket)
        files = sorted(p for p in cache.rglob("*") if p.is_file())
        for p in [p for p in files if p.name != late]:
            client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(cache)}")
        client.put_object(Bucket=bucket, Key=f"{prefix}/sub/{'1' * 32}.narinfo", Body=b"x")
        client.put_object(Bucket=bucket, Key=f"{'2' * 32}.narinfo", Body=b"x")
        time.sleep(1.1)  # LastModified has whole seconds
        client.upload_file(str(cache / late), bucket, f"{prefix}/{late}")
    finally:
        client.close()


class _BreaksOnce:
    """A body that raises after ``after`` bytes, as a connection reset mid-body would."""

    def __init__(self, body: Any, after: int) -> None:
        self.body, self.left = body, after

    def read(self, n: int | None = None) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError("connection reset by peer")
        data: bytes = self.body.read(min(n or self.left, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.body.close()


def test_s3_lists_reads_streams_and_resumes(
    cache: Path, s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = narinfos(cache)
    upload(s3, cache, "nix-cache", "pre/fix", late=names[1])
    url = f"s3://nix-cache/pre/fix?region=us-east-1&endpoint={s3}&scheme=http"
    store = open_store(url, **FAST)
    assert store.url == f"s3://nix-cache/pre/fix?endpoint=http://{s3}"
    listed = list(store.list_narinfos())
    assert [x.key for x in listed] == names  # the prefix's root only, in listing order
    assert all(x.last_modified and x.last_modified.tzinfo for x in listed)
    assert [x.size_bytes for x in listed] == [(cache / n).stat().st_size for n in names]
    late = next(x for x in listed if x.key == names[1])
    assert late.last_modified is not None
    assert [x.key for x in store.list_narinfos(late.last_modified)] == [names[1]]
    naive = late.last_modified.replace(tzinfo=None)
    assert [x.key for x in store.list_narinfos(naive)] == [names[1]]
    assert list(store.list_narinfos(datetime(2999, 1, 1, tzinfo=UTC))) == []
    paginator = store.client.get_paginator
    pages: list[object] = []

    def small_pages(name: str) -> Any:  # two keys a page: the listing must walk them all
        real = paginator(name)

        def paginate(**kw: Any) -> Iterator[Any]:
            for page in real.paginate(**kw, PaginationConfig={"PageSize": 2}):
                pages.append(page)
                yield page

        return SimpleNamespace(paginate=paginate)

    monkeypatch.setattr(store.client, "get_paginator", small_pages)
    assert [x.key for x in store.list_narinfos()] == names
    assert len(pages) >= 3  # nix-cache-info, 3 narinfos and the nar/ and sub/ folders
    monkeypatch.undo()
    for name in names:
        assert store.read_bytes(name) == (cache / name).read_bytes()
    key, data = biggest_nar(cache)
    assert read_all(store, key) == data
    real = store.client.get_object
    ranges: list[str | None] = []

    def get_object(**kw: Any) -> Any:
        ranges.append(kw.get("Range"))
        resp = real(**kw)
        if len(ranges) == 1:
            resp["Body"] = _BreaksOnce(resp["Body"], 4000)
        return resp

    monkeypatch.setattr(store.client, "get_object", get_object)
    assert read_all(store, key) == data
    assert ranges == [None, "bytes=4000-"]
    store.close()


def test_s3_faults_name_the_bucket_never_the_credentials(
    cache: Path, s3: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = narinfos(cache)
    upload(s3, cache, "nix-cache", "p", late=names[0])
    query = f"region=us-east-1&endpoint={s3}&scheme=http"
    store = open_store(f"s3://nix-cache/p?{query}", **FAST)
    with pytest.raises(ObjectMissing) as missing:
        store.read_bytes("0" * 32 + ".narinfo")
    assert one_line(missing) == (
        f"s3://nix-cache/p?endpoint=http://{s3} {'0' * 32}.narinfo: missing (NoSuchKey)"
    )
    store.close()
    secrets = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    errors: list[BaseException] = []
    wrong = open_store(f"s3://no-such-bucket?{query}", **FAST)
    with pytest.raises(StoreError) as info:
        list(wrong.list_narinfos())
    assert one_line(info) == f"s3://no-such-bucket?endpoint=http://{s3}: NoSuchBucket"
    errors.append(info.value)
    wrong.close()
    with aws_env({}, ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")):
        anonymous = open_store(f"s3://nix-cache/p?{query}", **FAST)
        with pytest.raises(StoreError) as info:
            anonymous.read_bytes(names[0])
        assert "s3://nix-cache/p" in one_line(info) and "NoCredentialsError" in str(info.value)
        errors.append(info.value)
        anonymous.close()
        creds = tmp_path / "credentials"
        creds.write_text(
            "[audit]\naws_access_key_id = AKIAPROFILEKEY\n"
            "aws_secret_access_key = profile-secret-value\n"
        )
        with aws_env({"AWS_SHARED_CREDENTIALS_FILE": str(creds)}):
            by_profile = open_store(f"s3://nix-cache/p?{query}&profile=audit", **FAST)
            assert [x.key for x in by_profile.list_narinfos()] == names
            by_profile.close()
            with pytest.raises(StoreError) as info:
                open_store(f"s3://nix-cache/p?{query}&profile=nobody", **FAST)
            assert "ProfileNotFound" in one_line(info)
    unreachable = f"s3://nix-cache?region=us-east-1&endpoint=127.0.0.1:{free_port()}&scheme=http"
    down = open_store(unreachable, timeout_seconds=0.5, retries=0, requests_per_second=None)
    with pytest.raises(StoreError) as info:
        list(down.list_narinfos())
    assert one_line(info).startswith("s3://nix-cache?endpoint=http://127.0.0.1:")
    errors.append(info.value)
    down.close()
    with_paths = open_store(f"s3://nix-cache/p?{query}", paths=[names[0][:32]], **FAST)
    assert [x.key for x in with_paths.list_narinfos()] == [names[0]]
    with pytest.raises(StoreError, match="--since needs the bucket's listing"):
        list(with_paths.list_narinfos(datetime.now(UTC)))
    with_paths.close()
    for exc in errors:
        text = shown(exc)
        assert not any(s in text for s in (*secrets, "AKIAPROFILEKEY", "profile-secret-value"))


def test_s3_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(StoreError) as info:
        open_store("s3://nix-cache?region=us-east-1")
    assert one_line(info) == "s3:// caches need boto3: pip install 'hydra-profiler[s3]'"

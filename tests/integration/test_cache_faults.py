"""``cache audit`` over real HTTP and an S3-compatible server on 127.0.0.1, with the faults a
real cache has: 404s, a truncated NAR, a wrong FileHash, a corrupt narinfo, slow and flaky
answers, a body cut off mid-way. Every fault is one line naming the object; the rest is
audited; nothing crashes; credentials never show."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.audit.stores import ObjectMissing, StoreError, open_store
from profiler.cli import main
from tests.cachesrv import _MOTO_ENV, CacheServer, moto_s3
from tests.conftest import NIX_ENV, require_tool


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real xz cache of six store paths written by Debian's Nix."""
    require_tool("nix", "nix-bin")
    root = tmp_path_factory.mktemp("faultcache")
    lib = Path(os.__file__).parent
    sources = sorted(p for p in lib.glob("*.py") if p.stat().st_size > 8000)
    paths = []
    for i in range(6):
        d = root / f"src{i}"
        d.mkdir()
        for f in sources[i * 3 : i * 3 + 3]:
            shutil.copy(f, d / f.name)
        done = subprocess.run(["nix-store", "--add", str(d)], capture_output=True, text=True,
                              check=True, env=NIX_ENV)  # fmt: skip
        paths.append(done.stdout.strip())
    dest = root / "cache"
    subprocess.run(["nix", "copy", "--to", f"file://{dest}?compression=xz", *paths],
                   check=True, capture_output=True, env=NIX_ENV)  # fmt: skip
    (root / "paths.txt").write_text("\n".join(paths) + "\n")
    return dest


def _narinfos(cache: Path) -> list[tuple[str, dict[str, str]]]:
    out = []
    for name in sorted(os.listdir(cache)):
        if name.endswith(".narinfo"):
            fields = dict(
                line.split(": ", 1) for line in (cache / name).read_text().splitlines() if line
            )
            out.append((name, fields))
    return out


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_fault_is_one_line_and_the_rest_is_audited(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = tmp_path / "served"
    shutil.copytree(cache, served)
    infos = _narinfos(served)
    (wrong_hash, a), (_truncated, b), (missing, _), (corrupt, _), (flaky, _), (dropped, f) = infos
    # a wrong FileHash: another valid hash of the same length
    text = (served / wrong_hash).read_text()
    (served / wrong_hash).write_text(text.replace(a["FileHash"], "sha256:" + "1" * 52))
    (served / corrupt).write_text("this is not a narinfo\n")
    paths = (cache.parent / "paths.txt").read_text().split()
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    with CacheServer(str(served)) as srv:
        nar_b = b["URL"]
        size_b = int(b["FileSize"])
        srv.fault(nar_b, "truncate", bytes=size_b // 2)
        srv.fault(missing, "missing")
        srv.fault(flaky, "flaky", times=2)
        srv.fault(f["URL"], "drop_once", bytes=1000)
        srv.fault(dropped, "slow", seconds=0.3)
        code, out, err = _run(
            ["cache", "audit", srv.url, "--paths", str(listing), "--format", "json",
             "--codec", "none", "--timeout", "5s", "--retries", "2"], capsys)  # fmt: skip
        assert code == 0, err
        doc = json.loads(out)
        faults = {x["kind"]: x for x in doc["faults"]}
        assert set(faults) == {"file-hash", "nar-unreadable", "missing-narinfo",
                               "narinfo-unreadable"}, doc["faults"]  # fmt: skip
        assert faults["file-hash"]["key"] == a["URL"]
        assert f"truncated: got {size_b // 2} of {size_b} bytes" in faults["nar-unreadable"][
            "message"]  # fmt: skip
        assert faults["missing-narinfo"]["key"] == missing
        assert faults["narinfo-unreadable"]["key"] == corrupt
        for x in doc["faults"]:
            line = f"{x['kind']}: {x['key']}: {x['message']}"
            assert "\n" not in line and line in err
        audited = {n["url"] for n in doc["nars"]}
        assert audited == {f["URL"], _url(served / flaky)}
        assert srv.hits[flaky] == 3  # two 500s, then the narinfo
        assert srv.hits[f["URL"]] >= 2  # cut off once, resumed
        code, _, _ = _run(
            ["cache", "audit", srv.url, "--paths", str(listing), "--codec", "none",
             "--fail-on-fault", "--retries", "1"], capsys)  # fmt: skip
        assert code == 3


def _url(narinfo: Path) -> str:
    return next(line[5:] for line in narinfo.read_text().splitlines() if line.startswith("URL: "))


def test_listing_auth_and_unreachable(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with CacheServer(str(cache), listing=True, auth=("alice", "s3cret-pw")) as srv:
        url = srv.url.replace("http://", "http://alice:s3cret-pw@")
        code, out, err = _run(["cache", "audit", url, "--codec", "none", "--format", "json"],
                              capsys)  # fmt: skip
        assert code == 0, err
        doc = json.loads(out)
        assert len(doc["nars"]) == 6 and not doc["faults"]
        assert "s3cret-pw" not in out + err and "alice" not in doc["cache"]
        bad = srv.url.replace("http://", "http://alice:wrong@")
        code, out, err = _run(["cache", "audit", bad, "--codec", "none"], capsys)
        assert code == 1 and "HTTP 401" in err and "wrong" not in err
    with CacheServer(str(cache)) as srv:  # no listing, no --paths
        code, _, err = _run(["cache", "audit", srv.url], capsys)
        assert code == 1 and "give --paths" in err and len(err.strip().splitlines()) == 1
    one = tmp_path / "one.txt"
    one.write_text("/nix/store/" + "a" * 32 + "-x\n")
    code, _, err = _run(["cache", "audit", "http://127.0.0.1:9/", "--paths", str(one),
                         "--retries", "0"], capsys)  # fmt: skip
    assert code == 1 and "no NAR could be read" in err


def test_a_harmonia_style_cache(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """harmonia serves NARs uncompressed, ``URL: nar/<narhash>.nar?hash=<hash>``, no
    FileHash or FileSize (nix-community/harmonia b438172 harmonia-store-nar-info/src/lib.rs:
    49, :63-72): audited as uncompressed, checked against NarHash and NarSize."""
    from profiler.codecs.streams import open_decompressed

    served = tmp_path / "harmonia"
    (served / "nar").mkdir(parents=True)
    (served / "nix-cache-info").write_text((cache / "nix-cache-info").read_text())
    for name, fields in _narinfos(cache):
        with open(cache / fields["URL"], "rb") as f:
            nar = open_decompressed(f, "xz").read()
        bare = fields["NarHash"].split(":", 1)[1]
        (served / "nar" / f"{bare}.nar").write_bytes(nar)
        lines = [f"{k}: {v}" for k, v in fields.items()
                 if k not in ("URL", "Compression", "FileHash", "FileSize")]  # fmt: skip
        lines += [f"URL: nar/{bare}.nar?hash={name[:32]}", "Compression: none"]
        (served / name).write_text("\n".join(lines) + "\n")
    with CacheServer(str(served), listing=True) as srv:
        code, out, err = _run(["cache", "audit", srv.url, "--codec", "none", "--format", "json"],
                              capsys)  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["nars"]) == 6 and not doc["faults"]
    assert all(n["method"] == "none" and n["exact"] for n in doc["nars"])


def test_a_slow_server_times_out_after_retries(cache: Path) -> None:
    name = _narinfos(cache)[0][0]
    with CacheServer(str(cache)) as srv:
        srv.fault(name, "slow", seconds=1.0)
        store = open_store(srv.url, timeout_seconds=0.2, retries=1, requests_per_second=None)
        with pytest.raises(StoreError, match=r"after 2 attempts"):
            store.read_bytes(name)
        assert srv.hits[name] == 2
        with pytest.raises(ObjectMissing, match="HTTP 404"):
            store.read_bytes("nothere.narinfo")


@pytest.fixture
def s3() -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1 (tests/cachesrv.py), with its throwaway
    credentials in the environment while it runs."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        from tests.conftest import STRICT

        if STRICT:
            pytest.fail("CI=true: moto[server] not installed (scripts/setup-tests.sh)")
        pytest.skip("moto[server] not installed")
    with moto_s3() as endpoint:
        yield endpoint


def test_s3_cache(cache: Path, s3: str, capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1")
    client.create_bucket(Bucket="nix-cache")
    for path in cache.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "nix-cache", f"pre/{path.relative_to(cache)}")
    client.close()
    endpoint = s3.removeprefix("http://")
    url = f"s3://nix-cache/pre?region=us-east-1&endpoint={endpoint}&scheme=http"
    code, out, err = _run(["cache", "audit", url, "--codec", "none", "--format", "json",
                           "--sample", "4", "--seed", "1"], capsys)  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["nars"]) == 4 and doc["listed"] == 6 and not doc["faults"]
    assert all(n["exact"] and n["level"] == 6 and n["last_modified"] for n in doc["nars"])
    secret, key_id = _MOTO_ENV["AWS_SECRET_ACCESS_KEY"], _MOTO_ENV["AWS_ACCESS_KEY_ID"]
    assert secret not in out + err and key_id not in out + err
    code, _, err = _run(["cache", "audit", url, "--since", "2999-01-01T00:00:00"], capsys)
    assert code == 0 and "0 of 0 narinfos" in err
    store = open_store(url)
    with pytest.raises(ObjectMissing):
        store.read_bytes("nothere.narinfo")
    store.close()
    missing = open_store(f"s3://no-such-bucket?region=us-east-1&endpoint={endpoint}&scheme=http")
    with pytest.raises(StoreError, match="NoSuchBucket") as info:
        list(missing.list_narinfos())
    assert secret not in str(info.value) and key_id not in str(info.value)
    missing.close()

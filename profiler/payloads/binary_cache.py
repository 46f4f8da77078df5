"""Local binary caches (``file://`` layout): ``nix-cache-info``, ``*.narinfo``, ``nar/``.

Parsing follows Nix's narinfo reader (``reference/nar-and-compression.md`` §2): one
``Key: value`` per line, a missing or empty ``Compression`` means bzip2, hashes may be
nix32, base16, base64 or SRI. A malformed narinfo is reported with its file and line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from profiler.errors import PayloadError
from profiler.nar.hashes import Hash, parse_hash
from profiler.payloads.model import NarFilePayload

_REQUIRED = ("StorePath", "URL", "NarHash", "NarSize")


@dataclass(frozen=True)
class NarInfo:
    """The fields of one ``.narinfo`` file (sizes in bytes)."""

    store_path: str
    url: str
    compression: str
    nar_hash: Hash
    nar_size: int
    file_hash: Hash | None = None
    file_size: int | None = None
    references: tuple[str, ...] = ()
    deriver: str | None = None
    sigs: tuple[str, ...] = ()
    ca: str | None = None


def parse_narinfo(text: str, source: str = "<narinfo>") -> NarInfo:
    """Parse narinfo ``text``; raise ``PayloadError`` naming ``source`` and the line."""
    fields: dict[str, str] = {}
    sigs: list[str] = []
    lines: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PayloadError(f"{source}:{lineno}: not a 'Key: value' line: {line!r}")
        value = value[1:] if value.startswith(" ") else value
        if key == "Sig":
            sigs.append(value)
        else:
            fields[key] = value
        lines[key] = lineno
    missing = [k for k in _REQUIRED if k not in fields]
    if missing:
        raise PayloadError(f"{source}: narinfo lacks {', '.join(missing)}")

    def hash_field(key: str) -> Hash:
        try:
            return parse_hash(fields[key])
        except ValueError as exc:
            raise PayloadError(f"{source}:{lines[key]}: {key}: {exc}") from None

    def int_field(key: str) -> int:
        try:
            value = int(fields[key])
        except ValueError:
            raise PayloadError(
                f"{source}:{lines[key]}: {key} is not an integer: {fields[key]!r}"
            ) from None
        if value < 0 or (key == "NarSize" and value == 0):
            raise PayloadError(f"{source}:{lines[key]}: {key} must be positive: {value}")
        return value

    return NarInfo(
        store_path=fields["StorePath"],
        url=fields["URL"],
        compression=fields.get("Compression") or "bzip2",
        nar_hash=hash_field("NarHash"),
        nar_size=int_field("NarSize"),
        file_hash=hash_field("FileHash") if fields.get("FileHash") else None,
        file_size=int_field("FileSize") if fields.get("FileSize") else None,
        references=tuple(fields.get("References", "").split()),
        deriver=fields.get("Deriver") or None,
        sigs=tuple(sigs),
        ca=fields.get("CA") or None,
    )


def read_cache_info(cache_dir: str) -> dict[str, str]:
    """The ``nix-cache-info`` fields of a cache directory (``StoreDir``, ``Priority``...)."""
    path = os.path.join(cache_dir, "nix-cache-info")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise PayloadError(f"{path}: {exc.strerror}") from None
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def narinfo_payload(path: str) -> NarFilePayload:
    """The payload a narinfo file describes, checked against it when read."""
    try:
        with open(path, encoding="utf-8") as f:
            info = parse_narinfo(f.read(), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise PayloadError(f"{path}: cannot read narinfo: {exc}") from None
    nar_path = os.path.join(os.path.dirname(path), info.url)
    if not os.path.isfile(nar_path):
        raise PayloadError(f"{path}: URL {info.url} does not exist in the cache ({nar_path})")
    name = os.path.basename(info.store_path)[33:] or os.path.basename(info.store_path)
    return NarFilePayload(
        name,
        "cache",
        path,
        path=nar_path,
        compression=info.compression,
        nar_hash=info.nar_hash,
        nar_size=info.nar_size,
        file_hash=info.file_hash,
        file_size=info.file_size,
    )


def cache_payloads(cache_dir: str) -> list[NarFilePayload]:
    """One payload per ``*.narinfo`` in ``cache_dir``, sorted by file name."""
    info = read_cache_info(cache_dir)
    if "StoreDir" not in info:
        raise PayloadError(f"{cache_dir}/nix-cache-info: no StoreDir line; not a binary cache")
    names = sorted(n for n in os.listdir(cache_dir) if n.endswith(".narinfo"))
    if not names:
        raise PayloadError(f"{cache_dir}: binary cache holds no .narinfo files")
    return [narinfo_payload(os.path.join(cache_dir, n)) for n in names]


def path_sizes(cache_dir: str, bases: Iterable[str]) -> dict[str, tuple[int, int | None]]:
    """(NarSize, FileSize) of each store path (base name ``<hash>-<name>``) whose narinfo
    the cache holds (``<hash>.narinfo``, Nix's ``narInfoFileFor``); paths the cache lacks,
    or whose narinfo is unreadable or names another path, are left out."""
    out: dict[str, tuple[int, int | None]] = {}
    for base in bases:
        digest = base[:32]
        path = os.path.join(cache_dir, f"{digest}.narinfo")
        try:
            with open(path, encoding="utf-8") as f:
                info = parse_narinfo(f.read(), path)
        except (OSError, UnicodeDecodeError, PayloadError):
            continue
        if os.path.basename(info.store_path) == base:
            out[base] = (info.nar_size, info.file_size)
    return out

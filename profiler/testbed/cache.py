"""A real ``file://`` binary cache, written the way Nix's BinaryCacheStore writes one.

``nar/<nix32 FileHash>.nar<ext>`` holds the compressed NAR, ``<hashpart>.narinfo`` its
description (StorePath, URL, Compression, FileHash, FileSize, NarHash, NarSize, References,
Deriver), and ``nix-cache-info`` the store directory. Objects are written to a temporary
name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from profiler import atomic
from profiler.codecs import Codec
from profiler.nar import Hash

_NIX_METHOD = {
    "xz": "xz",
    "zstd": "zstd",
    "br": "br",
    "gzip": "gzip",
    "bzip2": "bzip2",
    "none": "none",
}


@dataclass(frozen=True)
class Written:
    """What one upload produced (sizes in bytes)."""

    url: str
    nar_hash: Hash
    nar_size: int
    file_hash: Hash
    file_size: int


class BinaryCache:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(os.path.join(directory, "nar"), exist_ok=True)
        info = os.path.join(directory, "nix-cache-info")
        if not os.path.exists(info):
            self._atomic(info, b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")

    def _atomic(self, path: str, data: bytes) -> None:
        atomic.write_bytes(path, data)

    def has(self, store_path: str) -> bool:
        return os.path.exists(self.narinfo_path(store_path))

    def narinfo_path(self, store_path: str) -> str:
        return os.path.join(self.directory, os.path.basename(store_path)[:32] + ".narinfo")

    def add(
        self,
        store_path: str,
        nar: bytes,
        blob: bytes,
        codec: Codec,
        references: list[str],
        deriver: str,
    ) -> Written:
        """Store ``blob`` (``nar`` compressed by ``codec``) and its narinfo."""
        nar_hash = Hash("sha256", hashlib.sha256(nar).digest())
        file_hash = Hash("sha256", hashlib.sha256(blob).digest())
        url = f"nar/{file_hash.nix32}.nar{codec.spec.extension}"
        self._atomic(os.path.join(self.directory, url), blob)
        refs = " ".join(sorted(os.path.basename(r) for r in references))
        text = (
            f"StorePath: {store_path}\nURL: {url}\n"
            f"Compression: {_NIX_METHOD[codec.spec.method]}\n"
            f"FileHash: {file_hash}\nFileSize: {len(blob)}\n"
            f"NarHash: {nar_hash}\nNarSize: {len(nar)}\n"
            f"References: {refs}\nDeriver: {os.path.basename(deriver)}\n"
        )
        self._atomic(self.narinfo_path(store_path), text.encode())
        return Written(url, nar_hash, len(nar), file_hash, len(blob))

    def query_path_info(self, store_path: str) -> int:
        """``queryPathInfo`` on the cache: its narinfo read and parsed; the NAR size."""
        from profiler.payloads import binary_cache

        path = self.narinfo_path(store_path)
        with open(path, encoding="utf-8") as f:
            return binary_cache.parse_narinfo(f.read(), path).nar_size

    def read_nar(self, store_path: str) -> tuple[bytes, int]:
        """The NAR of a cached path (decompressed and checked) and its compressed size."""
        from profiler.payloads import binary_cache

        payload = binary_cache.narinfo_payload(self.narinfo_path(store_path))
        return payload.read(), os.path.getsize(payload.path)

"""What a compressed NAR's headers say for free, before anything is recompressed.

Each reader takes the whole stored object as a buffer (an ``mmap`` of the spooled file, so
memory stays bounded) and returns a :class:`Layout`: the method's parameters that the format
records, which narrow the writers to try (:mod:`profiler.audit.writers`).

* xz (the .xz file format, tukaani.org/xz/xz-file-format.txt §2.1-2.1.4, §4): the stream
  flags' check type; each block header's size fields (present in blocks written by liblzma's
  multithreaded encoder, which knows each block's sizes before it writes the header; absent
  from the single-threaded stream encoder's one block); the LZMA2 filter's dictionary size
  (§5.3.1), which is the preset's (0: 256 KiB ... 9: 64 MiB); the index's per-block sizes,
  which give the multithreaded block size.
* zstd (RFC 8878 §3.1.1): per frame, the window descriptor, whether the content size is
  recorded (a writer that pledged the size: Nix 2.35's frames, one-shot calls) and the
  checksum flag; frames are walked by their block headers (§3.1.1.2), nothing is decoded.
* brotli (RFC 7932 §9.1): the window bits of the stream header.
* gzip (RFC 1952 §2.3): the flags, and XFL (2: the slowest level, 4: the fastest).
* bzip2: the block size digit after ``BZh``, which is the level (libbz2's blockSize100k).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field

from profiler.errors import PayloadError

XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = 0xFD2FB528
_XZ_CHECKS = {0: "none", 1: "crc32", 4: "crc64", 10: "sha256"}
_LZMA2 = 0x21


@dataclass(frozen=True)
class Layout:
    """What the headers of one stored object record (``None``: the format does not say)."""

    method: str
    check: str | None = None  # xz: the integrity check; zstd: "xxh64" or None
    dict_bytes: int | None = None  # xz: LZMA2 dictionary; br: 2^WBITS - 16
    window_log: int | None = None  # zstd: of the first frame's window descriptor
    blocks: int | None = None  # xz: blocks over all streams
    streams: int = 1  # xz: concatenated streams
    sized_blocks: bool = False  # xz: block headers record their sizes (multithreaded)
    block_bytes: int | None = None  # xz: uncompressed size of the first of several blocks
    frames: int | None = None  # zstd
    frame_content_bytes: tuple[int | None, ...] = ()  # zstd: recorded content size per frame
    single_segment: bool = False  # zstd: first frame has no window descriptor
    level_hint: int | None = None  # bzip2's level digit; gzip's XFL-implied level
    extras: dict[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for a report: what the headers said."""
        parts = [self.method]
        if self.method == "xz":
            parts.append(f"dict {_size(self.dict_bytes)}, {self.blocks} block(s)")
            if self.sized_blocks:
                parts.append(f"sized blocks of {_size(self.block_bytes)} (multithreaded)")
            if self.streams > 1:
                parts.append(f"{self.streams} streams")
            parts.append(f"check {self.check}")
        elif self.method == "zstd":
            sized = sum(1 for s in self.frame_content_bytes if s is not None)
            window = "single segment" if self.single_segment else f"window 2^{self.window_log}"
            parts.append(f"{self.frames} frame(s), {window}, {sized} with content size")
        elif self.method == "br" and self.dict_bytes:
            parts.append(f"window {_size(self.dict_bytes)}")
        elif self.level_hint is not None:
            parts.append(f"header says level {self.level_hint}")
        return ", ".join(parts)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"


def read_layout(method: str, data: bytes | memoryview | mmap.mmap, source: str = "") -> Layout:
    """The :class:`Layout` of ``data`` stored with ``method`` (a narinfo ``Compression``);
    ``PayloadError`` naming ``source`` when the headers are not that format's."""
    view = memoryview(data).cast("B")
    readers = {
        "xz": _xz,
        "zstd": _zstd,
        "br": _brotli,
        "gzip": _gzip,
        "bzip2": _bzip2,
    }
    reader = readers.get(method)
    if reader is None:
        return Layout(method)
    try:
        return reader(view)
    except (IndexError, struct.error, ValueError) as exc:
        raise PayloadError(f"{source}: {method} headers unreadable: {exc}") from None


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    """An xz multibyte integer at ``pos`` (§1.2): (value, next position)."""
    value = shift = 0
    for i in range(9):
        byte = view[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ValueError("xz integer longer than 9 bytes")


def _lzma2_dict(prop: int) -> int:
    """LZMA2's one-byte dictionary size (§5.3.1): 2^(p/2+12), or 3 x 2^(p/2+11) for odd p."""
    if prop > 40:
        raise ValueError(f"LZMA2 dictionary property {prop} > 40")
    if prop == 40:
        return 0xFFFFFFFF
    return (2 | (prop & 1)) << (prop // 2 + 11)


def _xz_block_header(view: memoryview, pos: int) -> tuple[bool, int | None]:
    """(the header records its sizes, LZMA2 dictionary) of the block header at ``pos``."""
    size = (view[pos] + 1) * 4
    flags = view[pos + 1]
    p = pos + 2
    sized = bool(flags & 0x40) and bool(flags & 0x80)
    if flags & 0x40:
        _, p = _varint(view, p)
    if flags & 0x80:
        _, p = _varint(view, p)
    dict_bytes = None
    for _ in range((flags & 0x03) + 1):
        fid, p = _varint(view, p)
        nprops, p = _varint(view, p)
        if fid == _LZMA2 and nprops == 1:
            dict_bytes = _lzma2_dict(view[p])
        p += nprops
    if p > pos + size:
        raise ValueError("xz block header overruns its size")
    return sized, dict_bytes


def _xz_index(view: memoryview, start: int, end: int) -> list[tuple[int, int]]:
    """The (unpadded, uncompressed) size of each block recorded in the index at ``start``."""
    if view[start] != 0:
        raise ValueError("xz index indicator is not 0")
    count, p = _varint(view, start + 1)
    if count > (end - start):
        raise ValueError(f"xz index claims {count} records")
    records = []
    for _ in range(count):
        unpadded, p = _varint(view, p)
        plain, p = _varint(view, p)
        records.append((unpadded, plain))
    return records


def _xz(view: memoryview) -> Layout:
    end = len(view)
    streams: list[tuple[int, list[tuple[int, int]]]] = []  # (start, index records)
    while end > 0:
        while end >= 4 and bytes(view[end - 4 : end]) == b"\0\0\0\0":
            end -= 4  # stream padding
        if end < 24 or bytes(view[end - 2 : end]) != b"YZ":
            raise ValueError("no xz stream footer at the end (truncated?)")
        backward = (struct.unpack_from("<I", view, end - 8)[0] + 1) * 4
        index_start = end - 12 - backward
        records = _xz_index(view, index_start, end)
        blocks_bytes = sum((u + 3) // 4 * 4 for u, _ in records)
        start = index_start - blocks_bytes - 12
        if start < 0 or bytes(view[start : start + 6]) != XZ_MAGIC:
            raise ValueError("xz stream header not where the index says")
        streams.append((start, records))
        end = start
    streams.reverse()
    first_start, first_records = streams[0]
    check = _XZ_CHECKS.get(view[first_start + 7] & 0x0F, f"id {view[first_start + 7] & 0x0F}")
    sized, dict_bytes = (False, None)
    if first_records:
        sized, dict_bytes = _xz_block_header(view, first_start + 12)
    blocks = sum(len(r) for _, r in streams)
    plain = [p for _, records in streams for _, p in records]
    return Layout(
        "xz",
        check=check,
        dict_bytes=dict_bytes,
        blocks=blocks,
        streams=len(streams),
        sized_blocks=sized,
        block_bytes=plain[0] if len(plain) > 1 else None,
    )


def _zstd_frame(view: memoryview, pos: int) -> tuple[int, dict[str, object]]:
    """Walk one frame at ``pos`` by its block headers: (next position, its header fields)."""
    fhd = view[pos + 4]
    fcs_flag, single, checksum, dict_flag = fhd >> 6, bool(fhd & 0x20), bool(fhd & 4), fhd & 3
    p = pos + 5
    window_log = None
    if not single:
        wd = view[p]
        window_log = 10 + (wd >> 3)  # the exponent; a mantissa makes it a fraction larger
        p += 1
    p += (0, 1, 2, 4)[dict_flag]
    fcs_len = (1 if single else 0, 2, 4, 8)[fcs_flag]
    content: int | None = None
    if fcs_len:
        raw = int.from_bytes(view[p : p + fcs_len], "little")
        content = raw + 256 if fcs_len == 2 else raw
    p += fcs_len
    while True:
        if p + 3 > len(view):
            raise ValueError("zstd frame truncated in a block header")
        header = int.from_bytes(view[p : p + 3], "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            raise ValueError(f"reserved zstd block type at offset {p}")
        p += 3 + (1 if kind == 1 else size)
        if p > len(view):
            raise ValueError("zstd frame truncated in a block")
        if last:
            break
    if checksum:
        p += 4
    return p, {
        "window_log": window_log,
        "single": single,
        "checksum": checksum,
        "content": content,
    }


def _zstd(view: memoryview) -> Layout:
    pos = 0
    frames: list[dict[str, object]] = []
    skippable = 0
    while pos < len(view):
        magic = struct.unpack_from("<I", view, pos)[0]
        if magic & 0xFFFFFFF0 == 0x184D2A50:
            pos += 8 + struct.unpack_from("<I", view, pos + 4)[0]
            skippable += 1
            continue
        if magic != ZSTD_MAGIC:
            raise ValueError(f"no zstd frame magic at offset {pos}")
        pos, fields = _zstd_frame(view, pos)
        frames.append(fields)
    if not frames:
        raise ValueError("no zstd frame")
    first = frames[0]
    return Layout(
        "zstd",
        check="xxh64" if first["checksum"] else None,
        window_log=first["window_log"],  # type: ignore[arg-type]
        frames=len(frames),
        frame_content_bytes=tuple(f["content"] for f in frames),  # type: ignore[misc]
        single_segment=bool(first["single"]),
        extras={"skippable_frames": skippable} if skippable else {},
    )


def _brotli(view: memoryview) -> Layout:
    b = view[0]
    if not b & 1:
        wbits = 16
    elif (b >> 1) & 7:
        wbits = 17 + ((b >> 1) & 7)
    elif (b >> 4) & 7:
        wbits = 8 + ((b >> 4) & 7)
    else:
        wbits = 17
    return Layout("br", dict_bytes=(1 << wbits) - 16, window_log=wbits)


def _gzip(view: memoryview) -> Layout:
    if bytes(view[:3]) != b"\x1f\x8b\x08":
        raise ValueError("no gzip header")
    xfl = view[8]
    hint = {2: 9, 4: 1}.get(xfl)
    return Layout("gzip", level_hint=hint, extras={"flags": view[3], "xfl": xfl})


def _bzip2(view: memoryview) -> Layout:
    if bytes(view[:3]) != b"BZh" or not 0x31 <= view[3] <= 0x39:
        raise ValueError("no bzip2 header")
    return Layout("bzip2", level_hint=view[3] - 0x30)

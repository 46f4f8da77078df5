"""What a codec spec means: the grammar, and each writer's semantics (levels, threads, frames).

A :class:`CodecSpec` says what to run; :func:`parse_spec` reads the short form
(``xz:6``, ``xz:6:parallel``, ``zstd:19:long=27``, ``zstd:3:threads=2``, ``zstd:3:frames=16M``,
``gzip:6``, ``bzip2:9``, ``br:6``, ``none``) or a Nix store-URI query string
(``compression=zstd&compression-level=19&parallel-compression=true``, or a whole store URI).
``as=WRITER`` says whose semantics apply (``reference/nar-and-compression.md`` §3,
``reference/hydra.md`` §4.5):

* ``nix`` (default): Nix up to 2.34 through libarchive. xz is liblzma preset N with CRC64,
  one thread; ``parallel`` is liblzma's multithreaded mode (independent blocks of
  3 x dictionary = 24 MiB at preset 6, over all cores). zstd is one streamed frame (the
  encoder does not know the size, so the window is the level's), ``parallel`` adds libzstd
  workers on all cores. A br level given in a query string is ignored, as Nix ignores it.
* ``nix235``: Nix 2.35+. zstd is written as independent 16 MiB frames, each with its
  content size, and ``parallel-compression`` defaults to true for zstd (min(cores, 4)
  workers).
* ``rust``: the Rust queue runner's async-compression levels (default xz 5, zstd 3);
  parallel exists only for xz, with 4 threads.
* ``rust-presigned``: the Rust builder with presigned uploads (production since 2026):
  single thread per NAR, and the level mapped 1 -> fastest, 2-8 -> as given, 9 -> best,
  anything else -> default, so a configured 19 runs as zstd 3.

:mod:`profiler.codecs.run` runs a spec; :mod:`profiler.codecs.streams` reads what one wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl

from profiler.errors import UsageError

MiB = 1 << 20
METHODS = ("xz", "zstd", "br", "gzip", "bzip2", "none")
WRITERS = ("nix", "nix235", "rust", "rust-presigned")
LEVELS = {"xz": (0, 9), "zstd": (1, 22), "br": (0, 11), "gzip": (1, 9), "bzip2": (1, 9)}
DEFAULT_LEVEL = {"xz": 6, "zstd": 3, "br": 11, "gzip": 6, "bzip2": 9}
_RUST_DEFAULT = {"xz": 5, "zstd": 3, "br": 11, "gzip": 6, "bzip2": 6}
_RUST_FASTEST = {"xz": 0, "zstd": 1, "br": 0, "gzip": 1, "bzip2": 1}
_RUST_BEST = {"xz": 9, "zstd": 22, "br": 11, "gzip": 9, "bzip2": 9}
XZ_DICT_BYTES = {
    0: 256 << 10,
    1: MiB,
    2: 2 * MiB,
    3: 4 * MiB,
    4: 4 * MiB,
    5: 8 * MiB,
    6: 8 * MiB,
    7: 16 * MiB,
    8: 32 * MiB,
    9: 64 * MiB,
}
NIX235_FRAME_BYTES = 16 * MiB
MIN_FRAME_BYTES = 64 << 10  # smaller frames are all headers and lost matches: nothing writes them
MAX_FRAME_BYTES = 4 << 30
MAX_THREADS = 256  # libzstd's limit on workers (ZSTDMT_NBWORKERS_MAX on 64-bit)
CLIENT_MAX_WINDOW_LOG = 27  # Nix clients fail to decode larger zstd windows (§3.4)
_EXTENSIONS = {"xz": ".xz", "zstd": ".zst", "br": ".br", "bzip2": ".bz2"}


@dataclass(frozen=True)
class CodecSpec:
    """One compression configuration, resolved to what actually runs.

    ``threads`` is the number of compressor threads (1 = single-threaded); ``frame_bytes``
    splits zstd output into independent frames of that much input (0 = one frame);
    ``block_bytes`` is xz's independent block size in parallel mode. ``notes`` records how
    the spec was interpreted (e.g. a level that a writer ignores).
    """

    method: str
    level: int | None
    threads: int = 1
    extreme: bool = False
    long_log: int | None = None
    frame_bytes: int = 0
    block_bytes: int = 0
    writer: str = "nix"
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        """Canonical short form, e.g. ``xz:6``, ``zstd:19:long=27``, ``xz:6:threads=2``."""
        if self.method == "none":
            return "none"
        parts = [self.method, f"{self.level}{'e' if self.extreme else ''}"]
        if self.long_log:
            parts.append(f"long={self.long_log}")
        if self.frame_bytes:
            parts.append(f"frames={_size_label(self.frame_bytes)}")
        if self.threads != 1:
            parts.append(f"threads={self.threads}")
        return ":".join(parts)

    @property
    def extension(self) -> str:
        """File suffix after ``.nar`` in a binary cache (gzip and none get none)."""
        return _EXTENSIONS.get(self.method, "")

    @property
    def client_compatible(self) -> bool:
        """False when Nix clients cannot decode it (zstd window above 128 MiB)."""
        return not (self.long_log and self.long_log > CLIENT_MAX_WINDOW_LOG)


def _cores() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def _valid_levels() -> str:
    return ", ".join(f"{m} {lo}-{hi}" for m, (lo, hi) in LEVELS.items())


def _int(text: str, what: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"codec {spec!r}: {what} must be an integer, got {text!r}") from None


_SIZE_UNITS = {"K": 1 << 10, "M": MiB, "G": 1 << 30}


def _size(text: str, spec: str) -> int:
    mult = _SIZE_UNITS.get(text[-1:].upper(), 1)
    number = text[:-1] if text[-1:].upper() in _SIZE_UNITS else text
    size = _int(number, "frames", spec) * mult
    if not MIN_FRAME_BYTES <= size <= MAX_FRAME_BYTES:
        raise UsageError(
            f"codec {spec!r}: frames={text} out of range: a frame holds 64K to 4G of input "
            "(Nix 2.35 writes 16M)"
        )
    return size


def _size_label(size: int) -> str:
    """``16M``, ``1536K``, ``65537``: exact, so that distinct frame sizes never share a label
    (and the label parses back to the same size)."""
    if size % MiB == 0:
        return f"{size // MiB}M"
    return f"{size // 1024}K" if size % 1024 == 0 else str(size)


@dataclass
class _Request:
    """What the user asked for, before a writer's semantics are applied."""

    method: str
    level: int | None = None
    parallel: bool | None = None
    threads: int | None = None
    extreme: bool = False
    long_log: int | None = None
    frame_bytes: int | None = None
    writer: str = "nix"
    from_query: bool = False
    notes: list[str] = field(default_factory=list)


def parse_spec(text: str, *, default_writer: str | None = None) -> CodecSpec:
    """Parse a short form or a store-URI query string; ``UsageError`` lists what is valid.

    ``default_writer`` is whose semantics apply when ``text`` names none (no ``as=``):
    ``nix`` when None. A caller that knows who writes (the testbed's Rust generation) says
    so here instead of editing the text.
    """
    text = text.strip()
    writer = default_writer or "nix"
    if "=" in text.split(":", 1)[0] or "?" in text or text.startswith("compression"):
        req = _parse_query(text, writer)
    else:
        req = _parse_short(text, writer)
    return _resolve(req, text)


def _parse_short(text: str, writer: str) -> _Request:
    method, *opts = text.split(":")
    method = {"zst": "zstd", "bz2": "bzip2", "brotli": "br", "identity": "none"}.get(method, method)
    _check_method(method, text)
    req = _Request(method, writer=writer)
    if opts and "=" not in opts[0] and opts[0] not in ("parallel", "extreme"):
        level = opts.pop(0)
        if method == "xz" and level.endswith("e"):
            req.extreme, level = True, level[:-1]
        req.level = _int(level, "level", text)
    for opt in opts:
        key, _, value = opt.partition("=")
        if key == "parallel" and not value:
            req.parallel = True
        elif key == "extreme" and not value:
            req.extreme = True
        elif key == "threads":
            req.threads = _int(value, "threads", text)
        elif key == "long":
            req.long_log = _int(value, "long", text) if value else 27
        elif key == "frames":
            req.frame_bytes = _size(value, text) if value else NIX235_FRAME_BYTES
        elif key == "as":
            req.writer = value
        else:
            raise UsageError(
                f"codec {text!r}: unknown option {opt!r} (valid: LEVEL, parallel, "
                "extreme, threads=N, long[=N], frames=SIZE, as=WRITER)"
            )
    return req


_QUERY_IGNORED = {
    "write-nar-listing",
    "ls-compression",
    "log-compression",
    "narinfo-compression",
    "index-debug-info",
    "write-debug-info",
    "secret-key",
    "secret-keys",
    "local-nar-cache",
    "region",
    "endpoint",
    "profile",
    "scheme",
    "multipart-upload",
    "multipart-chunk-size",
    "multipart-threshold",
    "addressing-style",
    "storage-class",
    "buffer-size",
    "want-mass-query",
    "priority",
    "store",
}


def _parse_query(text: str, writer: str) -> _Request:
    query = text.split("?", 1)[1] if "?" in text else text
    pairs = dict(parse_qsl(query, keep_blank_values=True))
    method = pairs.pop("compression", "xz")  # Nix's default
    method = {"zst": "zstd", "identity": "none"}.get(method, method)
    _check_method(method, text)
    req = _Request(method, from_query=True, writer=pairs.pop("as", writer))
    level = pairs.pop("compression-level", "-1")
    req.level = None if level == "-1" else _int(level, "compression-level", text)
    parallel = pairs.pop("parallel-compression", None)
    if parallel is not None:
        req.parallel = _bool(parallel, "parallel-compression", text)
    ignored = sorted(k for k in pairs if k in _QUERY_IGNORED)
    unknown = sorted(k for k in pairs if k not in _QUERY_IGNORED)
    if unknown:
        raise UsageError(
            f"codec {text!r}: unknown store setting(s) {', '.join(map(repr, unknown))}; "
            "known: compression, compression-level, parallel-compression, as"
        )
    if ignored:
        req.notes.append(f"store settings not about NAR compression ignored: {', '.join(ignored)}")
    return req


def _bool(value: str, what: str, text: str) -> bool:
    """A Nix boolean setting's value (``true``/``false``, also ``yes``/``no``, ``1``/``0``)."""
    word = value.strip().lower()
    if word not in ("true", "1", "yes", "false", "0", "no"):
        raise UsageError(f"codec {text!r}: {what} must be true or false, got {value!r}")
    return word in ("true", "1", "yes")


def _check_method(method: str, text: str) -> None:
    if method not in METHODS:
        raise UsageError(f"codec {text!r}: unknown method {method!r}; valid: {', '.join(METHODS)}")


def _resolve(req: _Request, text: str) -> CodecSpec:
    if req.writer not in WRITERS:
        raise UsageError(
            f"codec {text!r}: unknown writer as={req.writer!r}; valid: {', '.join(WRITERS)}"
        )
    resolve = {
        "nix": _as_nix,
        "nix235": _as_nix,
        "rust": _as_rust,
        "rust-presigned": _as_rust_presigned,
    }[req.writer]
    if req.writer in ("nix", "nix235") and req.level is not None:
        # Nix passes the level on as given (the Rust writers clamp or map it): check it
        # before anything looks a level up in a table
        _check_level(req.method, req.level, text)
    if req.frame_bytes is not None and req.method != "zstd":
        raise UsageError(f"codec {text!r}: frames=SIZE is a zstd option")
    if req.threads is not None and not 1 <= req.threads <= MAX_THREADS:
        raise UsageError(
            f"codec {text!r}: threads must be at least 1 and at most {MAX_THREADS}, "
            f"got {req.threads}"
        )
    spec = resolve(req, text)
    if spec.level is not None:
        _check_level(spec.method, spec.level, text)
    if spec.long_log is not None and not 10 <= spec.long_log <= 31:
        raise UsageError(f"codec {text!r}: long={spec.long_log} out of range (10-31)")
    if spec.long_log is not None and spec.method != "zstd":
        raise UsageError(f"codec {text!r}: long=N is a zstd option")
    if spec.extreme and spec.method != "xz":
        raise UsageError(f"codec {text!r}: extreme is an xz option")
    notes = [*req.notes, *spec.notes]
    if not spec.client_compatible:
        notes.append(f"window 2^{spec.long_log} exceeds what Nix clients decode (2^27)")
    return replace(spec, notes=tuple(notes))


def _check_level(method: str, level: int, text: str) -> None:
    if method not in LEVELS:
        return  # none: no level
    lo, hi = LEVELS[method]
    if not lo <= level <= hi:
        raise UsageError(
            f"codec {text!r}: level {level} out of range for {method} (valid: {_valid_levels()})"
        )


def _threads(req: _Request, parallel_threads: int) -> int:
    if req.threads is not None:
        return req.threads
    return parallel_threads if req.parallel else 1


def _as_nix(req: _Request, text: str) -> CodecSpec:
    notes: list[str] = []
    level = req.level
    if req.method == "br" and req.from_query and level is not None:
        notes.append(f"Nix ignores compression-level for br; runs quality 11, not {level}")
        level = None
    level = DEFAULT_LEVEL.get(req.method) if level is None else level
    frames = req.frame_bytes or 0
    parallel_default = req.method == "zstd" and req.writer == "nix235"
    if req.parallel is None and parallel_default:
        req.parallel = True
    cores = _cores()
    threads = 1
    if req.method in ("xz", "zstd"):
        zstd_cap = min(cores, 4) if req.writer == "nix235" else cores
        threads = _threads(req, cores if req.method == "xz" else zstd_cap)
    elif req.parallel or req.threads:
        notes.append(f"{req.method} has no parallel mode; runs single-threaded")
    if req.method == "zstd" and req.writer == "nix235" and req.frame_bytes is None:
        frames = NIX235_FRAME_BYTES
    block = 0
    if req.method == "xz" and threads > 1 and level is not None:
        block = max(3 * XZ_DICT_BYTES[level], MiB)
    return CodecSpec(
        method=req.method,
        level=level if req.method != "none" else None,
        threads=threads,
        extreme=req.extreme,
        long_log=req.long_log,
        frame_bytes=frames,
        block_bytes=block,
        writer=req.writer,
        notes=tuple(notes),
    )


def _as_rust(req: _Request, text: str) -> CodecSpec:
    level = _RUST_DEFAULT.get(req.method) if req.level is None else req.level
    if req.level is not None and req.method in LEVELS:
        lo, hi = LEVELS[req.method]
        level = min(max(req.level, lo), hi)  # async-compression's Precise(n) clamps
    threads = 4 if (req.method == "xz" and req.parallel) else 1
    notes = []
    if req.parallel and req.method != "xz":
        notes.append("the Rust runner has parallel compression only for xz")
    if req.frame_bytes:
        notes.append("the Rust runner writes one zstd frame; frames=SIZE ignored")
    block = max(3 * XZ_DICT_BYTES[level], MiB) if threads > 1 and level is not None else 0
    return CodecSpec(
        method=req.method,
        level=level if req.method != "none" else None,
        threads=threads,
        extreme=req.extreme,
        long_log=req.long_log,
        frame_bytes=0,
        block_bytes=block,
        writer=req.writer,
        notes=tuple(notes),
    )


def _as_rust_presigned(req: _Request, text: str) -> CodecSpec:
    n = req.level
    if req.method == "none":
        level = None
    elif n == 1:
        level = _RUST_FASTEST[req.method]
    elif n is not None and 2 <= n <= 8:
        level = n
    elif n == 9:
        level = _RUST_BEST[req.method]
    else:
        level = _RUST_DEFAULT[req.method]
    notes = []
    if n is not None and level != n and req.method != "none":
        notes.append(f"presigned upload maps level {n} to {level}")
    if req.parallel:
        notes.append("presigned uploads compress single-threaded per NAR")
    if req.frame_bytes:
        notes.append("the Rust builder writes one zstd frame; frames=SIZE ignored")
    return CodecSpec(
        method=req.method,
        level=level,
        threads=1,
        extreme=False,
        long_log=req.long_log,
        frame_bytes=0,
        block_bytes=0,
        writer=req.writer,
        notes=tuple(notes),
    )

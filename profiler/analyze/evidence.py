"""Which codec and upload mode the farm really used, taken from evidence, each with its source.

Order of trust: what the operator says (``--codec``, their store URI's query) for the level;
what the run shows (object names in the journal: ``.../nar/<hash>.nar.xz`` in C++ S3 upload
lines, Nix >= 2.33 upload lines, the Rust builders' presigned upload lines; the builders'
"Start uploading paths using presigned urls" / "... to queue runner directly" lines for the
mode); and only then the documented default of the generation
(:data:`profiler.hydra.facts.DEFAULT_COMPRESSION`: xz in both, at the library's default level,
xz preset 6). In presigned mode the builder maps the level it is sent
(:func:`profiler.hydra.facts.presigned_level`), so the operator's level is read with the
``rust-presigned`` writer semantics.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from profiler.errors import ProfilerError
from profiler.hydra import facts
from profiler.payloads.binary_cache import parse_narinfo

_NAR_OBJECT = re.compile(r"\.nar\.(xz|zst|bz2|br|gz|lz4|lzip)\b|\.nar(?=['\s]|$)")
_EXTENSION_METHOD = {
    "xz": "xz",
    "zst": "zstd",
    "bz2": "bzip2",
    "br": "br",
    "gz": "gzip",
    "lz4": "lz4",
    "lzip": "lzip",
    "": "none",
}
_DEFAULT_LEVEL_SPEC = {"xz": "xz:6", "zstd": "zstd:3", "bzip2": "bzip2:9", "br": "br:11",
                       "gzip": "gzip:6", "none": "none"}  # fmt: skip


@dataclass(frozen=True)
class CodecChoice:
    """The codec spec the analysis uses, where it came from, and the upload mode."""

    spec: str
    source: str
    mode: str | None = None  # Rust: "presigned" | "direct" | None (not seen)
    mode_source: str = ""
    methods_seen: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def methods_in_logs(logs: pd.DataFrame | None) -> Counter[str]:
    """Compression methods named by NAR objects in the journal's upload lines."""
    seen: Counter[str] = Counter()
    if logs is None or logs.empty:
        return seen
    for column in ("url", "path", "object", "dest"):
        if column not in logs:
            continue
        for value in logs[column].dropna().astype(str):
            if "/nar/" not in value and not value.startswith("nar/"):
                continue
            m = _NAR_OBJECT.search(value)
            if m is not None:
                seen[_EXTENSION_METHOD.get(m.group(1) or "", "none")] += 1
    return seen


def methods_in_cache(cache_dir: str, limit: int = 500) -> tuple[Counter[str], int]:
    """``Compression:`` of up to ``limit`` narinfos of a ``file://`` binary cache directory
    (the first ones by name: a stable sample), and how many narinfos were read."""
    seen: Counter[str] = Counter()
    try:
        names = sorted(n for n in os.listdir(cache_dir) if n.endswith(".narinfo"))[:limit]
    except OSError as e:
        raise ProfilerError(f"{cache_dir}: cannot list the binary cache ({e.strerror})") from None
    for name in names:
        path = os.path.join(cache_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                info = parse_narinfo(f.read(), path)
        except (OSError, ProfilerError):
            continue
        seen[info.compression or "bzip2"] += 1
    return seen, len(names)


def upload_mode(logs: pd.DataFrame | None) -> tuple[str | None, str]:
    """The Rust builders' upload mode from their own lines, with the count behind it."""
    if logs is None or logs.empty or "mode" not in logs or "event" not in logs:
        return None, ""
    lines = logs[logs["event"].isin(["upload_started", "upload_finished"])]
    counts = lines["mode"].dropna().value_counts()
    if counts.empty:
        return None, ""
    mode = str(counts.index[0])
    detail = ", ".join(f"{n} {m}" for m, n in counts.items())
    return mode, f"builders' upload lines ({detail})"


def _with_writer(spec: str, writer: str) -> str:
    if "as=" in spec:
        return spec
    return f"{spec}&as={writer}" if "=" in spec else f"{spec}:as={writer}"


def choose_codec(
    logs: pd.DataFrame | None,
    generation: str,
    given: str | None = None,
    cache_dir: str | None = None,
) -> CodecChoice:
    """The codec for the compression split, from ``given`` (the operator's), else the
    narinfos' ``Compression:`` of ``cache_dir``, else the journal's NAR object names, else
    the generation's documented default; the source is said."""
    seen = methods_in_logs(logs)
    where = "journal"
    if cache_dir is not None:
        stored, read = methods_in_cache(cache_dir)
        if stored:
            seen, where = stored, f"narinfo Compression: of {read} narinfo(s) in {cache_dir}"
    mode, mode_source = upload_mode(logs) if generation == "rust" else (None, "")
    notes: list[str] = []
    if given:
        spec, source = given, "given by the operator (--codec)"
        method = _method_of(given)
        if seen and method is not None and method not in seen:
            notes.append(
                f"--codec says {method} but the {where.split(':')[0]} shows "
                + ", ".join(f"{m} ({n})" for m, n in seen.most_common())
            )
    elif seen:
        method = seen.most_common(1)[0][0]
        spec = _DEFAULT_LEVEL_SPEC.get(method, "xz:6")
        count = sum(seen.values())
        source = (
            f"journal: {count} NAR object name(s) end in .{_suffix(method)}"
            if where == "journal"
            else f"{where}: {seen[method]} of {count} say {method}"
        ) + "; the level is not recorded there: the library default assumed"
    else:
        method = facts.DEFAULT_COMPRESSION.get(generation, "xz")
        spec = _DEFAULT_LEVEL_SPEC[method]
        cite = facts.DEFAULT_COMPRESSION_SOURCES[1 if generation == "rust" else 0]
        source = (
            f"assumed: the {generation} default ({method}, library default level; {cite}); "
            "no codec in the run's evidence: pass --codec with the farm's store URI query"
        )
    if mode == "presigned":
        spec = _with_writer(spec, "rust-presigned")
        notes.append(
            "presigned uploads: the builders compress, mapping the configured level "
            "(1 fastest, 2-8 as given, 9 best, others the library default; "
            f"{facts.PRESIGNED_LEVEL_SOURCE})"
        )
    return CodecChoice(spec, source, mode, mode_source, dict(seen), tuple(notes))


def _suffix(method: str) -> str:
    return {v: k for k, v in _EXTENSION_METHOD.items()}.get(method, method)


def _method_of(spec: str) -> str | None:
    if "compression=" in spec:
        m = re.search(r"(?:^|[?&])compression=([a-z0-9]+)", spec)
        return m.group(1).replace("zst", "zstd").replace("zstdd", "zstd") if m else None
    head = spec.split(":", 1)[0]
    return head or None

"""``cache audit``: sample a binary cache's narinfos, fetch and check each NAR, infer its
writer, measure the codecs asked for on the same NARs, and bill the lot.

Everything is read-only. A fault (a missing object, a wrong hash, a damaged stream) is one
line and the audit goes on; an interrupt keeps what was audited (the result says
``interrupted``). Memory stays bounded: each NAR is spooled to disk, mapped, and deleted
before the next.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from profiler.audit import bill as billing
from profiler.audit.headers import read_layout
from profiler.audit.infer import DEFAULT_MAX_INFER_BYTES, Inference, infer
from profiler.audit.verify import Fault, Fetched, fetch
from profiler.bench.derive import Assumptions
from profiler.codecs import make_codec, parse_spec
from profiler.errors import PayloadError
from profiler.payloads.binary_cache import NarInfo, parse_narinfo
from profiler.units import format_bytes

DEFAULT_CODECS = ("xz:6", "zstd:3", "zstd:19")
DEFAULT_PROJECT_BYTES = 256 << 20
# the codecs compress a NAR in memory (the bench's whole-buffer codecs): larger NARs are not
# projected, so memory stays bounded; the bill says how many NARs each projection covers
PROJECT_MAX_NAR_BYTES = 256 << 20
Progress = Callable[[str], object]


class _Listed(Protocol):
    key: str
    last_modified: datetime | None


class CacheStore(Protocol):
    url: str

    def list_narinfos(self, since: datetime | None = None) -> Iterator[Any]: ...
    def read_bytes(self, key: str, max_bytes: int = 1 << 20) -> bytes: ...
    def open(self, key: str) -> Any: ...


@dataclass(frozen=True)
class AuditOptions:
    """What to audit and how hard. ``sample`` None: every narinfo listed."""

    sample: int | None = 200
    seed: int = 0
    order: str = "random"  # or "listing": the first ``sample`` in listing order
    since: datetime | None = None
    codecs: Sequence[str] = DEFAULT_CODECS
    project_bytes: int = DEFAULT_PROJECT_BYTES
    max_infer_bytes: int = DEFAULT_MAX_INFER_BYTES
    configured: str | None = None
    assumptions: Assumptions = field(default_factory=Assumptions)


@dataclass
class AuditResult:
    cache: str
    options: AuditOptions
    listed: int | None
    nars: list[dict[str, Any]]
    faults: list[Fault]
    started: str
    seconds: float = 0.0
    interrupted: bool = False
    bill: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.nars)

    def to_json(self) -> dict[str, Any]:
        """The document other tools read: ``nars`` (``url``, ``nar_size``, ``file_size``,
        ``method``, ``level``, ``writer``, ...) and ``summary``."""
        return {
            "version": 1,
            "cache": self.cache,
            "started": self.started,
            "seconds": self.seconds,
            "interrupted": self.interrupted,
            "listed": self.listed,
            "options": {
                "sample": self.options.sample,
                "seed": self.options.seed,
                "order": self.options.order,
                "since": self.options.since.isoformat() if self.options.since else None,
                "codecs": list(self.options.codecs),
                "configured": self.options.configured,
            },
            "nars": self.nars,
            "faults": [{"kind": f.kind, "key": f.key, "message": f.message} for f in self.faults],
            "summary": self.summary,
            "bill": self.bill,
        }


LISTING_PROGRESS_EVERY = 10_000


def _counted(listing: Iterable[_Listed], say: Progress | None) -> Iterator[_Listed]:
    """``listing``, saying how far it got every :data:`LISTING_PROGRESS_EVERY` items (a
    bucket of millions of narinfos takes minutes to list)."""
    for n, item in enumerate(listing, 1):
        if say is not None and n % LISTING_PROGRESS_EVERY == 0:
            say(f"audit: listing: {n} narinfos so far")
        yield item


def choose(
    listing: Iterable[_Listed], options: AuditOptions, say: Progress | None = None
) -> tuple[list[_Listed], int]:
    """The narinfos to audit and how many were listed: a seeded uniform sample (reservoir,
    so the listing is never held) or the first ``sample`` in listing order."""
    listing = _counted(listing, say)
    if options.order == "listing":
        chosen: list[_Listed] = []
        count = 0
        for item in listing:
            count += 1
            if options.sample is None or len(chosen) < options.sample:
                chosen.append(item)
        return chosen, count
    rng = random.Random(options.seed)
    reservoir: list[_Listed] = []
    count = 0
    for item in listing:
        count += 1
        if options.sample is None or len(reservoir) < options.sample:
            reservoir.append(item)
        else:
            j = rng.randrange(count)
            if j < options.sample:
                reservoir[j] = item
    reservoir.sort(key=lambda x: x.key)
    rng.shuffle(reservoir)
    return reservoir, count


def _project(fetched: Fetched, codecs: Sequence[str]) -> dict[str, Any]:
    """Each codec's size and CPU on this NAR (a fresh encoder per NAR, as writers run)."""
    out: dict[str, Any] = {}
    data = bytes(fetched.nar())
    for text in codecs:
        codec = make_codec(parse_spec(text))
        c0 = time.process_time()
        packed = codec.compress(data)
        c1 = time.process_time()
        codec.decompress(packed)
        c2 = time.process_time()
        out[f"{text}|bytes"] = len(packed)
        out[f"{text}|compress_cpu_seconds"] = c1 - c0
        out[f"{text}|decompress_cpu_seconds"] = c2 - c1
    return out


def _row(info: NarInfo, listed: _Listed, fetched: Fetched, inf: Inference) -> dict[str, Any]:
    return {
        "url": info.url,
        "store_path": info.store_path,
        "nar_size": info.nar_size,
        "file_size": fetched.file_size,
        "method": info.compression,
        "level": inf.level,
        "writer": inf.writer,
        "exact": inf.exact,
        "matches": list(inf.matches),
        "layout": inf.layout,
        "size_class": billing.size_class(info.nar_size),
        "decompress_cpu_seconds": fetched.decompress_cpu_seconds,
        "fetch_seconds": fetched.fetch_seconds,
        "infer_seconds": inf.seconds,
        "candidates_tried": inf.tried,
        "compared_bytes": inf.compared_bytes,
        "references": len(info.references),
        "last_modified": listed.last_modified.isoformat() if listed.last_modified else None,
    }


def audit_one(
    store: CacheStore, listed: _Listed, options: AuditOptions, scratch: str, budget: list[int]
) -> tuple[dict[str, Any] | None, list[Fault]]:
    """One narinfo: (its row, or None when it could not be audited; its faults)."""
    key = listed.key
    try:
        text = store.read_bytes(key).decode("utf-8")
        info = parse_narinfo(text, key)
    except UnicodeDecodeError:
        return None, [Fault("narinfo", key, "not UTF-8 text")]
    except PayloadError as exc:
        return None, [Fault(_kind(exc, "narinfo"), key, _message(exc, key))]
    try:
        fetched = fetch(store, info, scratch)
    except PayloadError as exc:
        return None, [Fault(_kind(exc, "nar"), info.url, _message(exc, info.url))]
    try:
        if fetched.faults:
            return None, fetched.faults
        layout = read_layout(info.compression, fetched.stored(), info.url)
        inf = infer(
            info.compression, layout, fetched.nar(), fetched.stored(),
            max_bytes=options.max_infer_bytes,
        )  # fmt: skip
        row = _row(info, listed, fetched, inf)
        if options.codecs and budget[0] > 0 and info.nar_size <= PROJECT_MAX_NAR_BYTES:
            row.update(_project(fetched, options.codecs))
            budget[0] -= info.nar_size
        return row, []
    except PayloadError as exc:
        return None, [Fault("headers", info.url, _message(exc, info.url))]
    finally:
        fetched.close()


def _kind(exc: Exception, what: str) -> str:
    return f"missing-{what}" if type(exc).__name__ == "ObjectMissing" else f"{what}-unreadable"


def _message(exc: Exception, key: str) -> str:
    text = str(exc)
    return text.split(f"{key}: ", 1)[-1] if key in text else text


def run_audit(
    store: CacheStore, options: AuditOptions, progress: Progress | None = None
) -> AuditResult:
    """Audit ``store`` as ``options`` say; an interrupt ends it early with what was done."""
    say = progress or (lambda _m: None)
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    chosen, listed = choose(store.list_narinfos(options.since), options, say)
    say(f"audit: {len(chosen)} of {listed} narinfos listed in {store.url}")
    result = AuditResult(store.url, options, listed, [], [], started)
    scratch = tempfile.mkdtemp(prefix="hydra-profiler-audit-")
    budget = [options.project_bytes]
    read_bytes = 0
    try:
        for i, item in enumerate(chosen, 1):
            row, faults = audit_one(store, item, options, scratch, budget)
            result.faults += faults
            for f in faults:
                say(f"fault: {f.line()}")
            if row is not None:
                result.nars.append(row)
                read_bytes += row["file_size"]
            elapsed = time.perf_counter() - t0
            eta = elapsed / i * (len(chosen) - i)
            say(
                f"audit: {i}/{len(chosen)} NARs, {format_bytes(read_bytes)} read, "
                f"{len(result.faults)} fault(s), ETA {eta:.0f} s"
            )
    except KeyboardInterrupt:
        result.interrupted = True
        say(f"audit: interrupted after {len(result.nars)} NARs; keeping them")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    table = result.table()
    result.bill = billing.bill(
        table,
        list(options.codecs),
        listed=listed if options.since is None else None,
        assumptions=options.assumptions,
        seed=options.seed,
    )
    result.summary = summarize(table, result.faults, options.configured)
    return result


def summarize(
    table: pd.DataFrame, faults: Sequence[Fault], configured: str | None
) -> dict[str, Any]:
    """What the cache holds, in a few fields and one sentence."""
    out: dict[str, Any] = {"nars": len(table), "faults": len(faults)}
    out["fault_kinds"] = dict(Counter(f.kind for f in faults))
    if table.empty:
        out["headline"] = "no NAR could be audited" + (f" ({len(faults)} faults)" if faults else "")
        return out
    exact = table[table["exact"]]
    out["exact"] = len(exact)
    writers = Counter(
        (m, lv if lv == lv else None, _kind_of(layout))
        for m, lv, layout in zip(table["method"], table["level"], table["layout"], strict=True)
    )
    out["writers"] = [
        {"method": m, "level": None if lv is None else int(lv), "layout": k, "nars": n}
        for (m, lv, k), n in writers.most_common()
    ]
    (method, level, kind), count = writers.most_common(1)[0]
    share = count / len(table)
    main = f"{method}" + (f" level {int(level)}" if level is not None else " (level unknown)")
    consistent = 0
    if level is not None:
        for lv, matches in zip(table["level"], table["matches"], strict=True):
            if lv != lv or lv is None:  # a tie: is the main level among its candidates?
                consistent += any(_label_level(m) == int(level) for m in matches)
    out["ties_consistent"] = consistent
    sample = table[(table["method"] == method) & (table["level"] == level)]
    if len(sample):  # who writes that way, from the inference of one such NAR
        out["written_as_by"] = str(sample["writer"].iloc[0]).split("; ")[1:]
    also = f"; {consistent} more tie with it among others" if consistent else ""
    out["headline"] = (
        f"{main}, {kind} ({count} of {len(table)} NARs, {share:.0%}{also}; "
        f"{len(exact)} reproduced exactly)"
    )
    if configured:
        out["configured"] = configured
        out["versus_configured"] = versus_configured(
            method, None if level is None else int(level), configured
        )
        out["headline"] += f"; {out['versus_configured']}"
    return out


def _label_level(label: str) -> int | None:
    parts = label.split(":")
    level = parts[1].rstrip("e") if len(parts) > 1 else ""
    return int(level) if level.isdigit() else None


def _kind_of(layout: str) -> str:
    if "multithreaded" in layout:
        return "multithreaded blocks"
    if "with content size" in layout and not layout.endswith(" 0 with content size"):
        return "sized frames"
    return "one stream"


def versus_configured(method: str, level: int | None, configured: str) -> str:
    """How what is stored compares with the farm's configuration (a store URI query or a
    codec spec), read as each writer reads it: Nix passes the level on (default xz 6, zstd
    3); the Rust runner's direct uploads too, with its own defaults (xz 5, zstd 3); its
    presigned uploads map it (hydra 14332fbf subprojects/crates/binary-cache/src/
    presigned.rs:42-47). Equal for one of them, or unexplained."""
    nix = parse_spec(configured)
    if nix.method != method:
        return f"not the configured {nix.method}: the cache holds {method}"
    if level is None:
        return "level not determined"
    readings = {
        "Nix": nix.level,
        "the Rust runner (direct upload)": parse_spec(configured, default_writer="rust").level,
        "the Rust builders (presigned upload)": parse_spec(
            configured, default_writer="rust-presigned"
        ).level,
    }
    who = [name for name, lv in readings.items() if lv == level]
    given = _given_level(configured)
    asked = f"level {given}" if given is not None else "no level (each writer's default)"
    if not who:
        return f"not the configured {asked}: no known writer writes it at {level}"
    if given is not None and given != level:
        return (
            f"not the configured {given}: {' and '.join(who)} write {given} as {level} "
            "(hydra 14332fbf subprojects/crates/binary-cache/src/presigned.rs:42-47)"
        )
    return f"as configured ({asked}, as {' or '.join(who)} write it)"


def _given_level(configured: str) -> int | None:
    """The level the configuration states, or None when it leaves the default."""
    spec = parse_spec(configured, default_writer="nix")
    text = configured.strip()
    if "compression-level=" in text:
        value = text.split("compression-level=", 1)[1].split("&", 1)[0]
        return None if value.strip() == "-1" else int(value)
    short = text.split(":")
    if len(short) > 1 and short[1].rstrip("e").isdigit():
        return spec.level
    return None

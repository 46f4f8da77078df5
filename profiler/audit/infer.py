"""Which writer produced a stored NAR: recompress with the candidates the headers leave and
keep those whose output is the stored object, byte for byte.

Each candidate streams the NAR through its encoder and compares what comes out with the
stored bytes at the same offset; at the first difference it is dropped, so a wrong
candidate costs a few hundred KiB of compression and the right one a full pass (a match is
the whole output, equal, which is stronger than an equal size). When several candidates
survive (a small NAR that two levels compress identically) they tie and the level is
reported as unknown unless they agree on it (ties are looked for up to
:data:`TIE_CHECK_BYTES`; above it the first match is taken, and the writer says so). When
none survives, the writer is not one this tool knows (another library version, another
program): no level is claimed, and the writer says which candidates the headers allowed.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from dataclasses import dataclass

from profiler.audit.headers import Layout
from profiler.audit.writers import Candidate, candidates, writers_for

# fed at a time: a wrong candidate is dropped at its first output that differs
CHUNK_BYTES = 128 << 10
DEFAULT_MAX_INFER_BYTES = 256 << 20
# up to this NAR size every candidate is tried, so ties show; above it the first candidate
# that reproduces the bytes is taken (the candidates are ordered most likely first)
TIE_CHECK_BYTES = 16 << 20
SMALL_NAR_BYTES = 4096


@dataclass(frozen=True)
class Inference:
    """The verdict on one NAR's writer."""

    method: str
    level: int | None  # None: candidates tie on different levels, or none matched
    exact: bool  # the stored bytes were reproduced (over ``compared_bytes`` of the NAR)
    matches: tuple[str, ...]  # labels of the candidates that reproduced it
    tried: int
    writer: str  # short description for people
    layout: str  # what the headers said
    compared_bytes: int  # of the NAR fed to the encoders (less than NarSize: a prefix match)
    seconds: float = 0.0


def _run(cand: Candidate, nar: mmap.mmap | bytes, stored: mmap.mmap | bytes, limit: int) -> bool:
    """True when ``cand`` reproduces ``stored`` from ``nar`` (over the first ``limit`` bytes of
    the NAR when the NAR is longer: then only the output produced so far is compared)."""
    enc = cand.encoder()
    pos = 0
    n = min(len(nar), limit)
    for start in range(0, n, CHUNK_BYTES):
        out = enc.compress(bytes(nar[start : min(start + CHUNK_BYTES, n)]))
        if out:
            if stored[pos : pos + len(out)] != out:
                return False
            pos += len(out)
    if n < len(nar):
        return pos > 0  # a prefix that produced output and agreed
    out = enc.flush()
    return pos + len(out) == len(stored) and stored[pos:] == out


def infer(
    method: str,
    layout: Layout,
    nar: mmap.mmap | bytes,
    stored: mmap.mmap | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_INFER_BYTES,
    clock: Callable[[], float] | None = None,
) -> Inference:
    """The writer of ``stored`` (``method``, headers ``layout``) given the NAR it holds."""
    import time

    now = clock or time.perf_counter
    t0 = now()
    if method == "none":
        return Inference("none", None, True, ("none",), 0, "uncompressed", "none", len(nar))
    cands = candidates(layout, bytes(stored[:10]))
    matched: list[Candidate] = []
    tried = 0
    for cand in cands:
        if cand.tier > 0 and any(m.tier < cand.tier for m in matched):
            continue  # a common writer reproduced it: the exotic ones are not tried
        if matched and len(nar) > TIE_CHECK_BYTES:
            break  # two levels writing megabytes byte for byte alike: not worth the time
        tried += 1
        if _run(cand, nar, stored, max_bytes):
            matched.append(cand)
    compared = min(len(nar), max_bytes)
    levels = {c.level for c in matched}
    level = levels.pop() if len(levels) == 1 else None
    if matched:
        who = writers_for(method, matched[0].level, matched[0].layout)
        label = " or ".join(c.label for c in matched[:4]) + (" ..." if len(matched) > 4 else "")
        tie = ""
        if len(matched) > 1:
            why = ""
            if len(nar) < SMALL_NAR_BYTES:
                why = ": a NAR this small gives the levels nothing to differ on"
            elif len(stored) > 0.9 * len(nar):
                why = ": the NAR barely compresses, so levels store it alike"
            tie = f" (tie: {len(matched)} candidates write these bytes{why})"
        if len(nar) > TIE_CHECK_BYTES:
            tie = " (first match; ties not looked for above 16 MiB)"
        prefix = (
            f"; matched on the first {compared >> 20} MiB of {len(nar) >> 20} MiB"
            if compared < len(nar)
            else ""
        )
        writer = f"{label}: {matched[0].layout}{tie}{prefix}; " + "; ".join(who)
    else:
        writer = _unmatched(method, layout, cands)
    return Inference(
        method=method,
        level=level,
        exact=bool(matched),
        matches=tuple(c.label for c in matched),
        tried=tried,
        writer=writer,
        layout=layout.describe(),
        compared_bytes=compared,
        seconds=now() - t0,
    )


def _unmatched(method: str, layout: Layout, cands: list[Candidate]) -> str:
    levels = sorted({c.level for c in cands if c.level is not None})
    span = f"levels {levels[0]}-{levels[-1]}" if len(levels) > 1 else f"level {levels}"
    return (
        f"no known writer reproduces it ({len(cands)} tried: {method} {span} as the headers "
        f"allow: {layout.describe()}); another program or library version wrote it"
    )

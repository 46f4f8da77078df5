"""What a binary cache already stores, as a reference row beside the measured codecs.

A payload read from a binary cache (``*.narinfo`` + ``nar/``) or from a ``.nar.*`` file was
compressed by whoever wrote it. Its method comes from the narinfo's ``Compression`` field
(missing or empty means bzip2, as Nix reads it: ``reference/nar-and-compression.md`` §2)
or, for a bare NAR file, from its extension; its ratio is ``FileSize / NarSize`` (the
narinfo's FileSize, else the file's size on disk). Nothing is timed: the row has no
speeds and is kept in ``meta.json`` (``stored``), not among the measured cells.
"""

from __future__ import annotations

import os
from typing import Any

from profiler.payloads import NarFilePayload, Payload
from profiler.payloads.resolve import method_for_path


def stored_row(payload: Payload, nar_bytes: int) -> dict[str, Any] | None:
    """The reference row of ``payload`` when it is a stored NAR file; None otherwise."""
    if not isinstance(payload, NarFilePayload) or nar_bytes <= 0:
        return None
    size = payload.file_size
    source = "narinfo FileSize"
    if size is None:
        try:
            size = os.path.getsize(payload.path)
        except OSError:
            return None
        source = "file size"
    by_name = method_for_path(payload.path)
    notes = []
    if by_name is not None and by_name != payload.compression:
        notes.append(
            f"narinfo says Compression {payload.compression}, the file name says {by_name}"
        )
    return {
        "payload": payload.name,
        "class": payload.klass,
        "codec": f"stored:{payload.compression}",
        "method": payload.compression,
        "method_from": "narinfo Compression"
        if payload.source.endswith(".narinfo")
        else "extension",
        "nar_bytes": nar_bytes,
        "compressed_bytes": size,
        "compressed_bytes_from": source,
        "ratio": size / nar_bytes,
        "path": payload.path,
        "notes": "; ".join(notes),
    }


def stored_summary(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Byte-weighted ratio per stored method over ``rows`` (sum FileSize / sum NarSize)."""
    if not rows:
        return None
    by_method: dict[str, list[int]] = {}
    for r in rows:
        sums = by_method.setdefault(r["method"], [0, 0, 0])
        sums[0] += r["nar_bytes"]
        sums[1] += r["compressed_bytes"]
        sums[2] += 1
    return {
        m: {"payloads": n, "nar_bytes": nar, "compressed_bytes": c, "ratio": c / nar}
        for m, (nar, c, n) in by_method.items()
    }

"""Versioned JSON documents: one loader for every format the package stores.

A document names its ``kind`` and ``format_version``. :func:`load_versioned` reads one,
refuses another kind or a version this release cannot read, and brings an older one up to
date through the format's migrations, one version at a time (asv's ``load_json`` /
``update_json`` habit). Each format keeps only its ``{version: migrate}`` table. Every failure
is one line naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from profiler.errors import FormatVersionError, ProfilerError

Migration = Callable[[dict[str, Any]], dict[str, Any]]


def load_versioned(
    path: str,
    *,
    kind: str,
    what: str,
    current: int,
    migrations: Mapping[int, Migration],
    error: type[ProfilerError] = ProfilerError,
    owner: str | None = None,
) -> dict[str, Any]:
    """The document at ``path`` (a ``kind``, "a ``what``" in messages) at format ``current``.

    ``migrations[n]`` turns format ``n - 1`` into ``n``. ``owner`` is what the document
    describes (a run or result directory), named when the file is missing or too new.
    Raises ``error`` for a missing, unreadable or foreign file, :class:`FormatVersionError`
    for a bad or newer version.
    """
    where = owner or path
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise error(f"{where}: not a {what} (no {name})") from None
    except RecursionError:
        raise error(f"{path}: unreadable {name}: JSON nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: unreadable {name}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise error(f"{path}: not a {what}")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatVersionError(f"{path}: invalid format_version {version!r}")
    if version > current:
        raise FormatVersionError(
            f"{where}: written by a newer hydra-profiler (format {version}, this one reads up "
            f"to {current}); upgrade hydra-profiler"
        )
    while doc["format_version"] < current:
        doc = migrations[doc["format_version"] + 1](doc)
    return doc

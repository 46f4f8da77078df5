"""Messages of the Rust queue runner and builder (``hydra-queue-runner``, ``hydra-builder``).

Both log through ``tracing_subscriber::fmt().compact()`` without ANSI
(``subprojects/crates/tracing/src/lib.rs``), so a line is
``<RFC 3339 µs>Z <LEVEL> <span:span: ><target>: <message> <span fields...>``: ``spans`` are
the names of the spans in scope (root first) and the fields of those spans follow the
message. Store paths print as base names (harmonia ``StorePath`` Display), in span fields as
``Some(ProtoStorePath(StorePath(<base>)))`` (the derived ``Debug``). Durations print with
``Debug`` (``41.234567891s``). The default filter is ``info``.
"""

from __future__ import annotations

from profiler.hydra.catalogue import Message
from profiler.hydra.sources import rust

BASE = r"[0-9a-df-np-sv-z]{32}-[^\s/]+"  # a store path's base name
MESSAGES: tuple[Message, ...] = (
    Message(
        event="build_started",
        program="rust-builder",
        level="info",
        format="Building {drv}",
        pattern=rf"Building (?P<drv>{BASE})",
        spans=("start_bidirectional_stream", "handle_request", "schedule_build"),
        target="hydra_builder::state",
        source=rust("hydra-builder/src/state.rs", 281),
        use="builder received the job: start of import + build",
    ),
    Message(
        event="upload_finished",
        program="rust-builder",
        level="info",
        format="Finished uploading paths using presigned urls. elapsed={:?}",
        pattern=r"Finished uploading paths (?P<mode>using presigned urls|to queue runner "
        r"directly)\. elapsed=(?P<elapsed>\S+)",
        types={"elapsed": "duration", "mode": "upload_mode"},
        spans=("process_build", "upload_nars", "upload_nars_presigned"),
        target="hydra_builder::state",
        source=rust("hydra-builder/src/state.rs", 1187),
        use="the builder's upload phase (presigned: compress + PUT) per step, and the mode",
    ),
)

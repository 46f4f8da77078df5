"""Log lines exactly as each queue-runner generation writes them, in three forms.

C++ (``hydra-queue-runner -v`` under systemd, reference ``hydra.md`` §2.1-2.2): Nix's
SimpleLogger writes ``<N>message`` to stderr, N the syslog priority (3 error, 4 warn,
5 notice/info, 6 talkative/chatty, 7 debug); only levels up to talkative are printed at
``-v``. Paths sit in typographic quotes (U+2018/U+2019); Nix's own messages use ASCII
quotes.

Rust: ``tracing_subscriber``'s compact format without ANSI (tracing-subscriber 0.3.23,
the version in Hydra's Cargo.lock): ``2026-11-29T03:10:49.123456Z  INFO span:span: target:
message span-fields...``, store paths as base names.

Every message is rendered from its entry in the catalogue (:mod:`profiler.hydra`): the real
format string, level, spans and target of its call site; nothing here keeps a copy of a
message. Units as the NixOS modules name them (:data:`profiler.hydra.facts.UNITS`).

Every line is written three ways: the raw stderr stream (``<unit>.stderr``), ``journalctl``
short output (``Mon DD HH:MM:SS host unit[PID]: message``, second resolution, the priority
prefix stripped into PRIORITY) and ``journalctl -o json`` records (``<unit>.journal.json``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Sequence
from typing import TextIO

from profiler import hydra
from profiler.hydra.catalogue import fill, rust_duration_text, rust_line, rust_timestamp, store_base

# C++ verbosity names -> (Nix level, syslog priority)
CXX_LEVELS = {
    "error": (0, 3),
    "warn": (1, 4),
    "notice": (2, 5),
    "info": (3, 5),
    "talkative": (4, 6),
    "chatty": (5, 6),
    "debug": (6, 7),
}
CXX_VERBOSITY = 4  # -v: up to talkative
RUST_LEVELS = {"error": "ERROR", "warn": "WARN", "info": "INFO", "debug": "DEBUG"}
RUST_PRIORITY = 6  # tracing writes no <N> prefix: journald files every stderr line as info
RUST_FILTER = {"error", "warn", "info"}  # RUST_LOG=info


class Journal:
    """One systemd unit's log: the raw stream plus journalctl short and JSON renderings."""

    def __init__(
        self,
        directory: str,
        unit: str,
        identifier: str,
        hostname: str,
        pid: int,
        generation: str,
        stem: str | None = None,
    ) -> None:
        self.generation = generation
        self.identifier = identifier
        self.hostname = hostname
        self.pid = pid
        self.unit = unit
        self._lock = threading.Lock()
        base = os.path.join(directory, stem or unit)
        self._raw: TextIO = open(base + ".stderr", "a", encoding="utf-8")
        self._short: TextIO = open(base + ".journal.txt", "a", encoding="utf-8")
        self._json: TextIO = open(base + ".journal.json", "a", encoding="utf-8")
        self.lines = 0

    def close(self) -> None:
        for f in (self._raw, self._short, self._json):
            f.close()

    def log(self, line: Line, when: float) -> None:
        """Write one catalogue-rendered message as of epoch ``when``: C++ with its ``<N>``
        priority (only up to ``-v``'s talkative), Rust in tracing-subscriber's compact
        layout (only ``info`` and above, the default filter)."""
        level, message, spans, target = line
        if self.generation == "cxx":
            nix_level, priority = CXX_LEVELS[level]
            if nix_level > CXX_VERBOSITY:
                return
            raw = f"<{priority}>{message}"
        else:
            if level not in RUST_FILTER:
                return
            message = rust_line(rust_timestamp(when), RUST_LEVELS[level], spans, target, message)
            raw, priority = message, RUST_PRIORITY
        self._write(raw, message, priority, when)

    def _write(self, raw: str, message: str, priority: int, when: float) -> None:
        stamp = dt.datetime.fromtimestamp(when, dt.UTC)
        short = (
            f"{stamp:%b} {stamp.day:2d} {stamp:%H:%M:%S} {self.hostname} "
            f"{self.identifier}[{self.pid}]: {message}"
        )
        record = {
            "__REALTIME_TIMESTAMP": str(int(when * 1e6)),
            "_HOSTNAME": self.hostname,
            "SYSLOG_IDENTIFIER": self.identifier,
            "_SYSTEMD_UNIT": f"{self.unit}.service",
            "_PID": str(self.pid),
            "PRIORITY": str(priority),
            "MESSAGE": message,
        }
        with self._lock:
            self._raw.write(raw + "\n")
            self._short.write(short + "\n")
            self._json.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.lines += 1
            for f in (self._raw, self._short, self._json):
                f.flush()


def q(text: str) -> str:
    """Typographic quotes, as Hydra's C++ messages put around paths."""
    return f"\u2018{text}\u2019"


# A message to write: (level, text, spans in scope as (name, formatted fields), target).
Line = tuple[str, str, tuple[tuple[str, str], ...], str]


def _cxx(program: str, event: str, *args: object, containing: str = "") -> Line:
    m = hydra.message(program, event, containing=containing)
    return m.level, fill(m.format, *args), (), ""


def _rust(program: str, event: str, spans: tuple[str, ...], *args: object, containing: str = "",
          **named: object) -> Line:  # fmt: skip
    """A Rust message from its catalogue entry, with the fields its spans carry (``spans``:
    the formatted fields of each span the entry names, in the same order)."""
    m = hydra.message(program, event, containing=containing)
    fields = (*spans, *("",) * (len(m.spans) - len(spans)))
    return (
        m.level,
        fill(m.format, *args, **named),
        tuple(zip(m.spans, fields, strict=True)),
        m.target,
    )


def base(path: str) -> str:
    """A store path as the Rust programs print it: the base name (harmonia StorePath)."""
    return store_base(path) or path


def span_drv(path: str) -> str:
    """``drv=?m.drv`` of the builder's spans: the derived Debug of Option<ProtoStorePath>."""
    return f"drv=Some(ProtoStorePath(StorePath({base(path)})))"


# --- C++ messages (catalogue: profiler/hydra/messages_cxx.py) -------------------------------


def cxx_checking_queue() -> Line:
    return _cxx("cxx-runner", "queue_check")


def cxx_loading_build(build_id: int, job: str) -> Line:
    return _cxx("cxx-runner", "build_loading", build_id, job)


def cxx_performing_step(drv: str, machine_uri: str, build_id: int, others: int) -> Line:
    return _cxx("cxx-runner", "step_started", drv, 1, machine_uri, build_id, others)


def cxx_copying_path(path: str, nar_bytes: int, compressed_bytes: int, ms: int) -> Line:
    percent = (1 - compressed_bytes / nar_bytes) * 100 if nar_bytes else 0.0
    return _cxx("nix", "output_copied", path, nar_bytes, f"{percent:.1f}", ms)


def cxx_s3_uploaded(key: str, nbytes: int, ms: int) -> Line:
    """Nix's S3 store after a PUT (2.0-2.32): ``key`` is ``bucket/object``."""
    bucket, _, obj = key.partition("/")
    return _cxx("nix", "s3_upload", bucket, obj, nbytes, ms)


def cxx_marking_succeeded(build_id: int) -> Line:
    return _cxx("cxx-runner", "build_succeeded", build_id)


def cxx_marking_failed(build_id: int) -> Line:
    return _cxx("cxx-runner", "build_failed", build_id)


def cxx_transient_failure(drv: str, machine_uri: str, error: str) -> Line:
    return _cxx("cxx-runner", "transient_failure", drv, machine_uri, error)


def cxx_will_retry(drv: str, seconds: float) -> Line:
    return _cxx("cxx-runner", "retry", drv, f"{seconds:g}")


def cxx_db_stalled(n: int) -> Line:
    return _cxx("cxx-runner", "db_stalled", n)


def cxx_step_runnable(drv: str) -> Line:
    return _cxx("cxx-runner", "step_runnable", drv)


def cxx_copying_outputs(drv: str, machine_uri: str, nar_bytes: int) -> Line:
    return _cxx("cxx-runner", "copying_outputs", drv, machine_uri, nar_bytes)


# --- Rust messages (catalogue: profiler/hydra/messages_rust.py) -----------------------------


def rust_submitting(drv: str, machine_id: str, hostname: str, build_id: int, step_nr: int) -> Line:
    return _rust("rust-runner", "dispatch", (), machine_id, hostname, step_nr,
                 drv=base(drv), build_id=build_id)  # fmt: skip


def rust_marking_done(drv: str, machine_id: str, job_uuid: str) -> Line:
    spans = (
        f'machine_id="{machine_id}" build_id="{job_uuid}"',  # complete_build: String fields
        f"machine_id={machine_id} build_id={job_uuid}",  # succeed_step_by_uuid: Display
        f"machine_id={machine_id} drv_path={base(drv)}",  # succeed_step
    )
    return _rust("rust-runner", "job_done", spans, drv_path=base(drv))


def _build_message(drv: str, job_uuid: str, presigned: bool) -> str:
    """``request=Build(BuildMessage {...})``: prost's derived Debug of the message, fields in
    streaming.proto order (the resolved derivation abbreviated by the emulator)."""
    opts = "Some(PresignedUploadOpts { upload_debug_info: false })" if presigned else "None"
    return (
        f'request=Build(BuildMessage {{ build_id: "{job_uuid}", drv: Some(ProtoStorePath('
        f"StorePath({base(drv)}))), max_log_size: 67108864, max_silent_time: 3600, "
        f"build_timeout: 36000, max_output_size: 0, presigned_url_opts: {opts}, "
        "resolved_drv: Some(Basic { .. }) })"
    )


def rust_building(drv: str, job_uuid: str = "", presigned: bool = True) -> Line:
    spans = ("", _build_message(drv, job_uuid, presigned), span_drv(drv))
    return _rust("rust-builder", "build_started", spans, drv=base(drv))


def rust_finished_building(drv: str) -> Line:
    return _rust("rust-builder", "build_finished", (span_drv(drv),), drv=base(drv))


def _upload_spans(
    drv: str, job_uuid: str, machine_id: str, presigned: bool, outputs: Sequence[str]
) -> tuple[str, ...]:
    """The spans of a builder's upload lines and their fields (``#[instrument]`` records
    every argument not skipped: hydra 14332fbf subprojects/hydra-builder/src/state.rs:691
    ``upload_nars``, :985 ``upload_nars_regular`` (``nars``), :1072 ``upload_nars_presigned``
    (``output_paths``, ``opts``, ``build_id``, ``machine_id``); a ``Vec<StorePath>`` prints
    as ``[StorePath(<base>), ...]``, harmonia b438172 harmonia-store-path/src/path.rs:102)."""
    opts = "Some(PresignedUploadOpts { upload_debug_info: false })" if presigned else "None"
    ids = f'build_id="{job_uuid}" machine_id="{machine_id}"'
    paths = "[" + ", ".join(f"StorePath({base(p)})" for p in outputs) + "]"
    inner = (
        f"output_paths={paths} opts=PresignedUploadOpts {{ upload_debug_info: false }} {ids}"
        if presigned
        else f"nars={paths}"
    )
    return (span_drv(drv), f"{ids} presigned_url_opts={opts}", inner)


def rust_upload_start(
    presigned: bool,
    drv: str = "",
    job_uuid: str = "",
    machine_id: str = "",
    outputs: Sequence[str] = (),
) -> Line:
    how = "presigned" if presigned else "directly"
    spans = _upload_spans(drv, job_uuid, machine_id, presigned, outputs) if drv else ()
    return _rust("rust-builder", "upload_started", spans, containing=how)


def rust_upload_done(
    presigned: bool,
    seconds: float,
    drv: str = "",
    job_uuid: str = "",
    machine_id: str = "",
    outputs: Sequence[str] = (),
) -> Line:
    how = "presigned" if presigned else "directly"
    spans = _upload_spans(drv, job_uuid, machine_id, presigned, outputs) if drv else ()
    return _rust("rust-builder", "upload_finished", spans, rust_duration_text(seconds),
                 containing=how)  # fmt: skip


def rust_build_failed(drv: str, error: str) -> Line:
    return _rust("rust-builder", "build_step_failed", (), drv=base(drv), error_msg=error)


def _fail_spans(drv: str, machine_id: str, job_uuid: str) -> tuple[str, ...]:
    return (
        f'machine_id="{machine_id}" build_id="{job_uuid}"',  # complete_build
        f"machine_id={machine_id} build_id={job_uuid}",  # fail_step_by_uuid
        f"machine_id={machine_id} drv_path={base(drv)}",  # fail_step
    )


def rust_removing_job(drv: str, machine_id: str, job_uuid: str) -> Line:
    spans = _fail_spans(drv, machine_id, job_uuid)
    return _rust("rust-runner", "job_removed", spans, drv_path=base(drv))


def rust_marking_failed(build_id: int, drv: str, machine_id: str, job_uuid: str) -> Line:
    spans = (*_fail_spans(drv, machine_id, job_uuid), "")  # inner_fail_job: no fields
    return _rust("rust-runner", "build_failed", spans, build_id)


def rust_upload_scheduled(path: str) -> Line:
    return _rust("rust-runner", "upload_scheduled", (), f"[StorePath({base(path)})]")


def rust_runner_upload_started(paths: int) -> Line:
    return _rust("rust-runner", "runner_upload_started", (), paths)


def rust_runner_upload_finished(paths: int) -> Line:
    return _rust("rust-runner", "runner_upload_finished", (), paths)


def rust_will_retry(drv: str, seconds: float, machine_id: str, job_uuid: str) -> Line:
    spans = _fail_spans(drv, machine_id, job_uuid)
    return _rust("rust-runner", "retry", spans, drv_path=base(drv), delta=int(seconds))


def rust_completed(drv: str) -> Line:
    return _rust("rust-builder", "build_completed", (), drv=base(drv))

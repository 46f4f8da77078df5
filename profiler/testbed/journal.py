"""Log lines exactly as each queue-runner generation writes them, in three forms.

C++ (``hydra-queue-runner -v`` under systemd, reference ``hydra.md`` §2.1-2.2): Nix's
SimpleLogger writes ``<N>message`` to stderr, N the syslog priority (3 error, 4 warn,
5 notice/info, 6 talkative/chatty, 7 debug); only levels up to talkative are printed at
``-v``. Paths sit in typographic quotes (U+2018/U+2019); Nix's own messages use ASCII
quotes.

Rust (§2.3): ``tracing_subscriber``'s compact format without ANSI:
``2026-11-29T03:10:49.123456Z  INFO target: message``.

Every line is written three ways: the raw stderr stream (``<unit>.stderr``), ``journalctl``
short output (``Mon DD HH:MM:SS host unit[PID]: message``, second resolution, the priority
prefix stripped into PRIORITY) and ``journalctl -o json`` records (``<unit>.journal.json``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from typing import TextIO

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
RUST_LEVELS = {"error": "ERROR", "warn": " WARN", "info": " INFO", "debug": "DEBUG"}
RUST_PRIORITY = 6  # tracing writes no <N> prefix: journald files every stderr line as info
RUST_FILTER = {"error", "warn", "info"}  # RUST_LOG=info


class Journal:
    """One systemd unit's log: the raw stream plus journalctl short and JSON renderings."""

    def __init__(
        self, directory: str, unit: str, identifier: str, hostname: str, pid: int, generation: str
    ) -> None:
        self.generation = generation
        self.identifier = identifier
        self.hostname = hostname
        self.pid = pid
        self.unit = unit
        self._lock = threading.Lock()
        base = os.path.join(directory, unit)
        self._raw: TextIO = open(base + ".stderr", "a", encoding="utf-8")
        self._short: TextIO = open(base + ".journal.txt", "a", encoding="utf-8")
        self._json: TextIO = open(base + ".journal.json", "a", encoding="utf-8")
        self.lines = 0

    def close(self) -> None:
        for f in (self._raw, self._short, self._json):
            f.close()

    def log(self, level: str, message: str, when: float, target: str = "") -> None:
        """Write one message at ``level`` (C++ or Rust level names) as of epoch ``when``."""
        if self.generation == "cxx":
            nix_level, priority = CXX_LEVELS[level]
            if nix_level > CXX_VERBOSITY:
                return
            raw = f"<{priority}>{message}"
        else:
            if level not in RUST_FILTER:
                return
            name, priority = RUST_LEVELS[level], RUST_PRIORITY
            stamp = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            message = f"{stamp} {name} {target}: {message}"
            raw = message
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


# --- C++ messages (reference §2.2; level in the name of the call) -------------------------


def cxx_checking_queue() -> tuple[str, str]:
    return "info", "checking the queue for builds..."


def cxx_loading_build(build_id: int, job: str) -> tuple[str, str]:
    return "talkative", f"loading build {build_id} ({job})"


def cxx_performing_step(drv: str, machine_uri: str, build_id: int, others: int) -> tuple[str, str]:
    return (
        "info",
        f"performing step {q(drv)} 1 times on {q(machine_uri)} "
        f"(needed by build {build_id} and {others} others)",
    )


def cxx_copying_path(path: str, nar_bytes: int, compressed_bytes: int, ms: int) -> tuple[str, str]:
    percent = (1 - compressed_bytes / nar_bytes) * 100 if nar_bytes else 0.0
    return (
        "talkative",
        f"copying path '{path}' ({nar_bytes} bytes, compressed "
        f"{percent:.1f}% in {ms} ms) to binary cache",
    )


def cxx_marking_succeeded(build_id: int) -> tuple[str, str]:
    return "info", f"marking build {build_id} as succeeded"


def cxx_db_stalled(n: int) -> tuple[str, str]:
    return "error", f"warning: {n} concurrent database updates; PostgreSQL may be stalled"


def cxx_step_runnable(drv: str) -> tuple[str, str]:
    return "chatty", f"step {q(drv)} is now runnable"


def cxx_copying_outputs(drv: str, machine_uri: str, nar_bytes: int) -> tuple[str, str]:
    return "debug", f"copying outputs of {q(drv)} from {q(machine_uri)} ({nar_bytes} bytes)"


# --- Rust messages (reference §2.3) -------------------------------------------------------

RUNNER_TARGET = "hydra_queue_runner::state"
BUILDER_TARGET = "hydra_builder::state"


def rust_submitting(
    drv: str, machine_id: str, hostname: str, build_id: int, step_nr: int
) -> tuple[str, str]:
    return (
        "info",
        f"Submitting build drv={drv} on machine={machine_id} hostname={hostname} "
        f"build_id={build_id} step_nr={step_nr}",
    )


def rust_marking_done(drv: str) -> tuple[str, str]:
    return "info", f"marking job as done: drv_path={drv}"


def rust_building(drv: str) -> tuple[str, str]:
    return "info", f"Building {drv}"


def rust_finished_building(drv: str) -> tuple[str, str]:
    return "info", f"Finished building {drv}"


def rust_upload_start(presigned: bool) -> tuple[str, str]:
    how = "using presigned urls" if presigned else "to queue runner directly"
    return "info", f"Start uploading paths {how}"


def rust_upload_done(presigned: bool, seconds: float) -> tuple[str, str]:
    how = "using presigned urls" if presigned else "to queue runner directly"
    return "info", f"Finished uploading paths {how}. elapsed={rust_duration(seconds)}"


def rust_completed(drv: str) -> tuple[str, str]:
    return "info", f"Successfully completed build process for {drv}"


def rust_duration(seconds: float) -> str:
    """Rust's ``Debug`` for ``Duration``: ``12.3456s``, ``850.1ms``, ``12µs``."""
    if seconds >= 1:
        return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds * 1e6:.3f}".rstrip("0").rstrip(".") + "µs"

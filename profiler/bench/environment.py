"""The environment a result was measured in, recorded with every result (pyperf-style)."""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import platform
import socket
import zlib

from profiler import __version__


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "Processor")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def liblzma_version() -> str:
    """The runtime liblzma's version (the library Python's lzma module links)."""
    name = ctypes.util.find_library("lzma")
    if not name:
        return "unknown"
    try:
        lib = ctypes.CDLL(name)
        lib.lzma_version_string.restype = ctypes.c_char_p
        return str(lib.lzma_version_string().decode())
    except (OSError, AttributeError):
        return "unknown"


def collect() -> dict[str, object]:
    """Host, CPU, kernel, library versions and the UTC time, as one JSON-able dict."""
    import brotli
    import zstandard

    uname = os.uname()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "kernel": f"{uname.sysname} {uname.release}",
        "machine": uname.machine,
        "python": platform.python_version(),
        "profiler_version": __version__,
        "liblzma_version": liblzma_version(),
        "libzstd_version": ".".join(map(str, zstandard.ZSTD_VERSION)),
        "zstandard_version": zstandard.__version__,
        "brotli_version": getattr(brotli, "__version__", "unknown"),
        "zlib_version": zlib.ZLIB_RUNTIME_VERSION,
        "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }

"""Status JSON and Prometheus metrics of the emulated queue runner, for both generations.

Pure builders over a :class:`~profiler.testbed.state.RunnerState` snapshot (the caller holds
``state.lock``) and ``now`` in epoch seconds. They reproduce the real runner's output field
for field, with its units (see ``hydra.md`` sections 1 and 5):

* C++ (until 2026): :func:`cxx_status` is ``State::dumpStatus`` in its final form; counters
  of time are ms (``...Ms``) except ``totalStep*``/``avgStep*``, which are **seconds**; some
  averages are C ``float`` (single precision). :func:`cxx_status_text` gives the two text
  forms (``--status`` and the web ``/queue-runner-status``). :func:`cxx_metrics` is the
  prometheus-cpp ``/metrics`` text.
* Rust: :func:`rust_status` is ``GET /status`` (``DumpResponse``), :func:`rust_endpoint` the
  other ``/status/...`` endpoints, :func:`rust_metrics` the rust-prometheus ``/metrics`` text.
  Step times are ms, loop timers µs, ``time`` is an RFC 3339 string.

Host facts the Rust runner reads live (``/proc/self/statm``, cgroup v2 files, PSI files,
load, memory, free space) are a :class:`HostFacts` value passed in: :func:`read_host` reads
this host (zeros where a file is unreadable; the emulated builders run here too), with
injectable roots. The Rust builders read it themselves only when no ``host`` is given.

The modules, by job: ``numbers`` (float formats), ``counters`` (what both generations
report), ``cxx`` (C++ status JSON), ``json_text`` (its two text forms), ``host`` (host
facts), ``rust`` (Rust status and endpoints), ``metrics`` (the metric families of both
generations) and ``exposition`` (their text).
"""

from __future__ import annotations

from profiler.testbed.status.cxx import cxx_status
from profiler.testbed.status.host import HostFacts, read_host
from profiler.testbed.status.json_text import cxx_status_text
from profiler.testbed.status.metrics import cxx_metrics, rust_metrics
from profiler.testbed.status.rust import has_dynamic_capacity, rust_endpoint, rust_status

__all__ = [
    "HostFacts",
    "cxx_metrics",
    "cxx_status",
    "cxx_status_text",
    "has_dynamic_capacity",
    "read_host",
    "rust_endpoint",
    "rust_metrics",
    "rust_status",
]

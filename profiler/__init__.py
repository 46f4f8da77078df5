"""hydra-profiler: measure where a Hydra build farm's step time goes.

The public surface is deliberately small and lazy (PEP 562): ``import profiler`` loads
nothing heavy, and a name is imported the first time it is used, so ``hydra-profiler --help``
stays fast. What a notebook or a script needs::

    from profiler import analyze_run, read_run, load_result

- :func:`analyze_run`: a stored run analysed (its codec's profiles from a bench result, else
  calibrated here); :class:`Analysis`: what it returns. (The pure ``analyze``, profiles
  given, is ``profiler.analyze.analysis.analyze``: ``profiler.analyze`` is its package.)
- :func:`read_run` / :class:`Run`: a run directory, to read or to write.
- :func:`load_result`: a ``hydra-profiler bench`` result; :func:`parse_spec`: a codec spec.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Analysis": "profiler.analyze.analysis",
    "analyze_run": "profiler.scenarios.analysis",
    "read_run": "profiler.store",
    "Run": "profiler.store",
    "load_result": "profiler.bench.results",
    "parse_spec": "profiler.codecs",
}
__all__ = ["Analysis", "Run", "__version__", "analyze_run", "load_result", "parse_spec", "read_run"]

if TYPE_CHECKING:
    from profiler.analyze.analysis import Analysis
    from profiler.bench.results import load_result
    from profiler.codecs import parse_spec
    from profiler.scenarios.analysis import analyze_run
    from profiler.store import Run, read_run


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'profiler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

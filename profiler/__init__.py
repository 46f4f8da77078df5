"""hydra-profiler: measure where a Hydra build farm's step time goes.

The public surface is deliberately small; heavy libraries are imported lazily by the
stages that need them, so ``import profiler`` and ``hydra-profiler --help`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

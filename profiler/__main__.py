"""``python -m profiler`` is the same as the ``hydra-profiler`` command."""

from __future__ import annotations

import sys

from profiler.cli import main

sys.exit(main())

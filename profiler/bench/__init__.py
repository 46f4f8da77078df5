"""The compression benchmark harness: payloads x codecs, measured the way lzbench does.

``harness.run_bench`` measures; ``results`` stores and loads a versioned result
directory; ``derive`` turns results into what a Hydra operator needs (CPU per GiB, daily
CPU-hours, storage cost, substitution and upload times, Pareto front); ``compare`` tests
two result sets against each other; ``plots`` draws them; ``suites`` loads a suite and
:func:`run_suite` measures and stores it (what ``hydra-profiler bench`` runs); ``profiles``
turns a result (or a quick calibration) into the codec profiles the analysis splits copy
phases with.
"""

from profiler.bench.suites import load_suite, run_suite

__all__ = ["load_suite", "run_suite"]

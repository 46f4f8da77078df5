"""Scenarios: the testbed observed by the collectors, the one layer that wires them together.

The testbed emulates Hydra and knows nothing of its observers; the collectors know nothing of
the testbed. :mod:`profiler.scenarios.observe` runs one with the other attached, and
:mod:`profiler.scenarios.random_runs` draws random testbed runs and the data mixes an
operator may have of each (the accuracy benchmark and the integration tests).
"""

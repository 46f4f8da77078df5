"""Scenarios: the one layer that wires the stages together, as the commands and the demo run them.

The testbed emulates Hydra and knows nothing of its observers; the collectors know nothing of
the testbed. :mod:`profiler.scenarios.observe` runs one with the other attached, and
:mod:`profiler.scenarios.random_runs` draws random testbed runs and the data mixes an
operator may have of each (the accuracy benchmark and the integration tests).
:mod:`profiler.scenarios.analysis` analyses a stored run with the profiles of a bench result,
or with the farm codec calibrated on this machine when it has none;
:mod:`profiler.scenarios.demo` is the end-to-end demo.
"""

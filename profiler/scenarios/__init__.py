"""Scenarios: the stages wired together, as the commands and the demo run them.

- :mod:`profiler.scenarios.analysis`: a stored run analysed with the profiles of a bench
  result, or with the farm codec calibrated on this machine when it has none.
"""

"""``collect cpu``: native (perf) or Python (py-spy) stack samples of a running process,
classified into what the CPU is spent on (compression, hashing, NAR serialisation, ...).

:mod:`.targets` resolves ``--pid``/``--unit``/``--match`` from ``/proc``; :mod:`.perf` and
:mod:`.pyspy` run a sampler and parse its output into :class:`.samples.Sample`;
:mod:`.rules` is the table of frame patterns (with the library or crate each belongs to)
and :mod:`.classify` the policy that turns a stack into one class; :mod:`.tables` sums the
samples into the run's ``cpu_classes``, ``cpu_stacks`` and ``cpu_unknown`` tables and the
``cpu/`` files; :mod:`.collector` runs it all.
"""

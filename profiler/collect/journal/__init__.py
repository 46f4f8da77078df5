"""``collect logs``: queue-runner journals (files, ``journalctl``, stdin) into a run.

:mod:`.rules` compiles the message catalogue into matchers, :mod:`.parse` turns lines into
typed events with them, :mod:`.collector` reads the inputs (once or followed) into the run's
tables.
"""

"""Collectors: queue-runner status JSON, Prometheus text, journals and database rows into a run.

The wings mirror the commands: :mod:`.status` (``collect status`` and ``collect metrics``),
:mod:`.journal` (``collect logs``) and :mod:`.database` (``collect db``). :mod:`.samples` is
the sample model they share, :mod:`.control` how a command runs one (its log, its signals).
"""

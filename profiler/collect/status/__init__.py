"""``collect status`` and ``collect metrics``: queue-runner status JSON and ``/metrics`` text.

:mod:`.sources` fetches the documents (through the bounded requests of :mod:`.transfer`),
:mod:`.collector` samples them at a fixed rate into a run, :mod:`.normalize` (status JSON)
and :mod:`.prometheus` (metrics text) turn them into tidy samples along the tables of
:mod:`.status_map` and :mod:`.metrics_map`.
"""

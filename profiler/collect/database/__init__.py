"""``collect db``: Hydra's PostgreSQL database, read-only, into a run.

:mod:`.common` holds what the two workers share (options, read-only sessions, SQL, generation
detection, reporting, backoff), :mod:`.export` exports finished steps and builds,
:mod:`.history` streams a long history of them into Parquet parts (:mod:`.batches` makes
the parts' columns), :mod:`.state` reads where the export stands back from a run,
:mod:`.track` follows the live phases of running steps, and :mod:`.collector` runs both into
one run (its docstring describes the tables and their semantics).
"""

"""``collect db``: Hydra's PostgreSQL database, read-only, into a run.

:mod:`.common` holds what the two workers share (options, read-only sessions, SQL, generation
detection, reporting, backoff), :mod:`.export` exports finished steps and builds,
:mod:`.track` follows the live phases of running steps, and :mod:`.collector` runs both into
one run (its docstring describes the tables and their semantics).
"""

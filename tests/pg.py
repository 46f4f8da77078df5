"""The tests' throwaway PostgreSQL server lives in the package (the demo uses it too)."""

from profiler.testbed.pgserver import (
    PG_USER,
    SUPERUSER,
    PostgresServer,
    find_pg_bindir,
    free_port,
)

__all__ = ["PG_USER", "SUPERUSER", "PostgresServer", "find_pg_bindir", "free_port"]

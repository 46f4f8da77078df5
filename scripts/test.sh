#!/usr/bin/env bash
# Install what the tests need (scripts/setup-tests.sh), then lint, type-check and test.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k nar -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-tests.sh
echo "== ruff" >&2
python3 -m ruff check .
python3 -m ruff format --check .
echo "== mypy" >&2
python3 -m mypy
echo "== pytest" >&2
python3 -m pytest "$@"

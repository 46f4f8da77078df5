#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, idempotently:
# the system tools the tests compare against (Nix's nix-store/nix-hash, xz, zstd), headless
# Chromium (renders the HTML report), PostgreSQL for the testbed's real database (tests/pg.py)
# and the Python package with its test extras (psycopg among its dependencies). Safe to run
# again; skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nix-store >/dev/null 2>&1 || need_apt+=(nix-bin)
command -v xz >/dev/null 2>&1 || need_apt+=(xz-utils)
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)  # collect history: a real Prometheus scraping the testbed
command -v perf >/dev/null 2>&1 || need_apt+=(linux-perf)  # collect cpu samples with perf
# headless Chromium renders the HTML report in tests/integration/test_report.py
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# Debian keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin/.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need_apt+=(postgresql)
fi
if ((${#need_apt[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-tests: need root to install: ${need_apt[*]}" >&2
        exit 1
    fi
    echo "setup-tests: installing ${need_apt[*]} (apt-get)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

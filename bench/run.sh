#!/usr/bin/env bash
# The whole benchmark: builds release binaries, runs every scenario with its
# same-run limits on SQLite and (when reachable) PostgreSQL, and draws the plot.
#
#   bash bench/run.sh                       # SQLite, then PostgreSQL
#   BENCH_POSTGRES_URL= bash bench/run.sh   # SQLite only
#   BENCH_ARGS="--duration 5" bash bench/run.sh
#
# Results: bench/results/{sqlite,postgres}.{json,txt} and bench/results/throughput.png.
# PostgreSQL: the tool creates databases of its own beside the one named and
# drops them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
postgres_url=${BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}

cargo build --release -p warden -p warden-bench --bins
bench=target/release/warden-bench

# shellcheck disable=SC2086
"$bench" all --spawn --json "$out/sqlite.json" ${BENCH_ARGS:-} | tee "$out/sqlite.txt"
if [ -n "$postgres_url" ]; then
    # shellcheck disable=SC2086
    "$bench" all --spawn --database-url "$postgres_url" --json "$out/postgres.json" ${BENCH_ARGS:-} \
        | tee "$out/postgres.txt"
fi

# The plot needs matplotlib; a throwaway virtualenv keeps it off the system.
venv=${BENCH_VENV:-${TMPDIR:-/tmp}/warden-bench-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet matplotlib
fi
"$venv/bin/python" bench/plot.py "$out"/*.json -o "$out/throughput.png"

#!/usr/bin/env bash
# Runs the 40-test suite in this directory under `cargo nextest run` (one process per test) for
# the floor, each seedbed strategy and #[sqlx::test], on one server, round after round (so the
# variants share the machine's noise), and prints each variant's median suite time, median time
# per test process, and its ratio to the floor measured in the same rounds.
#
#   benches/nextest/run.sh [ROUNDS]                  # the server DATABASE_URL names (else embedded)
#   TLS=1 benches/nextest/run.sh                     # the test crate built with sqlx's rustls TLS
#   SKIP_DROP=1 benches/nextest/run.sh               # without the template-drop comparison
#   BACKEND=sqlite benches/nextest/run.sh            # the suite on SQLite (tests/sqlite_suite.rs)
#   BACKEND=mysql benches/nextest/run.sh             # on MySQL (tests/mysql_suite.rs): the server
#                                                    # SEEDBED_MYSQL_URL names, else the embedded one
#
# The floor opens one connection to an already migrated database, BEGIN, the same two inserts,
# ROLLBACK: the least a test process that talks to the server can cost. #[sqlx::test] and the
# floor need a URL; on the embedded server they get the one `seedbed server start` prints. On
# SQLite the floor opens a migrated file (made here with the sqlite3 tool) and #[sqlx::test]
# makes a new database file per test.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(cd ../.. && pwd)/target}
features=()
[ "${TLS:-0}" = 1 ] && features=(--features tls)
tests=(--test suite)
floor_env=()

if [ "${BACKEND:-postgres}" = sqlite ]; then
    features+=(--features sqlite)
    tests=(--test sqlite_suite)
    SKIP_DROP=1
    floor_file="$CARGO_TARGET_DIR/seedbed-nextest-floor.db"
    mkdir -p "$CARGO_TARGET_DIR"
    if [ ! -f "$floor_file" ]; then
        for f in ../../migrations/sqlite/*.sql; do sqlite3 "$floor_file" < "$f"; done
    fi
    floor_env=(FLOOR_SQLITE_FILE="$floor_file")
    where="SQLite files under $CARGO_TARGET_DIR"
    url=""
elif [ "${BACKEND:-postgres}" = mysql ]; then
    features+=(--features mysql)
    tests=(--test mysql_suite)
    SKIP_DROP=1
    if [ -n "${SEEDBED_MYSQL_URL:-}" ]; then
        url=$SEEDBED_MYSQL_URL
        where="SEEDBED_MYSQL_URL ($url)"
    else
        url=$(cd ../.. && cargo run -q -p seedbed-cli -- server start --mysql | sed -n 's/^SEEDBED_MYSQL_URL=//p')
        where="the embedded MySQL server ($url)"
    fi
elif [ -n "${DATABASE_URL:-}" ]; then
    url=$DATABASE_URL
    where="DATABASE_URL ($url)"
else
    url=$(cd ../.. && cargo run -q -p seedbed-cli -- server start | sed -n 's/^DATABASE_URL=//p')
    where="the embedded server ($url)"
fi
# The URL's query (the embedded server's socket, `?host=…`) stays on every URL made from it.
query=""
case $url in *\?*) query="?${url#*\?}" ;; esac
base=${url%%\?*}
base=${base%/}
[ "${BACKEND:-postgres}" = mysql ] || base=${base%/*}
case $base in mysql://*/*) base=${base%/*} ;; esac
floor_url="$base/seedbed_nextest_floor$query"
# #[sqlx::test] on MySQL connects to the URL's database to make its own: it must name one.
sqlx_url=$url
[ "${BACKEND:-postgres}" = mysql ] && sqlx_url="$base/mysql$query"
[ "${BACKEND:-postgres}" = sqlite ] || floor_env=(FLOOR_DATABASE_URL="$floor_url")

# The floor's database: the reference schema, migrated once.
if [ "${BACKEND:-postgres}" = mysql ]; then
    # The mariadb (or mysql) client, from the URL's parts.
    creds=${base#mysql://}; creds=${creds%@*}
    hostport=${base##*@}
    my=(mariadb -u"${creds%%:*}" -h"${hostport%:*}" -P"${hostport##*:}")
    case $creds in *:*) my+=(-p"${creds#*:}") ;; esac
    command -v mariadb >/dev/null || my[0]=mysql
    if ! "${my[@]}" -Nse "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'seedbed_nextest_floor'" | grep -q 1; then
        "${my[@]}" -e "CREATE DATABASE seedbed_nextest_floor CHARACTER SET utf8mb4"
        for f in ../../migrations/mysql/*.sql; do "${my[@]}" seedbed_nextest_floor < "$f"; done
    fi
elif [ "${BACKEND:-postgres}" != sqlite ] && ! psql "$base/postgres$query" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'seedbed_nextest_floor'" | grep -q 1; then
    psql "$base/postgres$query" -qc "CREATE DATABASE seedbed_nextest_floor" >/dev/null
    for f in ../../migrations/*.sql; do psql "$floor_url" -qf "$f" >/dev/null; done
fi

build() { cargo nextest run --no-run "${features[@]}" "${tests[@]}" "$@" >/dev/null 2>&1; }
build --features floor
build --features sqlx-test
build

variants=(floor rollback truncate namespace template sqlx)
# Template with passing tests' clones dropped instead of given back to the pool
# (SEEDBED_TEMPLATE_RECYCLE=0), the alternative recycling replaced: run after the others, since it
# empties the warm pool the next Template run would start from.
after=(template-drop)
declare -A suite per_test
run_strategy() {
    if [ "${BACKEND:-postgres}" = mysql ]; then
        SEEDBED_MYSQL_URL=$url SEEDBED_STRATEGY=$1 cargo nextest run --no-fail-fast "${features[@]}" "${tests[@]}" 2>&1
    elif [ -n "${DATABASE_URL:-}" ]; then
        SEEDBED_STRATEGY=$1 cargo nextest run --no-fail-fast "${features[@]}" "${tests[@]}" 2>&1
    else
        env -u DATABASE_URL SEEDBED_STRATEGY=$1 cargo nextest run --no-fail-fast "${features[@]}" "${tests[@]}" 2>&1
    fi
}
run() { # variant → "suite_seconds median_test_seconds"
    local v=$1 out
    case $v in
        floor) out=$(env "${floor_env[@]}" cargo nextest run --no-fail-fast "${features[@]}" "${tests[@]}" --features floor 2>&1) ;;
        sqlx) out=$(DATABASE_URL=${sqlx_url:-sqlite::memory:} cargo nextest run --no-fail-fast "${features[@]}" "${tests[@]}" --features sqlx-test 2>&1) ;;
        template-drop) out=$(SEEDBED_TEMPLATE_RECYCLE=0 run_strategy template) ;;
        *) out=$(run_strategy "$v") ;;
    esac
    if ! grep -q "40 passed" <<<"$out"; then
        echo "$v failed:" >&2; grep -E "FAIL|panicked|Error" <<<"$out" | head -20 >&2; exit 1
    fi
    local s t
    s=$(sed -n 's/.*Summary \[ *\([0-9.]*\)s\].*/\1/p' <<<"$out")
    t=$(sed -n 's/.*PASS \[ *\([0-9.]*\)s\].*/\1/p' <<<"$out" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$s $t"
}

# A warm-up round: what is built once per server and migrations (the migrated databases, the
# template and its first clones) is not what a test process costs.
for v in "${variants[@]}"; do run "$v" >/dev/null; done
for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        read -r s t < <(run "$v")
        suite[$v]+="$s "
        per_test[$v]+="$t "
    done
done
if [ "${SKIP_DROP:-0}" != 1 ]; then
    for r in $(seq "$rounds"); do
        for v in "${after[@]}"; do
            read -r s t < <(run "$v")
            suite[$v]+="$s "
            per_test[$v]+="$t "
        done
    done
    variants+=("${after[@]}")
fi

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "40 tests, cargo nextest ($(nproc) threads), $rounds rounds after a warm-up, on $where${TLS:+, sqlx TLS on}"
printf '%-10s %12s %12s %14s\n' variant "suite (s)" "per test (ms)" "suite / floor"
floor=$(median <<<"${suite[floor]}")
for v in "${variants[@]}"; do
    s=$(median <<<"${suite[$v]}")
    t=$(median <<<"${per_test[$v]}")
    printf '%-10s %12.3f %12.1f %13.2fx\n' "$v" "$s" "$(awk "BEGIN {print $t * 1000}")" "$(awk "BEGIN {print $s / $floor}")"
done

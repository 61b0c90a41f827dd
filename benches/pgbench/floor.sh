#!/usr/bin/env bash
# Where PostgreSQL's CPU per new event goes (README, "Issue 22: where PostgreSQL's floor per new event is").
#
# Runs pgbench against a throwaway database on the local PostgreSQL, taking away one part
# of the receive step at a time, and prints the whole cluster's CPU per transaction (every
# postgres process: the backends, the WAL writer, the checkpointer), the figure `matrix
# --pg` reports as "DB CPU". Rounds alternate the variants so that a busy moment hurts
# them alike; compare the rows of one run, never figures across runs.
#
#   cargo build --release
#   bash benches/pgbench/floor.sh            # PGHOST=127.0.0.1 PGUSER=postgres by default
#   ROUNDS=3 SECONDS_EACH=10 CLIENTS=8 bash benches/pgbench/floor.sh
#
# Needs pgbench and psql (Debian: postgresql-15 ships both) and read access to the
# postgres processes' /proc/<pid>/stat (same machine).
set -euo pipefail
cd "$(dirname "$0")/../.."

export PGHOST="${PGHOST:-127.0.0.1}" PGUSER="${PGUSER:-postgres}" PGPORT="${PGPORT:-5432}"
rounds="${ROUNDS:-3}" secs="${SECONDS_EACH:-10}" clients="${CLIENTS:-8}"
bin="$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)"
pgbench="${PGBENCH:-${bin:-pgbench}}"
db="hl_floor_$$"
work="$(mktemp -d)"
trap 'psql -qd postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1; rm -rf "$work"' EXIT

psql -qd postgres -c "CREATE DATABASE $db"
DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db" RUST_LOG=warn \
    target/release/hooklatch migrate
sql() { psql -qd "$db" -v ON_ERROR_STOP=1 -c "$1" >/dev/null; }

# The transactions. `new` is the server's own call (benches/pgbench/new.sql).
cat >"$work/select.sql" <<'EOF'
\set n random(1, 2000000000)
SELECT :n;
EOF
cat >"$work/insert.sql" <<'EOF'
INSERT INTO source_total_deltas VALUES ('floor', 1, 1, 0, now());
EOF
# The rows a new sale writes, with no PL/pgSQL: one statement inserting the conversion
# and its event (no lookup first, no race handling), triggers as shipped.
cat >"$work/plain.sql" <<'EOF'
\set n random(1, 2000000000)
\set r random(1, 2000000000)
WITH c AS (
    INSERT INTO conversions (source, external_event_id, order_id, commission_amount,
                             sale_amount, currency, tracking_id, status, created_at, updated_at)
    VALUES ('pgbench', 'plain-' || :client_id || '-' || :n || '-' || :r, 'ORDER', 15.00,
            75.00, NULL, 'YOyqC7', NULL, now(), now())
    ON CONFLICT (source, external_event_id) DO NOTHING
    RETURNING id, external_event_id)
INSERT INTO webhook_events (source, external_event_id, event_type, payload, fingerprint,
                            conversion_id, first_seen_at, last_seen_at, delivery_count)
SELECT 'pgbench', c.external_event_id, 'sale',
       '{"event_type":"sale","order_id":"o","commission_amount":15.00,"sale_amount":75.00}',
       'fp-bench', c.id, now(), now(), 1
  FROM c
ON CONFLICT (source, external_event_id) DO NOTHING;
EOF

# The server's clock ticks of every postgres process, exited backends included (they
# are added to the postmaster's children's time when they end).
ticks() {
    local total=0 pid fields
    for pid in $(pgrep -u postgres -x postgres); do
        fields=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + ${fields:-0}))
    done
    local parent
    parent=$(pgrep -u postgres -x -o postgres)
    echo $((total + $(awk '{print $16 + $17}' "/proc/$parent/stat")))
}
hz=$(getconf CLK_TCK)

run() { # name script
    local before after out tx
    before=$(ticks)
    out=$("$pgbench" -n -M prepared -c "$clients" -j 1 -T "$secs" -f "$2" "$db" 2>&1)
    after=$(ticks)
    tx=$(awk '/actually processed/ { split($NF, a, "/"); print a[1] }' <<<"$out")
    printf '%-44s %8.0f tx/s %6d µs DB CPU/tx\n' "$1" "$((tx / secs))" \
        "$(((after - before) * 1000000 / hz / tx))"
}

triggers() { # ENABLE | DISABLE
    sql "ALTER TABLE webhook_events $1 TRIGGER webhook_events_totals_insert;
         ALTER TABLE conversions $1 TRIGGER conversions_totals"
}

# Every index but the keys the function's ON CONFLICT needs, with its definition, so
# the last variant can drop them and put them back.
indexes=$(psql -qAtd "$db" -c "SELECT indexname || ' ' || indexdef FROM pg_indexes
    WHERE tablename IN ('webhook_events', 'conversions')
      AND indexname NOT IN ('webhook_events_pkey', 'conversions_pkey',
          'idx_webhook_events_idempotency', 'idx_conversions_idempotency',
          'idx_conversions_external')")

for round in $(seq "$rounds"); do
    echo "== round $round of $rounds ($clients clients, ${secs}s each)"
    run "SELECT 1 (a round trip)" "$work/select.sql"
    run "one-row INSERT and its commit" "$work/insert.sql"
    run "receive: new sale (as shipped)" benches/pgbench/new.sql
    run "  its rows in one plain SQL statement" "$work/plain.sql"
    triggers DISABLE
    run "  without the totals triggers" benches/pgbench/new.sql
    run "  its rows in plain SQL, without triggers" "$work/plain.sql"
    while read -r name _; do sql "DROP INDEX $name"; done <<<"$indexes"
    run "  and without the read indexes" benches/pgbench/new.sql
    while read -r _ def; do sql "$def"; done <<<"$indexes"
    triggers ENABLE
done

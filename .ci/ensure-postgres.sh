#!/usr/bin/env bash
# Makes a PostgreSQL server answer on 127.0.0.1:5432 with trust authentication for the
# user postgres, which is what the tests' default HOOKLATCH_TEST_POSTGRES_URL expects:
#   - a server already answers: use it;
#   - PostgreSQL is installed (Debian/Ubuntu packaging) but stopped: start its newest
#     cluster;
#   - it is missing: install it with apt-get, then start it.
# Then makes sure local TCP connections as postgres need no password, and waits (at most
# 60 s) until the server accepts connections. Safe to run again and again.
#
# HOOKLATCH_PG_PORT and HOOKLATCH_PG_CLUSTER (default 5432 and main) exist so this script
# can be exercised on a scratch cluster without touching the real one.
set -euo pipefail

port="${HOOKLATCH_PG_PORT:-5432}"
cluster="${HOOKLATCH_PG_CLUSTER:-main}"
host=127.0.0.1

say() { echo "ensure-postgres: $*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        say "need root for: $*" >&2
        exit 1
    fi
}

answers() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h "$host" -p "$port"
    else
        # No client tools (the server may live elsewhere, e.g. a CI service container).
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
    fi
}

wait_until_ready() {
    for _ in $(seq 1 60); do
        if answers; then
            return 0
        fi
        sleep 1
    done
    say "PostgreSQL did not answer on $host:$port within 60 s" >&2
    exit 1
}

newest_version() {
    ls /etc/postgresql 2>/dev/null | sort -V | tail -1
}

start_cluster() {
    local version
    version="$(newest_version)"
    if [ ! -d "/etc/postgresql/$version/$cluster" ]; then
        say "creating cluster $version/$cluster on port $port"
        as_root pg_createcluster "$version" "$cluster" --port "$port"
    fi
    say "starting cluster $version/$cluster"
    # --skip-systemctl-redirect: containers and CI runners often have no systemd.
    # A cluster still starting up (or recovering) is "already running": not an error,
    # the wait below decides.
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start ||
        say "pg_ctlcluster start failed (already running?); waiting for it anyway"
}

# Trust for postgres over local TCP, so the tests need no password. Only touches the
# cluster this script manages; a server found running elsewhere is left as it is.
ensure_trust() {
    local version hba
    version="$(newest_version)"
    hba="/etc/postgresql/$version/$cluster/pg_hba.conf"
    if psql -h "$host" -p "$port" -U postgres -w -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
        return 0
    fi
    if [ ! -f "$hba" ]; then
        say "cannot connect as postgres without a password, and $hba is not here to fix" >&2
        exit 1
    fi
    say "allowing postgres from $host and ::1 without a password in $hba"
    # pg_hba.conf is read top-down, first match wins: put the rules first.
    as_root sed -i "1i host all postgres $host/32 trust\nhost all postgres ::1/128 trust" "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
    for _ in $(seq 1 10); do
        if psql -h "$host" -p "$port" -U postgres -w -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    say "still cannot connect as postgres without a password after editing $hba" >&2
    exit 1
}

if answers; then
    say "a server already answers on $host:$port"
else
    if [ -z "$(newest_version)" ]; then
        say "PostgreSQL is not installed: installing it with apt-get"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    fi
    # The package may already have started it (where services may start).
    if ! answers; then
        start_cluster
    fi
    wait_until_ready
    say "PostgreSQL answers on $host:$port"
fi

if command -v psql >/dev/null; then
    ensure_trust
    say "connected as postgres: $(psql -h "$host" -p "$port" -U postgres -w -d postgres -Atqc 'SHOW server_version')"
else
    say "psql is not installed here; not checking authentication"
fi

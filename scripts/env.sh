# scripts/env.sh: shared by jobq's scripts (sourced, not run).
#
# Installs what is missing, builds and installs jobq, and starts a private
# beanstalkd and a private PostgreSQL cluster (jobq preloaded) as an
# unprivileged user, on loopback ports of their own.  Everything started is
# stopped by PID when the calling script exits.  The work directory (server
# logs, data, test output) is removed on success and kept, with a line
# saying where, on failure or with KEEP_WORKDIR=1.
#
# Nothing here depends on the caller's environment: clusters are UTF-8 with
# the C locale whatever LANG says (or if it is unset), and the unprivileged
# user's commands run from a directory it can enter.

set -euo pipefail
export LC_ALL=C.UTF-8 LANG=C.UTF-8
unset LANGUAGE

JOBQ_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBQ_USER=${JOBQ_USER:-jobq}
# the PostgreSQL 15 to build against and run (PG_CONFIG=... for another one)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=/usr/lib/postgresql/15/bin
PGXS_DIR=/usr/lib/postgresql/15/lib/pgxs
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
PGPORT=${PGPORT:-55432}
BSPORT=${BSPORT:-11391}
DBNAME=${DBNAME:-jobq}

# progress lines carry the seconds elapsed since the script started
say() { printf '\n== [%3ds] %s\n' "$SECONDS" "$*"; }

need_packages() {
    local missing=()
    for p in postgresql-15 postgresql-server-dev-15 libjansson-dev beanstalkd \
             libipc-run-perl make gcc "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        local t0=$SECONDS
        say "installing ${missing[*]} (apt-get, about a minute)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        say "packages installed in $((SECONDS - t0)) s"
    fi
}

build_install() {
    PGBIN=$("$PG_CONFIG" --bindir)
    PGXS_DIR=$(dirname "$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")")
    PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
    say "building and installing jobq"
    make -C "$JOBQ_ROOT" -s PG_CONFIG="$PG_CONFIG" clean >/dev/null
    make -C "$JOBQ_ROOT" -s PG_CONFIG="$PG_CONFIG"
    make -C "$JOBQ_ROOT" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

ensure_user() {
    id "$JOBQ_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$JOBQ_USER"
}

# a fresh work directory that the unprivileged user owns
make_workdir() {
    WORKDIR=$(mktemp -d /tmp/jobq.XXXXXX)
    chown "$JOBQ_USER" "$WORKDIR"
    chmod 755 "$WORKDIR"
}

# runs a command as the unprivileged user, from the work directory (which
# it owns: the caller's directory, e.g. /root, is not one it can enter);
# setpriv and env exec, so in "${AS_USER[@]}" server & the PID in $! is the
# server's own
AS_USER=(setpriv --reuid="$JOBQ_USER" --regid="$JOBQ_USER" --init-groups env --chdir=/)
as_user() { "${AS_USER[@]}" --chdir="$WORKDIR" HOME="$WORKDIR" "$@"; }

PIDS=()
cleanup() {
    local rc=$?
    if [ -n "${PGDATA:-}" ] && [ -f "$PGDATA/postmaster.pid" ]; then
        as_user "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 20 stop >/dev/null 2>&1 ||
            kill -9 "$(head -1 "$PGDATA/postmaster.pid")" 2>/dev/null || true
    fi
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${WORKDIR:-}" ] && [ -d "$WORKDIR" ]; then
        if [ $rc -ne 0 ] || [ "${KEEP_WORKDIR:-0}" = 1 ]; then
            say "kept the work directory $WORKDIR (server logs: $WORKDIR/postgres.log)"
        else
            rm -rf "$WORKDIR"
        fi
    fi
    exit $rc
}
trap cleanup EXIT

start_beanstalkd() {
    mkdir -p "$WORKDIR/binlog"
    chown "$JOBQ_USER" "$WORKDIR/binlog"
    "${AS_USER[@]}" beanstalkd -l 127.0.0.1 -p "$BSPORT" -b "$WORKDIR/binlog" &
    BSPID=$!
    PIDS+=("$BSPID")
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/"$BSPORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "beanstalkd did not start on 127.0.0.1:$BSPORT" >&2
    return 1
}

# start_postgres [extra postgresql.conf lines...]
start_postgres() {
    PGDATA=$WORKDIR/pgdata
    as_user "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$WORKDIR'
shared_preload_libraries = 'jobq'
jobq.servers = '127.0.0.1:$BSPORT'
jobq.database = '$DBNAME'
jobq.workers = 2
max_worker_processes = 16
max_prepared_transactions = 10
EOF
    for line in "$@"; do echo "$line" >>"$PGDATA/postgresql.conf"; done
    [ "${JOBQ_CORE:-0}" = 1 ] && ulimit -c unlimited
    if [ "${JOBQ_VALGRIND:-0}" = 1 ]; then
        # every server process under memcheck (forked children stay in it)
        as_user valgrind --quiet --error-limit=no --num-callers=40 \
            --suppressions="$JOBQ_ROOT/test/valgrind.supp" \
            --log-file="$WORKDIR/valgrind.%p.log" \
            "$PGBIN/postgres" -D "$PGDATA" >"$WORKDIR/postgres.log" 2>&1 &
        PIDS+=($!)
        for _ in $(seq 300); do
            as_user "$PGBIN/pg_isready" -q -h "$WORKDIR" -p "$PGPORT" && break
            sleep 0.5
        done
    else
        as_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORKDIR/postgres.log" -w start >/dev/null
    fi
    as_user "$PGBIN/createdb" -h "$WORKDIR" -p "$PGPORT" -U postgres "$DBNAME"
}

psql_db() { as_user psql -X -q -h "$WORKDIR" -p "$PGPORT" -U postgres -d "$DBNAME" -v ON_ERROR_STOP=1 "$@"; }

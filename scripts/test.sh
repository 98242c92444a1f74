#!/usr/bin/env bash
# scripts/test.sh: the whole jobq test suite, from a fresh Debian 12 as root.
#
# Installs missing packages, builds and installs jobq, starts a private
# beanstalkd and PostgreSQL (jobq preloaded), runs the pg_regress tests in
# sql/ against them, then the fault-injection tests in t/ (TAP).

source "$(dirname "$0")/env.sh"

need_packages
build_install
make -C "$JOBQ_ROOT/examples/c_handler" -s
make -C "$JOBQ_ROOT/examples/c_handler" -s install >/dev/null
ensure_user
make_workdir
cp -r "$JOBQ_ROOT/sql" "$JOBQ_ROOT/expected" "$JOBQ_ROOT/test" "$WORKDIR/"
chown -R "$JOBQ_USER" "$WORKDIR"

start_beanstalkd
start_postgres

# a server that accepts connections and never answers: for reply timeouts
SILENT_PORT=$((BSPORT + 1))
"${AS_USER[@]}" perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0],
                                  Listen => 5, ReuseAddr => 1) or die "listen: $!";
    sleep 3600;' "$SILENT_PORT" &
PIDS+=($!)

TESTS=(${JOBQ_TESTS:-put_now admin workers dispatch outbox trigger})
say "pg_regress: ${TESTS[*]}"
cd "$WORKDIR"
set +e
as_user env PGHOST="$WORKDIR" PGPORT="$PGPORT" PGUSER=postgres \
    /usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
    --use-existing --dbname="$DBNAME" --inputdir=. --outputdir=. \
    --bindir="$PGBIN" "${TESTS[@]}"
rc=$?
set -e
if [ $rc -ne 0 ]; then
    cat "$WORKDIR/regression.diffs" 2>/dev/null | head -200
    tail -50 "$WORKDIR/postgres.log"
    exit $rc
fi

if [ -d "$JOBQ_ROOT/t" ] && ls "$JOBQ_ROOT"/t/*.pl >/dev/null 2>&1; then
    say "fault-injection tests (TAP)"
    cp -r "$JOBQ_ROOT/t" "$WORKDIR/t"
    chown -R "$JOBQ_USER" "$WORKDIR/t"
    cd "$WORKDIR"
    as_user "${ASAN_ENV[@]}" PATH="$PGBIN:$PATH" PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
        JOBQ_BSPORT_BASE=$((BSPORT + 10)) \
        prove -I /usr/lib/postgresql/15/lib/pgxs/src/test/perl -I "$WORKDIR/t" t/*.pl
fi

# under JOBQ_ASAN=1, any report fails the run
if [ "${JOBQ_ASAN:-0}" = 1 ]; then
    reports=$(find "$WORKDIR" -name 'asan.*' 2>/dev/null)
    if [ -n "$reports" ]; then
        say "AddressSanitizer reports"; cat $reports; exit 1
    fi
    say "AddressSanitizer: no reports"
fi

#!/usr/bin/env bash
# scripts/test.sh: the whole jobq test suite, from a fresh Debian 12 as root.
#
# Installs missing packages, builds and installs jobq, starts a private
# beanstalkd and PostgreSQL (jobq preloaded), runs the pg_regress tests in
# sql/ against them, then the fault-injection tests in t/ (TAP).

source "$(dirname "$0")/env.sh"

need_packages
[ "${JOBQ_VALGRIND:-0}" = 1 ] && need_packages valgrind
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
    # under memcheck, timing-bound outputs may differ: the memory check below
    # is what that mode is for
    [ "${JOBQ_VALGRIND:-0}" = 1 ] || exit $rc
fi

if [ "${JOBQ_VALGRIND:-0}" != 1 ] && [ -d "$JOBQ_ROOT/t" ] && ls "$JOBQ_ROOT"/t/*.pl >/dev/null 2>&1; then
    say "fault-injection tests (TAP)"
    cp -r "$JOBQ_ROOT/t" "$WORKDIR/t"
    chown -R "$JOBQ_USER" "$WORKDIR/t"
    cd "$WORKDIR"
    as_user PATH="$PGBIN:$PATH" PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
        JOBQ_BSPORT_BASE=$((BSPORT + 10)) \
        prove -I /usr/lib/postgresql/15/lib/pgxs/src/test/perl -I "$WORKDIR/t" t/*.pl
fi

# under JOBQ_VALGRIND=1 (regression tests only: memcheck is too slow for
# the fault timings), any memcheck error fails, PostgreSQL's own known
# ones being suppressed (test/valgrind.supp)
if [ "${JOBQ_VALGRIND:-0}" = 1 ]; then
    errors=$(find "$WORKDIR" -maxdepth 1 -name 'valgrind.*.log' -size +0 2>/dev/null)
    if [ -n "$errors" ]; then
        say "valgrind reported errors"; cat $errors; exit 1
    fi
    say "valgrind: no errors ($(ls "$WORKDIR"/valgrind.*.log | wc -l) server processes checked)"
fi

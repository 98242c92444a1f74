#!/usr/bin/env bash
# scripts/test.sh: the whole jobq test suite, from a fresh Debian 12 as root.
#
# Installs missing packages, builds and installs jobq, starts a private
# beanstalkd and PostgreSQL (jobq preloaded), runs the regression files
# (sql/, expected/) against them with `make installcheck` after the unit
# tests of the pure code (`make unit`), then the
# fault-injection tests in t/ (TAP), one file at
# a time with its duration.  Ends with "tests: N passed, N failed" (one per
# test file).  On failure the work directory is kept and the regression
# diffs or the failing TAP file's log are printed.
#
#   JOBQ_TESTS="put_now admin"   only these regression files (after setup)
#   JOBQ_TAP="t/006_security.pl" only these TAP files ("" for none)
#   JOBQ_VALGRIND=1              regression files under valgrind's memcheck
#   KEEP_WORKDIR=1               keep the work directory after success too

source "$(dirname "$0")/env.sh"

need_packages
[ "${JOBQ_VALGRIND:-0}" = 1 ] && need_packages valgrind
build_install
make -s -C "$JOBQ_ROOT" PG_CONFIG="$PG_CONFIG" check-version
make -C "$JOBQ_ROOT/examples/c_handler" -s PG_CONFIG="$PG_CONFIG"
make -C "$JOBQ_ROOT/examples/c_handler" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
ensure_user
make_workdir
cp -r "$JOBQ_ROOT/t" "$WORKDIR/"
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

PASSED=0
FAILED=0
FAILURES=()

# the unit tests of the pure code: no server (make unit), counted as one test
say "unit tests (make unit)"
if make -C "$JOBQ_ROOT" -s PG_CONFIG="$PG_CONFIG" unit; then
    PASSED=$((PASSED + 1))
else
    FAILED=$((FAILED + 1))
    FAILURES+=("make unit")
fi

TESTS=(${JOBQ_TESTS:-$(make -s -C "$JOBQ_ROOT" PG_CONFIG="$PG_CONFIG" print-REGRESS 2>/dev/null)})
[ "${TESTS[0]:-}" = setup ] || TESTS=(setup "${TESTS[@]}")
say "pg_regress (make installcheck): ${TESTS[*]}"
rm -rf "$JOBQ_ROOT/results" "$JOBQ_ROOT/regression.diffs" "$JOBQ_ROOT/regression.out"
set +e
make -C "$JOBQ_ROOT" -s PG_CONFIG="$PG_CONFIG" installcheck REGRESS="${TESTS[*]}" TAP_TESTS= \
    PGHOST="$WORKDIR" PGPORT="$PGPORT" PGUSER=postgres PGDATABASE="$DBNAME" BSPORT="$BSPORT"
rc=$?
set -e
nfail=$(grep -c '^test .* \.\.\. FAILED\|^not ok' "$JOBQ_ROOT/regression.out" 2>/dev/null || true)
nfail=${nfail:-0}
if [ $rc -ne 0 ] && [ "$nfail" = 0 ]; then nfail=${#TESTS[@]}; fi
PASSED=$((PASSED + ${#TESTS[@]} - nfail))
FAILED=$((FAILED + nfail))
if [ $rc -ne 0 ]; then
    cp "$JOBQ_ROOT/regression.diffs" "$JOBQ_ROOT/regression.out" "$WORKDIR/" 2>/dev/null || true
    FAILURES+=("pg_regress: $WORKDIR/regression.diffs")
    say "pg_regress failed; the differences ($WORKDIR/regression.diffs):"
    head -300 "$WORKDIR/regression.diffs" 2>/dev/null || true
fi

if [ "${JOBQ_VALGRIND:-0}" != 1 ]; then
    TAP=(${JOBQ_TAP-$(cd "$WORKDIR" && ls t/*.pl)})
    for f in "${TAP[@]}"; do
        t0=$SECONDS
        say "TAP $f (started $(date +%T))"
        set +e
        as_user PATH="$PGBIN:$PATH" PG_REGRESS="$PG_REGRESS" \
            JOBQ_BSPORT_BASE=$((BSPORT + 10)) \
            prove -I "$PGXS_DIR/src/test/perl" -I "$WORKDIR/t" "$f"
        rc=$?
        set -e
        if [ $rc -eq 0 ]; then
            PASSED=$((PASSED + 1))
            say "TAP $f passed in $((SECONDS - t0)) s"
        else
            FAILED=$((FAILED + 1))
            log="$WORKDIR/tmp_check/log/regress_log_$(basename "$f" .pl)"
            FAILURES+=("$f: $log")
            say "TAP $f FAILED in $((SECONDS - t0)) s; the end of its log ($log):"
            tail -80 "$log" 2>/dev/null || true
        fi
    done
fi

# under JOBQ_VALGRIND=1 (regression tests only: memcheck is too slow for
# the fault timings), any memcheck error fails, PostgreSQL's own known
# ones being suppressed (test/valgrind.supp); timing-bound outputs may
# differ there, which is not what that mode checks
if [ "${JOBQ_VALGRIND:-0}" = 1 ]; then
    errors=$(find "$WORKDIR" -maxdepth 1 -name 'valgrind.*.log' -size +0 2>/dev/null)
    if [ -n "$errors" ]; then
        say "valgrind reported errors"; cat $errors; exit 1
    fi
    say "valgrind: no errors ($(ls "$WORKDIR"/valgrind.*.log | wc -l) server processes checked)"
    exit 0
fi

for f in "${FAILURES[@]}"; do echo "failed: $f"; done
echo "tests: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

#!/usr/bin/env bash
# bench/run.sh [--quick]: jobq's benchmark, from a fresh Debian 12 as root.
#
# Builds and installs jobq and the helpers in bench/ (bs_raw, lat), starts a
# private beanstalkd and PostgreSQL (scripts/env.sh, ports of its own), and
# measures, each beside the raw beanstalkd rate of the same run (the machine
# is shared: the ratios matter, absolute figures drift):
#   1 put_now    jobq_put_now in one SELECT        vs bs_raw put (sequential)
#   2 workers    pre-enqueued jobs through 2 workers (one-INSERT, no-op and
#                1-in-10-failing SQL handlers)   vs bs_raw preserve (pipelined)
#   3 outbox     jobq_put in one transaction, until all ready  vs bs_raw pput
#   4 latency    commit-to-ready of single-job transactions (bench/lat)
#   5 trigger    INSERT with the jobq_enqueue row trigger vs without
#   6 memory     RSS of every jobq process before/after many jobs
#   7 pgbench    one jobq_put per transaction vs one plain INSERT, 1 and 8 clients
#   8 pool       jobq.servers with 1 and then 3 beanstalkd (two more started
#                on free ports above BSPORT): workers' no-op throughput on a
#                backlog, enqueue-to-handler latency, how the jobs spread
#   9 wait       jobq_wait: from a job's handler to the waiter's return
# Section 3 also times jobq.track_jobs off and on, and unique puts (1.5).
# Verdicts are informational: exit status is 0 unless something broke.
# --quick runs the same with small N (a CI smoke run, well under 2 minutes);
# BENCH_SECTIONS="2" runs only the sections listed.  BENCH_NO_BUILD=1 uses
# the jobq already installed (no make clean / make install of the tree).

QUICK=0
case "${1:-}" in
    --quick) QUICK=1 ;;
    "") ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

export PGPORT=${PGPORT:-55532} BSPORT=${BSPORT:-11491} DBNAME=jobq
source "$(dirname "$0")/../scripts/env.sh"

if [ $QUICK = 1 ]; then
    N_PUT=2000 N_WORK=2000 N_OB=2000 N_LAT=100 LAT_WARM=10 N_TRG=2000
    N_MEM=20000 MEM_WARM=2000 MEM_BATCH=2000 PGB_SECS=2
    N_POOL=2000 POOL_ROUNDS=1 N_POOL_LAT=50 POOL_LAT_WARM=5
else
    N_PUT=100000 N_WORK=50000 N_OB=100000 N_LAT=1000 LAT_WARM=50 N_TRG=100000
    N_MEM=200000 MEM_WARM=10000 MEM_BATCH=10000 PGB_SECS=8
    N_POOL=50000 POOL_ROUNDS=3 N_POOL_LAT=1000 POOL_LAT_WARM=50
fi

BENCH_START=$(date +%s.%N)
echo "command: $0 $* (as $(id -un) on $(hostname), $(nproc) CPUs, $(date -u +%FT%TZ))"

# our exit status survives env.sh's cleanup; on failure show the server log
on_exit() {
    local rc=$?
    # errexit would end the handler at "(exit $rc)" below, before cleanup
    # stops the servers
    set +e
    if [ $rc -ne 0 ] && [ -n "${WORKDIR:-}" ] && [ -f "$WORKDIR/postgres.log" ]; then
        echo "bench failed (status $rc); last lines of the PostgreSQL log:" >&2
        tail -30 "$WORKDIR/postgres.log" >&2
    fi
    (exit $rc)
    cleanup
}
trap on_exit EXIT

need_packages libpq-dev
if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
    say "using the jobq already installed (BENCH_NO_BUILD=1)"
else
    build_install
fi
make -C "$JOBQ_ROOT/bench" -s PG_CONFIG="$PG_CONFIG"
ensure_user
make_workdir
start_beanstalkd
start_postgres
BS_RAW=$JOBQ_ROOT/bench/bs_raw
LAT=$JOBQ_ROOT/bench/lat

sql() { psql_db -At "$@"; }

say "setting up"
sql <<'SQL'
CREATE EXTENSION jobq;
-- epoch seconds at which tube t has nothing ready, reserved or delayed
CREATE FUNCTION bench_wait_settled(t text, secs int) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE left_ bigint;
BEGIN
    FOR i IN 1 .. secs * 200 LOOP
        SELECT ready + reserved + delayed INTO left_ FROM jobq_tubes() WHERE tube = t;
        IF left_ = 0 THEN RETURN extract(epoch FROM clock_timestamp()); END IF;
        PERFORM pg_sleep(0.005);
    END LOOP;
    RAISE EXCEPTION 'tube % has % jobs left after % s', t, left_, secs;
END $$;
-- epoch seconds at which tube t has at least n ready jobs
CREATE FUNCTION bench_wait_ready(t text, n bigint, secs int) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN
    FOR i IN 1 .. secs * 100 LOOP
        SELECT ready INTO r FROM jobq_tubes() WHERE tube = t;
        IF r >= n THEN RETURN extract(epoch FROM clock_timestamp()); END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RAISE EXCEPTION 'tube % has % ready jobs after % s, wanted %', t, r, secs, n;
END $$;
-- epoch seconds at which table tbl has at least n rows (polled every 50 ms)
CREATE FUNCTION bench_wait_count(tbl regclass, n bigint, secs int) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE c bigint;
BEGIN
    FOR i IN 1 .. secs * 20 LOOP
        EXECUTE format('SELECT count(*) FROM %s', tbl) INTO c;
        IF c >= n THEN RETURN extract(epoch FROM clock_timestamp()); END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RAISE EXCEPTION '% has % rows after % s, wanted %', tbl, c, secs, n;
END $$;
SQL
# BENCH_TRACK_JOBS=on|off sets jobq.track_jobs for the whole run (1.5)
if [ -n "${BENCH_TRACK_JOBS:-}" ]; then
    sql -c "ALTER SYSTEM SET jobq.track_jobs = $BENCH_TRACK_JOBS" >/dev/null
    sql -c "SELECT pg_reload_conf()" >/dev/null
fi
# the relay and both workers are up
for _ in $(seq 100); do
    [ "$(sql -c "SELECT count(*) FROM jobq.workers WHERE state <> 'starting'")" -ge 3 ] && break
    sleep 0.1
done

CONFIG="PostgreSQL $(sql -c 'SHOW server_version'), synchronous_commit=$(sql -c 'SHOW synchronous_commit'), jobq.workers=$(sql -c 'SHOW jobq.workers'), shared_buffers=$(sql -c 'SHOW shared_buffers'); $(beanstalkd -v 2>&1 | head -1) with binlog (-b); all on 127.0.0.1"
echo "$CONFIG"

# ---- reporting ----------------------------------------------------------

# BENCH_SECTIONS="2 4" runs only those sections (all by default)
want() { [[ " ${BENCH_SECTIONS:-1 2 3 4 5 6 7 8 9} " == *" $1 "* ]]; }

REPORT=()
hdr=$(printf '%-34s %16s %16s %7s %9s  %s' measurement jobq "raw beanstalkd" ratio target verdict)
# verdict VALUE OP TARGET -> PASS or BELOW TARGET (OP: >=, <=, <)
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == ">=") ? (v + 0 >= t + 0) : (op == "<=") ? (v + 0 <= t + 0) : (v + 0 < t + 0);
        print ok ? "PASS" : "BELOW TARGET" }'
}
# emit NAME JOBQ RAW RATIO TARGET VERDICT: prints the line and keeps it for the summary
emit() {
    local line
    line=$(printf '%-34s %16s %16s %7s %9s  %s' "$@")
    echo "$line"
    REPORT+=("$line")
}
# row NAME JOBQ RAW RATIO OP TARGET: a line whose verdict is on the ratio
row() { emit "$1" "$2" "$3" "$4" "$5 $6" "$(verdict "$4" "$5" "$6")"; }
note() { echo "  $*"; REPORT+=("  $*"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0) ? n / s : 0 }'; }
# raw MODE N TUBE -> sets RAW_SECS, RAW_RATE
raw() {
    local out
    out=$("$BS_RAW" 127.0.0.1 "$BSPORT" "$1" "$2" "$3")
    read -r _ _ RAW_SECS RAW_RATE <<<"$out"
}
# a check that must hold, else the run is broken
must() {
    local got
    got=$(sql -c "$1")
    if [ "$got" != "$2" ]; then
        echo "CHECK FAILED: $1 -> '$got', wanted '$2'" >&2
        exit 1
    fi
}

# ---- 1. put_now ---------------------------------------------------------

if want 1; then

say "1. put_now: $N_PUT jobq_put_now in one SELECT vs bs_raw put (2 alternating rounds, best of each)"
best_put="" best_raw="" rounds=()
for round in 1 2; do
    raw put "$N_PUT" bench-raw-put
    out=$(sql <<SQL
SELECT jobq_put_now('bench_now', 'f', '{"i": 0}') > 0 AS warm \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(jobq_put_now('bench_now', 'f', '{"i": 1}')) FROM generate_series(1, $N_PUT) \gset
SELECT extract(epoch FROM clock_timestamp()) - :t0;
SQL
)
    r=$(rate "$N_PUT" "$out")
    rounds+=("round $round: jobq ${out}s = $r jobs/s; raw sequential put ${RAW_SECS}s = $RAW_RATE jobs/s")
    [ -z "$best_put" ] || [ "$r" -gt "$best_put" ] && best_put=$r
    [ -z "$best_raw" ] || [ "$RAW_RATE" -gt "$best_raw" ] && best_raw=$RAW_RATE
done
must "SELECT ready FROM jobq_tubes() WHERE tube = 'bench_now'" $((2 * (N_PUT + 1)))
row "1 put_now jobs/s (N=$N_PUT)" "$best_put" "$best_raw" "$(ratio "$best_put" "$best_raw")" ">=" 0.8
for r in "${rounds[@]}"; do note "$r"; done
fi

# ---- 2. workers ---------------------------------------------------------

if want 2; then

say "2. workers: $N_WORK pre-enqueued jobs through 2 workers vs bs_raw preserve (3 rounds each)"
sql <<'SQL'
CREATE TABLE bench_sink_t (i int);
CREATE FUNCTION bench_sink(i int) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.bench_sink_t (i) VALUES (i) $$;
CREATE FUNCTION bench_noop(i int) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION bench_fail10(i int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.bench_sink_t (i) VALUES (i);
    IF i % 10 = 0 THEN RAISE EXCEPTION 'job % fails', i; END IF;
END $$;
SELECT jobq_register('bench_insert', 'bench_sink') \gset
SELECT jobq_register('bench_noop', 'bench_noop') \gset
SELECT jobq_register('bench_fail10', 'bench_fail10', max_attempts => 1) \gset
SQL
# the workers watch the tubes (so they exist and can be paused)
for t in bench_insert bench_noop bench_fail10; do
    for _ in $(seq 50); do
        [ "$(sql -c "SELECT jobq_pause_tube('$t', '0')")" = t ] && break
        sleep 0.1
    done
done
# work_round TUBE FUNC -> "seconds" from un-pausing N_WORK jobs until all settled
work_round() {
    local paused
    paused=$(sql -c "SELECT jobq_pause_tube('$1', '1 hour')")
    if [ "$paused" != t ]; then echo "pause-tube $1 did not answer PAUSED" >&2; exit 1; fi
    sql -c "SELECT count(jobq_put_now('$1', '$2', jsonb_build_object('i', i))) FROM generate_series(1, $N_WORK) i" >/dev/null
    must "SELECT ready FROM jobq_tubes() WHERE tube = '$1'" "$N_WORK"
    sql <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT jobq_pause_tube('$1', '0') \gset
SELECT bench_wait_settled('$1', 900) - :t0;
SQL
}
# median and spread of three figures
med3() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%s %s %s", v[2], v[1], v[3] }'; }
for kind in insert noop fail10; do
    rates=() raws=() ratios=()
    for round in 1 2 3; do
        raw pput "$N_WORK" bench-raw-pres >/dev/null
        raw preserve "$N_WORK" bench-raw-pres
        [ $kind = fail10 ] && sql -c "DELETE FROM jobq.failed" >/dev/null
        secs=$(work_round "bench_$kind" "bench_$([ $kind = insert ] && echo sink || echo $kind)")
        r=$(rate "$N_WORK" "$secs")
        rates+=("$r") raws+=("$RAW_RATE") ratios+=("$(ratio "$r" "$RAW_RATE")")
    done
    read -r r_med r_lo r_hi <<<"$(med3 "${rates[@]}")"
    read -r w_med w_lo w_hi <<<"$(med3 "${raws[@]}")"
    read -r q_med q_lo q_hi <<<"$(med3 "${ratios[@]}")"
    case $kind in
        insert)
            must "SELECT count(*) FROM bench_sink_t" $((3 * N_WORK))
            row "2 workers, one-INSERT handler j/s" "$r_med" "$w_med" "$q_med" ">=" 0.25
            emit "  ... the same, jobs/s" "$r_med" "-" "-" ">= 20000" "$(verdict "$r_med" ">=" 20000)" ;;
        noop)
            row "2 workers, no-op handler j/s" "$r_med" "$w_med" "$q_med" ">=" 0.4 ;;
        fail10)
            must "SELECT count(*) FROM jobq.failed WHERE tube = 'bench_fail10'" $((N_WORK / 10))
            emit "2 workers, 1 in 10 fails j/s" "$r_med" "$w_med" "$q_med" "-" "(info)" ;;
    esac
    note "$kind: 3 rounds of $N_WORK jobs; jobq ${r_lo}-${r_hi} j/s, raw pipelined reserve+delete ${w_lo}-${w_hi} j/s, ratio ${q_lo}-${q_hi}"
done
note "clock: from un-pausing the tube (all $N_WORK jobs ready) until none is ready, reserved or delayed;"
note "jobq.batch_size=$(sql -c 'SHOW jobq.batch_size'); raw: bs_raw preserve, 1000 reserves then 1000 deletes a write"
sql -c "DELETE FROM jobq.failed WHERE tube = 'bench_fail10'" >/dev/null
fi

# ---- 3. outbox ----------------------------------------------------------

if want 3; then

say "3. outbox: $N_OB jobq_put in one transaction until all ready vs bs_raw pput"
raw pput "$N_OB" bench-raw-pput
out=$(sql <<SQL
SELECT jobq_put('bench_ob_warm', 'f') IS NOT NULL AS warm \gset
SELECT bench_wait_ready('bench_ob_warm', 1, 30) \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(jobq_put('bench_ob', 'f', jsonb_build_object('i', i))) FROM generate_series(1, $N_OB) i \gset
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
SELECT bench_wait_ready('bench_ob', $N_OB, 300) AS t2 \gset
SELECT :t2 - :t0, :t1 - :t0;
SQL
)
IFS='|' read -r ob_secs ob_stmt <<<"$out"
must "SELECT count(*) FROM jobq.outbox" 0
OB_RATE=$(rate "$N_OB" "$ob_secs")
row "3 outbox jobs/s (N=$N_OB)" "$OB_RATE" "$RAW_RATE" "$(ratio "$OB_RATE" "$RAW_RATE")" ">=" 0.7
OB_STMT_RATE=$(rate "$N_OB" "$ob_stmt")
emit "3 ... the statement, jobs/s" "$OB_STMT_RATE" "-" "-" ">= 150000" "$(verdict "$OB_STMT_RATE" ">=" 150000)"
note "jobq ${ob_secs}s: statement+commit ${ob_stmt}s, then relay; raw pipelined put ${RAW_SECS}s"

# 1.5: what jobq.track_jobs (the relay's jobq.sent row per job) costs, and a
# unique put (unique_key) beside a plain one, rounds alternating in one run
if [ "$(sql -c "SELECT count(*) FROM pg_settings WHERE name = 'jobq.track_jobs'")" = 1 ]; then
ob_round() {    # ob_round TUBE UNIQUE(0/1) -> "all-ready-secs|statement-secs"
    local key=NULL
    [ "$2" = 1 ] && key="'k' || i"
    sql <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(jobq_put('$1', 'f', jsonb_build_object('i', i), unique_key => $key)) FROM generate_series(1, $N_OB) i \gset
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
SELECT bench_wait_ready('$1', $N_OB, 300) AS t2 \gset
SELECT :t2 - :t0, :t1 - :t0;
SQL
}
set_tracking() {
    sql -c "ALTER SYSTEM SET jobq.track_jobs = $1" >/dev/null
    sql -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
}
TRACK_ON=() TRACK_OFF=() PLAIN_STMT=() UNIQUE_STMT=()
for r in 1 2 3; do
    raw pput "$N_OB" "bench-raw-pput-$r"
    raw_r=$RAW_RATE
    set_tracking off
    IFS='|' read -r s_all s_stmt <<<"$(ob_round "bench_ob_off_$r" 0)"
    TRACK_OFF+=("$(ratio "$(rate "$N_OB" "$s_all")" "$raw_r")")
    set_tracking on
    IFS='|' read -r s_all s_stmt <<<"$(ob_round "bench_ob_on_$r" 0)"
    TRACK_ON+=("$(ratio "$(rate "$N_OB" "$s_all")" "$raw_r")")
    PLAIN_STMT+=("$s_stmt")
    IFS='|' read -r s_all s_stmt <<<"$(ob_round "bench_ob_uniq_$r" 1)"
    UNIQUE_STMT+=("$s_stmt")
done
sql -c "ALTER SYSTEM RESET jobq.track_jobs" >/dev/null
sql -c "SELECT pg_reload_conf()" >/dev/null
note "3 all-ready ratio to raw pipelined put, jobq.track_jobs off: ${TRACK_OFF[*]}; on: ${TRACK_ON[*]} (rounds alternating)"
tr_cost=$(awk -v a="${TRACK_OFF[*]}" -v b="${TRACK_ON[*]}" 'BEGIN { n = split(a, x, " "); split(b, y, " ");
    for (i = 1; i <= n; i++) { so += x[i]; sn += y[i] } printf "%.1f", (so > 0) ? 100 * (so - sn) / so : 0 }')
emit "3 ... tracking cost, % of rate" "$tr_cost" "-" "-" "< 5" "$(verdict "$tr_cost" "<" 5)"
u_ratio=$(awk -v a="${UNIQUE_STMT[*]}" -v b="${PLAIN_STMT[*]}" 'BEGIN { n = split(a, x, " "); split(b, y, " ");
    for (i = 1; i <= n; i++) { su += x[i]; sp += y[i] } printf "%.2f", (sp > 0) ? su / sp : 0 }')
note "3 the $N_OB-put statement, seconds: plain ${PLAIN_STMT[*]}; every put with its own unique_key ${UNIQUE_STMT[*]}"
emit "3 ... unique put / plain put, time" "$u_ratio" "-" "-" "<= 2" "$(verdict "$u_ratio" "<=" 2)"
fi
fi

# ---- 4. latency ---------------------------------------------------------

if want 4; then

say "4. latency: $N_LAT single-job transactions, commit to ready"
out=$("$LAT" "host=$WORKDIR port=$PGPORT user=postgres dbname=$DBNAME" 127.0.0.1 "$BSPORT" \
      "$N_LAT" "$LAT_WARM" bench_lat)
read -r _ _ p50 p90 p99 pmax e50 e99 s50 <<<"$out"
emit "4 commit-to-ready p50 ms (N=$N_LAT)" "$p50" "-" "-" "< 2 ms" "$(verdict "$p50" "<" 2)"
note "commit-to-ready p90 ${p90} ms, p99 ${p99} ms, max ${pmax} ms"
note "statement sent to ready p50 ${e50} ms, p99 ${e99} ms; the statement itself p50 ${s50} ms"

# enqueue to handler start, idle workers: a procedure commits one job at a
# time, stamps the moment before its COMMIT, and waits for the handler's row
sql <<'SQL'
CREATE TABLE bench_lat_sent (i int PRIMARY KEY, at timestamptz);
CREATE TABLE bench_lat_ran (i int PRIMARY KEY, at timestamptz);
CREATE FUNCTION bench_lat_h(i int) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.bench_lat_ran VALUES (i, clock_timestamp()) $$;
SELECT jobq_register('bench_lat_h', 'bench_lat_h') \gset
CREATE PROCEDURE bench_enqueue_to_handler(n int) LANGUAGE plpgsql AS $$
BEGIN
    FOR k IN 1 .. n LOOP
        PERFORM jobq_put('bench_lat_h', 'bench_lat_h', jsonb_build_object('i', k));
        INSERT INTO bench_lat_sent VALUES (k, clock_timestamp());
        COMMIT;
        FOR w IN 1 .. 50000 LOOP
            EXIT WHEN EXISTS (SELECT FROM bench_lat_ran WHERE i = k);
            PERFORM pg_sleep(0.0002);
        END LOOP;
        PERFORM pg_sleep(0.002);    -- the workers are idle again
    END LOOP;
END $$;
SQL
sleep 1.5    # the workers watch the new tube
sql -c "CALL bench_enqueue_to_handler($N_LAT)"
must "SELECT count(*) FROM bench_lat_ran" "$N_LAT"
read -r h50 h90 h99 hmax <<<"$(sql -F ' ' -c "
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(max(ms)::numeric, 2)
  FROM (SELECT extract(epoch FROM r.at - s.at) * 1000 AS ms
          FROM bench_lat_sent s JOIN bench_lat_ran r USING (i) WHERE i > $LAT_WARM) t")"
emit "4 enqueue-to-handler p50 ms" "$h50" "-" "-" "< 1 ms" "$(verdict "$h50" "<" 1)"
emit "4 enqueue-to-handler p99 ms" "$h99" "-" "-" "< 3 ms" "$(verdict "$h99" "<" 3)"
note "enqueue-to-handler: from just before COMMIT of a jobq_put to the handler's first statement; p90 ${h90} ms, max ${hmax} ms"
fi

# ---- 5. trigger ---------------------------------------------------------

if want 5; then

say "5. trigger: INSERT of $N_TRG rows with the jobq_enqueue trigger vs without"
sql <<'SQL'
CREATE TABLE bench_trg_plain (id int, v text, n int);
CREATE TABLE bench_trg_on (LIKE bench_trg_plain);
CREATE TRIGGER bench_trg AFTER INSERT ON bench_trg_on
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('bench_trg', 'f');
SQL
# insert_secs TABLE -> seconds of the INSERT (with its commit), after a warm-up row
insert_secs() {
    sql <<SQL
INSERT INTO $1 VALUES (0, 'warm', 0);
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
INSERT INTO $1 SELECT i, 'row ' || i, i FROM generate_series(1, $N_TRG) i;
SELECT extract(epoch FROM clock_timestamp()) - :t0;
SQL
}
best_plain="" best_trg="" queued=0 rounds=()
for round in 1 2; do
    sql -c "TRUNCATE bench_trg_plain, bench_trg_on"
    p=$(insert_secs bench_trg_plain)
    t=$(insert_secs bench_trg_on)
    queued=$((queued + N_TRG + 1))
    # let the relay send the trigger's jobs before the next round
    sql -c "SELECT bench_wait_ready('bench_trg', $queued, 300)" >/dev/null
    rounds+=("round $round: plain ${p}s, with trigger ${t}s")
    best_plain=$(awk -v a="$p" -v b="$best_plain" 'BEGIN { print (b == "" || a < b) ? a : b }')
    best_trg=$(awk -v a="$t" -v b="$best_trg" 'BEGIN { print (b == "" || a < b) ? a : b }')
done
must "SELECT ready FROM jobq_tubes() WHERE tube = 'bench_trg'" "$queued"
TRG_RATIO=$(awk -v a="$best_trg" -v b="$best_plain" 'BEGIN { printf "%.2f", a / b }')
row "5 trigger INSERT s (N=$N_TRG)" "$(printf '%.3f' "$best_trg")" "$(printf '%.3f plain' "$best_plain")" \
    "$TRG_RATIO" "<=" 3
note "best of 2 rounds each; 'raw' column: the same INSERT without the trigger"
for r in "${rounds[@]}"; do note "$r"; done
fi

# ---- 6. memory ----------------------------------------------------------

if want 6; then

say "6. memory: $N_MEM jobs through the relay and the workers, RSS per jobq process"
sql <<'SQL'
CREATE TABLE bench_mem_t (i int, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION bench_mem_sink(i int) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.bench_mem_t (i) VALUES (i) $$;
SELECT jobq_register('bench_mem', 'bench_mem_sink') \gset
SQL
# put_batches FROM TO: jobq_put of jobs FROM..TO, MEM_BATCH per transaction
put_batches() {
    local from=$1 to=$2 script=""
    while [ "$from" -le "$to" ]; do
        local hi=$((from + MEM_BATCH - 1))
        [ $hi -gt "$to" ] && hi=$to
        script+="SELECT count(jobq_put('bench_mem', 'bench_mem_sink', jsonb_build_object('i', i))) FROM generate_series($from, $hi) i \\gset"$'\n'
        from=$((hi + 1))
    done
    sql <<<"$script"
}
# jobq_procs -> "pid kind" lines: the launcher, the relay and the workers
jobq_procs() {
    sql -F ' ' -c "SELECT pid, CASE kind WHEN 'relay' THEN 'relay' ELSE 'worker' || worker END
                     FROM jobq.workers
                   UNION ALL
                   SELECT pid, 'launcher' FROM pg_stat_activity WHERE backend_type = 'jobq launcher'
                   ORDER BY 2"
}
kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
REPORT+=("6 memory: $N_MEM jobs, jobq_put in transactions of $MEM_BATCH, handler inserts a row")
put_batches 1 "$MEM_WARM"
sql -c "SELECT bench_wait_count('bench_mem_t', $MEM_WARM, 300)" >/dev/null
PROCS=$(jobq_procs)
declare -A RSS ANON
# sample TAG: VmRSS and RssAnon (kB) of every process in PROCS
sample() {
    local pid kind
    while read -r pid kind; do
        if [ -r "/proc/$pid/status" ]; then
            RSS[$1,$pid]=$(kb "$pid" VmRSS) ANON[$1,$pid]=$(kb "$pid" RssAnon)
        else
            RSS[$1,$pid]=0 ANON[$1,$pid]=0
        fi
    done <<<"$PROCS"
}
sample start
MEM_MID=$(( (MEM_WARM + N_MEM) / 2 / MEM_BATCH * MEM_BATCH ))
t0=$(date +%s.%N)
put_batches $((MEM_WARM + 1)) "$MEM_MID"
sql -c "SELECT bench_wait_count('bench_mem_t', $MEM_MID, 900)" >/dev/null
sample mid
put_batches $((MEM_MID + 1)) "$N_MEM"
sql -c "SELECT bench_wait_count('bench_mem_t', $N_MEM, 900)" >/dev/null
t1=$(date +%s.%N)
sample end
must "SELECT count(*) FROM bench_mem_t" "$N_MEM"
must "SELECT count(*) FROM jobq.failed WHERE tube = 'bench_mem'" 0
MEM_RATE=$(rate $((N_MEM - MEM_WARM)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
note "$((N_MEM - MEM_WARM)) jobs after a warm-up of $MEM_WARM, at $MEM_RATE jobs/s end to end (jobq_put -> relay -> workers)"
note "samples: start (after $MEM_WARM jobs), mid (after $MEM_MID), end (after $N_MEM); kB"
note "$(printf '%-10s %7s %8s %8s %8s %8s  %8s %8s %8s %8s' process pid \
    VmRSS mid end growth RssAnon mid end growth)"
AFTER=$(jobq_procs)
while read -r pid kind; do
    if ! grep -qx "$pid $kind" <<<"$AFTER"; then
        note "$(printf '%-10s %7s  RESTARTED during the run (now: %s)' "$kind" "$pid" "$(echo $AFTER)")"
        continue
    fi
    note "$(printf '%-10s %7s %8s %8s %8s %+8d  %8s %8s %8s %+8d' "$kind" "$pid" \
        "${RSS[start,$pid]}" "${RSS[mid,$pid]}" "${RSS[end,$pid]}" $(( ${RSS[end,$pid]} - ${RSS[start,$pid]} )) \
        "${ANON[start,$pid]}" "${ANON[mid,$pid]}" "${ANON[end,$pid]}" $(( ${ANON[end,$pid]} - ${ANON[start,$pid]} )))"
done <<<"$PROCS"
note "VmRSS includes the shared buffers a process touched; RssAnon is its private heap"
fi

# ---- 7. pgbench ---------------------------------------------------------

if want 7; then

say "7. pgbench: one jobq_put per transaction vs one plain INSERT per transaction, 1 and 8 clients"
sql <<'SQL'
CREATE TABLE bench_pgb_plain (id bigserial PRIMARY KEY, v int);
SQL
echo "INSERT INTO bench_pgb_plain (v) VALUES (1);" >"$WORKDIR/pgb_plain.sql"
echo "SELECT jobq_put('bench_pgb', 'f', '{\"v\": 1}');" >"$WORKDIR/pgb_put.sql"
chown "$JOBQ_USER" "$WORKDIR"/pgb_*.sql
# pgb SCRIPT CLIENTS -> tps (excluding connection time) and the transactions done
pgb() {
    as_user "$PGBIN/pgbench" -n -h "$WORKDIR" -p "$PGPORT" -U postgres -f "$WORKDIR/$1" \
        -c "$2" -j 2 -T "$PGB_SECS" "$DBNAME" 2>/dev/null |
        awk '/number of transactions actually processed/ { split($0, a, ": "); split(a[2], b, "/"); n = b[1] }
             /^tps/ { t = $3 } END { printf "%.0f %d", t, n }'
}
sent=0
for clients in 1 8; do
    read -r plain_tps _ <<<"$(pgb pgb_plain.sql $clients)"
    read -r put_tps put_n <<<"$(pgb pgb_put.sql $clients)"
    sent=$((sent + put_n))
    row "7 pgbench jobq_put tps, $clients client(s)" "$put_tps" "$plain_tps ins" \
        "$(ratio "$put_tps" "$plain_tps")" ">=" 0.8
done
sql -c "SELECT bench_wait_ready('bench_pgb', $sent, 300)" >/dev/null
must "SELECT ready FROM jobq_tubes() WHERE tube = 'bench_pgb'" "$sent"
note "$PGB_SECS s per run, -j 2; 'raw' column: the same transaction inserting one row into a bigserial table;"
note "all $sent jobs were in beanstalkd at the end"
fi

# ---- 8. pool ------------------------------------------------------------

if want 8; then

say "8. pool: jobq.servers with 1, then 3 beanstalkd: $N_POOL no-op jobs through 2 workers ($POOL_ROUNDS rounds each), enqueue-to-handler latency"
POOL_LOG_FROM=$(($(stat -c %s "$WORKDIR/postgres.log") + 1))
POOL_T0=$(sql -c "SELECT now()")
# the two more beanstalkd: on free ports above BSPORT, with a binlog like the first
POOL_PORTS=() POOL_PIDS=()
start_pool_bs() {
    local p=$((BSPORT + 1)) pid
    for _ in $(seq 20); do
        while [ "$p" = "$PGPORT" ] || [[ " ${POOL_PORTS[*]} " == *" $p "* ]] ||
              ss -ltnH "sport = :$p" | grep -q .; do
            p=$((p + 1))
        done
        mkdir -p "$WORKDIR/binlog-$p"
        chown "$JOBQ_USER" "$WORKDIR/binlog-$p"
        "${AS_USER[@]}" beanstalkd -l 127.0.0.1 -p "$p" -b "$WORKDIR/binlog-$p" &
        pid=$!
        PIDS+=("$pid")
        # listening, and it is ours (not someone else's server on a port just taken)
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            if ss -ltnpH "sport = :$p" | grep -q "pid=$pid,"; then
                POOL_PORTS+=("$p") POOL_PIDS+=("$pid")
                return 0
            fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        drop_pids "$pid"
        p=$((p + 1))
    done
    echo "could not start a beanstalkd on a free port above $BSPORT" >&2
    exit 1
}
# drop_pids PID...: off the list of PIDs env.sh's cleanup stops
drop_pids() {
    local pid keep=()
    for pid in "${PIDS[@]}"; do
        [[ " $* " == *" $pid "* ]] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}
# stops them by PID
stop_pool_bs() {
    local pid
    for pid in "${POOL_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${POOL_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    drop_pids "${POOL_PIDS[@]}"
    POOL_PIDS=()
}
start_pool_bs
start_pool_bs
POOL_ONE="127.0.0.1:$BSPORT"
POOL_THREE="127.0.0.1:$BSPORT,127.0.0.1:${POOL_PORTS[0]},127.0.0.1:${POOL_PORTS[1]}"
echo "  beanstalkd on 127.0.0.1:$BSPORT (the bench's), ${POOL_PORTS[0]} and ${POOL_PORTS[1]} (pids ${POOL_PIDS[*]})"

# bs_field PORT COMMAND FIELD -> FIELD of the YAML that COMMAND ("stats",
# "stats-tube T") answers on that server, over a raw connection; 0 when the
# tube does not exist there
bs_field() {
    local fd line body
    exec {fd}<>"/dev/tcp/127.0.0.1/$1"
    printf '%s\r\n' "$2" >&"$fd"
    IFS= read -r -t 5 line <&"$fd" || line="(no reply)"
    line=${line%$'\r'}
    case $line in
        "OK "*)
            IFS= read -r -t 5 -N $((${line#OK } + 2)) body <&"$fd"
            awk -v f="$3:" '$1 == f { print $2 }' <<<"$body" ;;
        NOT_FOUND) echo 0 ;;
        *) echo "\"$2\" on port $1: $line" >&2; exec {fd}>&-; exit 1 ;;
    esac
    exec {fd}>&-
}

sql <<'SQL'
CREATE FUNCTION bench_pool_noop(i int) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT jobq_register('bench_pool_noop', 'bench_pool_noop') \gset
CREATE TABLE bench_pool_lat_sent (run int, i int, at timestamptz, PRIMARY KEY (run, i));
CREATE TABLE bench_pool_lat_ran (run int, i int, at timestamptz, PRIMARY KEY (run, i));
CREATE FUNCTION bench_pool_lat_h(run int, i int) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.bench_pool_lat_ran VALUES (run, i, clock_timestamp()) $$;
SELECT jobq_register('bench_pool_lat', 'bench_pool_lat_h') \gset
-- section 4's method: commit one job at a time, stamp the moment before its
-- COMMIT, wait for the handler's row, let the workers go idle again
CREATE PROCEDURE bench_pool_enqueue_to_handler(p_run int, n int) LANGUAGE plpgsql AS $$
BEGIN
    FOR k IN 1 .. n LOOP
        PERFORM jobq_put('bench_pool_lat', 'bench_pool_lat_h', jsonb_build_object('run', p_run, 'i', k));
        INSERT INTO bench_pool_lat_sent VALUES (p_run, k, clock_timestamp());
        COMMIT;
        FOR w IN 1 .. 50000 LOOP
            EXIT WHEN EXISTS (SELECT FROM bench_pool_lat_ran r WHERE r.run = p_run AND r.i = k);
            PERFORM pg_sleep(0.0002);
        END LOOP;
        PERFORM pg_sleep(0.002);    -- the workers are idle again
    END LOOP;
END $$;
SQL
POOL_WORKERS=$(sql -c "SELECT count(*) FROM jobq.workers WHERE kind = 'worker'")

# use_servers N: jobq.servers = 1 or 3 servers (ALTER SYSTEM, reload), then
# waits until every worker watches both tubes on each of them, and (for 1)
# no longer on the other two
use_servers() {
    local want ok=0 p t
    want=$([ "$1" = 1 ] && echo "$POOL_ONE" || echo "$POOL_THREE")
    sql -c "ALTER SYSTEM SET jobq.servers = '$want'"
    sql -c "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 150); do
        if [ "$(sql -c 'SHOW jobq.servers')" = "$want" ] &&
           [ "$(sql -c "SELECT count(*) FROM jobq_server_tubes()
                         WHERE tube IN ('bench_pool_noop', 'bench_pool_lat')
                           AND watching >= $POOL_WORKERS")" = $((2 * $1)) ]; then
            ok=1
            if [ "$1" = 1 ]; then
                for p in "${POOL_PORTS[@]}"; do
                    for t in bench_pool_noop bench_pool_lat; do
                        [ "$(bs_field "$p" "stats-tube $t" current-watching)" = 0 ] || ok=0
                    done
                done
            fi
            [ $ok = 1 ] && break
        fi
        sleep 0.1
    done
    if [ $ok != 1 ]; then
        echo "the workers did not all watch the tubes on jobq.servers = '$want' within 15 s" >&2
        sql -c "SELECT * FROM jobq_server_tubes() WHERE tube LIKE 'bench_pool%'" >&2
        sql -c "SELECT * FROM jobq.workers" >&2
        exit 1
    fi
    must "SELECT count(*) FROM jobq.workers WHERE state = 'starting'" 0
    sleep 0.5    # the relay re-reads it at once (the reload wakes it): a margin
}
# server_totals TUBE -> "server total-jobs" lines
server_totals() { sql -F ' ' -c "SELECT server, total FROM jobq_server_tubes() WHERE tube = '$1' ORDER BY server"; }
declare -A SPREAD_THR SPREAD_LAT
# add_spread ARRAY BEFORE AFTER: adds each server's new jobs to ARRAY
add_spread() {
    local -n acc=$1
    local s n
    while read -r s n; do
        acc[$s]=$(( ${acc[$s]:-0} + n ))
    done < <(awk 'NR == FNR { b[$1] = $2; next } { print $1, $2 - b[$1] }' <(echo "$2") <(echo "$3"))
}
# spread_line ARRAY -> "server jobs (share), ..."
spread_line() {
    local -n acc=$1
    local s tot=0 out=""
    for s in "${!acc[@]}"; do tot=$((tot + acc[$s])); done
    for s in $(printf '%s\n' "${!acc[@]}" | sort); do
        out+="${out:+, }$s ${acc[$s]} ($(awk -v a="${acc[$s]}" -v b="$tot" 'BEGIN { printf "%.1f%%", (b > 0) ? 100 * a / b : 0 }'))"
    done
    echo "$out"
}
# worker_done -> jobs the workers have run (since they started)
worker_done() { sql -c "SELECT coalesce(sum(succeeded), 0) FROM jobq.workers WHERE kind = 'worker'"; }
# pool_round N: ROUND_SECS = seconds from un-pausing N_POOL ready jobs until
# all settled (N servers configured); with 3, adds how they spread to
# SPREAD_THR (not in a subshell, for that)
pool_round() {
    local paused before done0 secs c0
    paused=$(sql -c "SELECT jobq_pause_tube('bench_pool_noop', '1 hour')")
    if [ "$paused" != t ]; then echo "pause-tube bench_pool_noop did not answer PAUSED" >&2; exit 1; fi
    must "SELECT count(*) FROM jobq_server_tubes() WHERE tube = 'bench_pool_noop' AND pause > '0'" "$1"
    before=$(server_totals bench_pool_noop)
    done0=$(worker_done)
    sql -c "SELECT count(jobq_put('bench_pool_noop', 'bench_pool_noop', jsonb_build_object('i', i))) FROM generate_series(1, $N_POOL) i" >/dev/null
    sql -c "SELECT bench_wait_ready('bench_pool_noop', $N_POOL, 300)" >/dev/null
    must "SELECT ready FROM jobq_tubes() WHERE tube = 'bench_pool_noop'" "$N_POOL"
    must "SELECT count(*) FROM jobq.outbox" 0
    c0=$(conns_opened)
    secs=$(sql <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT jobq_pause_tube('bench_pool_noop', '0') \gset
SELECT bench_wait_settled('bench_pool_noop', 900) - :t0;
SQL
)
    # less conns_opened's own 3 and the session's one to each server
    ROUND_CONNS=$(($(conns_opened) - c0 - 3 - $1))
    must "SELECT buried FROM jobq_tubes() WHERE tube = 'bench_pool_noop'" 0
    # every job ran once (the count follows the deletes' replies: a moment)
    for _ in $(seq 50); do [ "$(worker_done)" -ge $((done0 + N_POOL)) ] && break; sleep 0.05; done
    must "SELECT coalesce(sum(succeeded), 0) - $done0 FROM jobq.workers WHERE kind = 'worker'" "$N_POOL"
    [ "$1" = 3 ] && add_spread SPREAD_THR "$before" "$(server_totals bench_pool_noop)"
    ROUND_SECS=$secs
}
# lat_run N: LAT = "p50 p90 p99 max" (ms) of a latency run with N servers;
# with 3, adds how the jobs spread to SPREAD_LAT
lat_run() {
    local before c0
    before=$(server_totals bench_pool_lat)
    c0=$(conns_opened)
    sql -c "CALL bench_pool_enqueue_to_handler($1, $((N_POOL_LAT + POOL_LAT_WARM)))"
    LAT_CONNS=$(($(conns_opened) - c0 - 3))     # less conns_opened's own
    must "SELECT count(*) FROM bench_pool_lat_ran WHERE run = $1" $((N_POOL_LAT + POOL_LAT_WARM))
    [ "$1" = 3 ] && add_spread SPREAD_LAT "$before" "$(server_totals bench_pool_lat)"
    LAT=$(sql -F ' ' -c "
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(max(ms)::numeric, 2)
  FROM (SELECT extract(epoch FROM r.at - s.at) * 1000 AS ms
          FROM bench_pool_lat_sent s JOIN bench_pool_lat_ran r USING (run, i)
         WHERE run = $1 AND i > $POOL_LAT_WARM) t")
}
# conns_opened -> connections accepted so far by the three beanstalkd
conns_opened() {
    local p tot=0
    for p in "$BSPORT" "${POOL_PORTS[@]}"; do
        tot=$((tot + $(bs_field "$p" stats total-connections)))
    done
    echo "$tot"
}
# pool_phase N: with N servers, POOL_ROUNDS throughput rounds (bs_raw before
# each), then the latency run; sets RATES, RAWS, LAT, and CONNS_THR and
# CONNS_LAT: connections the relay and the workers opened during the timed
# parts (a worker closes the reserves left waiting on the other servers
# when one of them gives it a job).  All rounds with 1 server, then all
# with 3: one switch each way (a worker switched back to servers it had
# before once skipped watching the tubes there; use_servers fails on that).
pool_phase() {
    RATES=() RAWS=() CONNS_THR=0
    use_servers "$1"
    for _ in $(seq "$POOL_ROUNDS"); do
        raw pput "$N_POOL" bench-raw-pool >/dev/null
        raw preserve "$N_POOL" bench-raw-pool
        RAWS+=("$RAW_RATE")
        pool_round "$1"
        RATES+=("$(rate "$N_POOL" "$ROUND_SECS")")
        CONNS_THR=$((CONNS_THR + ROUND_CONNS))
    done
    lat_run "$1"
    CONNS_LAT=$LAT_CONNS
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

pool_phase 1
rates1=("${RATES[@]}") raws1=("${RAWS[@]}") conns1_thr=$CONNS_THR conns1_lat=$CONNS_LAT
read -r l1_50 l1_90 l1_99 l1_max <<<"$LAT"
pool_phase 3
rates3=("${RATES[@]}") raws3=("${RAWS[@]}") conns3_thr=$CONNS_THR conns3_lat=$CONNS_LAT
read -r l3_50 l3_90 l3_99 l3_max <<<"$LAT"

# raw, the three servers at once: one bs_raw preserve on each, in parallel
for p in "$BSPORT" "${POOL_PORTS[@]}"; do
    "$BS_RAW" 127.0.0.1 "$p" pput $((N_POOL / 3)) bench-raw-pool >/dev/null
done
raw3_t0=$(date +%s.%N) raw3_pids=()
for p in "$BSPORT" "${POOL_PORTS[@]}"; do
    "$BS_RAW" 127.0.0.1 "$p" preserve $((N_POOL / 3)) bench-raw-pool >/dev/null &
    raw3_pids+=($!)
done
for pid in "${raw3_pids[@]}"; do wait "$pid"; done
RAW3_RATE=$(rate $((3 * (N_POOL / 3))) "$(awk -v a="$raw3_t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')")

# back to the configuration file's jobq.servers, then stop the two
sql -c "ALTER SYSTEM RESET jobq.servers"
sql -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 50); do [ "$(sql -c 'SHOW jobq.servers')" = "$POOL_ONE" ] && break; sleep 0.1; done
stop_pool_bs

r1=$(median "${rates1[@]}") r3=$(median "${rates3[@]}")
w1=$(median "${raws1[@]}") w3=$(median "${raws3[@]}")
emit "8 pool 1 server, no-op j/s" "$r1" "$w1" "$(ratio "$r1" "$w1")" "-" "(info)"
emit "8 pool 3 servers, no-op j/s" "$r3" "$w3" "$(ratio "$r3" "$w3")" "-" "(info)"
emit "8 ... 3 servers / 1 server" "$(ratio "$r3" "$r1")" "-" "-" "-" "(info)"
note "$POOL_ROUNDS round(s) of $N_POOL jobs with each (medians above; all 1-server rounds, then all 3-server ones),"
note "put with jobq_put while the tube was paused on every server, 2 workers; raw: bs_raw preserve on the bench's beanstalkd before each round"
note "1 server: $(echo "${rates1[*]}" | sed 's/ /, /g') j/s, raw $(echo "${raws1[*]}" | sed 's/ /, /g') j/s"
note "3 servers: $(echo "${rates3[*]}" | sed 's/ /, /g') j/s, raw $(echo "${raws3[*]}" | sed 's/ /, /g') j/s; raw on the three at once (a bs_raw each) $RAW3_RATE j/s"
note "3 servers, where the jobs went (total-jobs of the tube): $(spread_line SPREAD_THR)"
emit "8 enq-to-handler p50 ms, 1 server" "$l1_50" "-" "-" "< 1 ms" "$(verdict "$l1_50" "<" 1)"
emit "8 enq-to-handler p50 ms, 3 srvs" "$l3_50" "-" "-" "< 1 ms" "$(verdict "$l3_50" "<" 1)"
emit "8 enq-to-handler p99 ms, 1 server" "$l1_99" "-" "-" "< 3 ms" "$(verdict "$l1_99" "<" 3)"
emit "8 enq-to-handler p99 ms, 3 srvs" "$l3_99" "-" "-" "< 3 ms" "$(verdict "$l3_99" "<" 3)"
note "enqueue-to-handler (section 4's method), $N_POOL_LAT jobs after $POOL_LAT_WARM: 1 server p90 ${l1_90} ms, max ${l1_max} ms; 3 servers p90 ${l3_90} ms, max ${l3_max} ms"
note "3 servers, where the latency jobs went: $(spread_line SPREAD_LAT)"
note "connections the relay and workers opened (beanstalkd total-connections): timed throughput rounds 1 server $conns1_thr, 3 servers $conns3_thr;"
note "latency run ($((N_POOL_LAT + POOL_LAT_WARM)) jobs) 1 server $conns1_lat, 3 servers $conns3_lat"
note "on this $(nproc)-CPU box the three beanstalkd share the cores with PostgreSQL: the point is that three are not slower"
errs=$(tail -c +"$POOL_LOG_FROM" "$WORKDIR/postgres.log" | grep -cE '(ERROR|WARNING|FATAL|PANIC):' || true)
werr=$(sql -c "SELECT count(*) FROM jobq.workers WHERE last_error_at >= '$POOL_T0'")
if [ "$errs" != 0 ] || [ "$werr" != 0 ]; then
    note "errors during the section: $errs in the PostgreSQL log, $werr jobq process(es) with a last_error (below)"
    tail -c +"$POOL_LOG_FROM" "$WORKDIR/postgres.log" | grep -E '(ERROR|WARNING|FATAL|PANIC):' | head -20
    sql -c "SELECT worker, kind, last_error, last_error_at FROM jobq.workers WHERE last_error_at >= '$POOL_T0'"
fi
fi

# ---- 9. jobq_wait -------------------------------------------------------

if want 9 && [ "$(sql -c "SELECT count(*) FROM pg_proc WHERE proname = 'jobq_wait'")" = 1 ]; then

say "9. jobq_wait: $N_LAT jobs, each waited for; from the handler's last statement to jobq_wait's return"
sql <<'SQL'
CREATE TABLE bench_wait_end (i int PRIMARY KEY, at timestamptz);
CREATE TABLE bench_wait_ret (i int PRIMARY KEY, at timestamptz, state text);
CREATE FUNCTION bench_wait_h(i int) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.bench_wait_end VALUES (i, clock_timestamp()) $$;
SELECT jobq_register('bench_wait_h', 'bench_wait_h') \gset
CREATE PROCEDURE bench_wait(n int) LANGUAGE plpgsql AS $$
DECLARE id uuid; st text;
BEGIN
    FOR k IN 1 .. n LOOP
        id := jobq_put('bench_wait_h', 'bench_wait_h', jsonb_build_object('i', k));
        COMMIT;
        SELECT w.state INTO st FROM jobq_wait(id, '10 s') w;
        INSERT INTO bench_wait_ret VALUES (k, clock_timestamp(), st);
        COMMIT;
    END LOOP;
END $$;
SQL
sleep 1.5    # the workers watch the new tube
sql -c "CALL bench_wait($N_LAT)"
must "SELECT count(*) FROM bench_wait_ret WHERE state = 'done'" "$N_LAT"
read -r w50 w90 w99 wmax <<<"$(sql -F ' ' -c "
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(max(ms)::numeric, 2)
  FROM (SELECT extract(epoch FROM r.at - e.at) * 1000 AS ms
          FROM bench_wait_end e JOIN bench_wait_ret r USING (i) WHERE i > $LAT_WARM) t")"
emit "9 jobq_wait wake p50 ms" "$w50" "-" "-" "< 5 ms" "$(verdict "$w50" "<" 5)"
emit "9 jobq_wait wake p99 ms" "$w99" "-" "-" "< 5 ms" "$(verdict "$w99" "<" 5)"
note "jobq_wait: from the handler's last statement (so including the worker's commit) to jobq_wait's return; p90 ${w90} ms, max ${wmax} ms"
fi

# ---- summary ------------------------------------------------------------

say "summary ($( [ $QUICK = 1 ] && echo quick || echo full ) run, $(awk -v a="$BENCH_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s)"
echo "$CONFIG"
echo "$hdr"
printf '%s\n' "${REPORT[@]}"

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
# Verdicts are informational: exit status is 0 unless something broke.
# --quick runs the same with small N (a CI smoke run, well under 2 minutes);
# BENCH_SECTIONS="2" runs only the sections listed.

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
else
    N_PUT=100000 N_WORK=50000 N_OB=100000 N_LAT=1000 LAT_WARM=50 N_TRG=100000
    N_MEM=200000 MEM_WARM=10000 MEM_BATCH=10000 PGB_SECS=8
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
build_install
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
# the relay and both workers are up
for _ in $(seq 100); do
    [ "$(sql -c "SELECT count(*) FROM jobq.workers WHERE state <> 'starting'")" -ge 3 ] && break
    sleep 0.1
done

CONFIG="PostgreSQL $(sql -c 'SHOW server_version'), synchronous_commit=$(sql -c 'SHOW synchronous_commit'), jobq.workers=$(sql -c 'SHOW jobq.workers'), shared_buffers=$(sql -c 'SHOW shared_buffers'); $(beanstalkd -v 2>&1 | head -1) with binlog (-b); all on 127.0.0.1"
echo "$CONFIG"

# ---- reporting ----------------------------------------------------------

# BENCH_SECTIONS="2 4" runs only those sections (all by default)
want() { [[ " ${BENCH_SECTIONS:-1 2 3 4 5 6 7} " == *" $1 "* ]]; }

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

# ---- summary ------------------------------------------------------------

say "summary ($( [ $QUICK = 1 ] && echo quick || echo full ) run, $(awk -v a="$BENCH_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s)"
echo "$CONFIG"
echo "$hdr"
printf '%s\n' "${REPORT[@]}"

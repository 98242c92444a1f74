#!/usr/bin/env bash
# scripts/demo.sh: jobq end to end, from a fresh Debian 12 as root.
#
# Installs what is missing, builds and installs jobq, starts a private
# beanstalkd and a private PostgreSQL cluster with jobq preloaded (loopback
# ports of their own), registers handlers, enqueues jobs from SQL and from a
# trigger, and shows the workers running them.  Stops everything at the end
# (KEEP_RUNNING=1 leaves the servers up and prints how to reach them).

PGPORT=${PGPORT:-55431}
BSPORT=${BSPORT:-11381}
source "$(dirname "$0")/env.sh"

need_packages
build_install
ensure_user
make_workdir
start_beanstalkd
start_postgres

# each step: what it shows, then every statement echoed before its result
show() { printf '\n-- %s\n' "$*"; }
proved() { printf '   => %s\n' "$*"; }
sql() { psql_db -e -c "$1"; }
sqlv() { psql_db -At -c "$1"; }

say "jobq is running: beanstalkd on 127.0.0.1:$BSPORT, PostgreSQL on 127.0.0.1:$PGPORT (database $DBNAME)"

show "step 1: install the extension and the application's tables"
psql_db -e <<'SQL'
CREATE EXTENSION jobq;
CREATE TABLE signups (id serial PRIMARY KEY, email text NOT NULL);
CREATE TABLE emails_sent (email text, sent_by text, at timestamptz DEFAULT now());
CREATE TABLE task_log (arg1 text, arg2 text, arg3 text, ran_as text);
CREATE ROLE mailer;
GRANT INSERT ON emails_sent TO mailer;
SQL

show "step 2: the handlers: the Python original's task_one(arg1, arg2, arg3), a mailer running as role mailer, and one that always fails"
psql_db -e <<'SQL'
-- @queue.task('task_tube_one') def task_one(arg1, arg2, arg3): ...
CREATE FUNCTION task_one(arg1 text, arg2 text, arg3 text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO public.task_log VALUES (arg1, arg2, arg3, current_user)
$$;
SELECT jobq_register('task_tube_one', 'task_one');

-- gets the trigger's kwargs as one jsonb, runs as role mailer
CREATE FUNCTION send_welcome(job jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO public.emails_sent (email, sent_by) VALUES (job->'new'->>'email', current_user)
$$;
GRANT EXECUTE ON FUNCTION send_welcome(jsonb) TO mailer;
SELECT jobq_register('mail', 'send_welcome', run_as => 'mailer');

CREATE FUNCTION flaky_export(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'export service unavailable (job %)', n;
END $$;
SELECT jobq_register('exports', 'flaky_export', max_attempts => 2, backoff => '1 s');

CREATE TRIGGER signups_welcome AFTER INSERT ON signups
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('mail', 'send_welcome');
SQL
sql "SELECT tube, func_name, handler, run_as, max_attempts, backoff FROM jobq.handlers ORDER BY 1"
proved "three handlers are registered (jobq_register returns nothing; jobq.handlers is the registry)"

show "step 3: enqueue: jobq_put in a committed transaction, one in a rolled-back transaction, jobq_put_now, and a failing job"
COMMITTED=$(sqlv "BEGIN; SELECT jobq_put('task_tube_one', 'task_one', '{\"arg1\": \"a\", \"arg2\": \"b\", \"arg3\": \"c\"}'); COMMIT;")
echo "BEGIN; SELECT jobq_put('task_tube_one', 'task_one', '{\"arg1\": \"a\", \"arg2\": \"b\", \"arg3\": \"c\"}'); COMMIT;"
echo "   committed job:   $COMMITTED"
ROLLED_BACK=$(sqlv "BEGIN; SELECT jobq_put('task_tube_one', 'task_one', '{\"arg1\": \"never\", \"arg2\": \"runs\", \"arg3\": \"!\"}'); ROLLBACK;")
echo "BEGIN; SELECT jobq_put('task_tube_one', 'task_one', '{\"arg1\": \"never\", \"arg2\": \"runs\", \"arg3\": \"!\"}'); ROLLBACK;"
echo "   rolled-back job: $ROLLED_BACK"
sql "SELECT jobq_put_now('task_tube_one', 'task_one', '{\"arg1\": \"x\", \"arg2\": \"y\", \"arg3\": \"z\"}') AS beanstalkd_id"
sql "SELECT jobq_put('exports', 'flaky_export', '{\"n\": 42}') AS failing_job"

show "step 4: enqueue from a trigger: one job per inserted row"
sql "INSERT INTO signups (email) VALUES ('ada@example.org'), ('alan@example.org')"

show "step 5: the workers run them (waiting up to 15 s for 2 task_log rows, 2 emails and 1 failure)"
psql_db <<'SQL'
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN (SELECT count(*) FROM task_log) = 2
              AND (SELECT count(*) FROM emails_sent) = 2
              AND (SELECT count(*) FROM jobq.failed) = 1;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SQL
sql "SELECT * FROM task_log ORDER BY arg1"
proved "task_one ran for the committed jobq_put (a, b, c) and for jobq_put_now (x, y, z), as the registering role"
sql "SELECT email, sent_by FROM emails_sent ORDER BY email"
proved "the trigger's jobs ran as role mailer, one per inserted row"

show "step 6: the rolled-back job never ran and never reached beanstalkd"
sql "SELECT count(*) AS never_runs_rows FROM task_log WHERE arg1 = 'never'"
sql "SELECT id, id = '$COMMITTED' AS committed_job, id = '$ROLLED_BACK' AS rolled_back_job FROM jobq.done WHERE id IN ('$COMMITTED', '$ROLLED_BACK')"
sql "SELECT tube, total AS jobs_ever_put FROM jobq_tubes() WHERE tube = 'task_tube_one'"
if [ "$(sqlv "SELECT count(*) FROM task_log WHERE arg1 = 'never'")" = 0 ] &&
   [ "$(sqlv "SELECT count(*) FROM jobq.done WHERE id = '$ROLLED_BACK'")" = 0 ] &&
   [ "$(sqlv "SELECT total FROM jobq_tubes() WHERE tube = 'task_tube_one'")" = 2 ]; then
    proved "no task_log row, no completion record for uuid $ROLLED_BACK (the committed one, $COMMITTED, has one), and beanstalkd only ever received 2 jobs on task_tube_one: the committed one and the jobq_put_now one"
else
    echo "   => UNEXPECTED: the rolled-back job left a trace" >&2
    exit 1
fi

show "step 7: the failing job was retried with back-off, then buried and recorded"
sql "SELECT tube, func_name, kwargs, sqlstate, message, attempts FROM jobq.failed"
proved "flaky_export ran twice (max_attempts => 2), then went to jobq.failed with its SQLSTATE and message"

show "step 8: what beanstalkd holds now, and the workers"
sql "SELECT tube, ready, reserved, delayed, buried, total FROM jobq_tubes() WHERE tube <> 'default' ORDER BY tube"
proved "nothing is left ready or reserved; the failed job is buried (kept for inspection)"
sql "SELECT worker, kind, state, succeeded, failed, last_error FROM jobq.workers ORDER BY worker"
sql "SELECT backend_type, count(*) FROM pg_stat_activity WHERE backend_type LIKE 'jobq%' GROUP BY 1 ORDER BY 1"

if [ "${KEEP_RUNNING:-0}" = 1 ]; then
    KEEP_WORKDIR=1
    PIDS=()
    trap - EXIT
    say "left running: psql -h $WORKDIR -p $PGPORT -U postgres $DBNAME (as user $JOBQ_USER); stop with: kill $BSPID; runuser -u $JOBQ_USER -- $PGBIN/pg_ctl -D $PGDATA stop"
else
    say "done; stopping the servers"
fi

-- background workers: the Python original's example, retries, failures,
-- run_as, time limits, live registry changes, SIGTERM in the middle of a job
\set VERBOSITY terse

-- the workers and the relay are up and visible
SELECT wait_for($$SELECT count(*) = 3 FROM jobq.workers WHERE state <> 'starting'$$);
SELECT kind, count(*) FROM jobq.workers GROUP BY kind ORDER BY kind;
SELECT backend_type, count(*) FROM pg_stat_activity
 WHERE backend_type LIKE 'jobq%' GROUP BY 1 ORDER BY 1;

-- the Python original: @queue.task('task_tube_one') def task_one(arg1, arg2, arg3)
CREATE FUNCTION task_one(arg1 text, arg2 text, arg3 text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO public.results (func, args, who)
    VALUES ('task_one', jsonb_build_object('arg1', arg1, 'arg2', arg2, 'arg3', arg3), current_user)
$$;
SELECT jobq_register('task_tube_one', 'task_one');
SELECT tube, func_name, handler, run_as, max_attempts, backoff, timeout FROM jobq.handlers
 WHERE tube = 'task_tube_one';
SELECT count(*) AS done_before FROM jobq.done \gset
SELECT jobq_put_now('task_tube_one', 'task_one', '{"arg1": "a", "arg2": "b", "arg3": "c"}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'task_one'$$);
SELECT args, who FROM results WHERE func = 'task_one';
-- the job is gone from beanstalkd, and its id is recorded as done
SELECT ready, reserved, buried FROM jobq_tubes() WHERE tube = 'task_tube_one';
SELECT count(*) - :done_before AS done FROM jobq.done;

-- a handler that fails until its second attempt
CREATE SEQUENCE flaky_calls;
CREATE FUNCTION flaky(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('public.flaky_calls') < 2 THEN
        RAISE EXCEPTION 'not yet (call %)', currval('public.flaky_calls');
    END IF;
    INSERT INTO public.results (func, args) VALUES ('flaky', jsonb_build_object('n', n));
END $$;
SELECT jobq_register('t_retry', 'flaky', max_attempts => 3, backoff => '1 s');
SELECT jobq_put_now('t_retry', 'flaky', '{"n": 7}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'flaky'$$);
SELECT args FROM results WHERE func = 'flaky';
SELECT last_value AS calls FROM flaky_calls;
SELECT count(*) AS failures FROM jobq.failed WHERE tube = 't_retry';

-- a handler that always fails: retried with back-off (1 s, then 2 s),
-- then buried and recorded after max_attempts
CREATE FUNCTION always_fails(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'broken handler' USING ERRCODE = '22012';
END $$;
SELECT jobq_register('t_fail', 'always_fails', max_attempts => 3, backoff => '1 s');
SELECT clock_timestamp() AS put_at \gset
SELECT jobq_put_now('t_fail', 'always_fails', '{"n": 1}') AS failing \gset
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.failed WHERE tube = 't_fail'$$);
SELECT job_id IS NOT NULL AS has_uuid, bs_id = :failing AS same_job, tube, func_name, kwargs,
       sqlstate, message, attempts, source, failed_at - :'put_at' >= '3 s' AS backed_off
  FROM jobq.failed WHERE tube = 't_fail';
SELECT state, reserves, releases, buries FROM jobq_job(:failing);

-- put it back: the row goes, the buried original goes, the job runs again
SELECT jobq_register('t_fail', 'always_fails', max_attempts => 1);
SELECT jobq_retry_failed(id) FROM jobq.failed WHERE tube = 't_fail';
SELECT jobq_job(:failing) IS NULL AS original_deleted;
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.failed WHERE tube = 't_fail'$$);
SELECT attempts, message FROM jobq.failed WHERE tube = 't_fail';
SELECT jobq_retry_failed('t_fail') AS retried;
SELECT jobq_retry_failed(-1) AS no_such_row;

-- a job for a func that has no handler: buried at once, nothing run
SELECT jobq_put_now('task_tube_one', 'no_such_func', '{}') AS unknown \gset
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.failed WHERE func_name = 'no_such_func'$$);
SELECT sqlstate, message, attempts FROM jobq.failed WHERE func_name = 'no_such_func';
SELECT state FROM jobq_job(:unknown);

-- run_as: the handler runs as the registered role, never as the superuser
CREATE ROLE jobq_runner;
CREATE FUNCTION whoami(tag text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args, who)
    VALUES ('whoami', jsonb_build_object('tag', tag), current_user)
$$;
SELECT jobq_register('t_role', 'whoami', run_as => 'jobq_runner');
SELECT jobq_put_now('t_role', 'whoami', '{"tag": "x"}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'whoami'$$);
SELECT who FROM results WHERE func = 'whoami';

-- a registration for a role one cannot act as is refused
CREATE ROLE jobq_other;
GRANT EXECUTE ON FUNCTION jobq_register(text, text, regprocedure, regrole, integer, interval, interval, boolean) TO jobq_other;
SET ROLE jobq_other;
SELECT jobq_register('t_role', 'whoami', run_as => 'jobq_runner');
SELECT jobq_register('t_role2', 'whoami', run_as => 'postgres');
RESET ROLE;

-- time limit: a handler that runs past its timeout is cancelled and fails
CREATE FUNCTION slow(secs float) RETURNS void LANGUAGE sql AS $$ SELECT pg_sleep(secs) $$;
SELECT jobq_register('t_slow', 'slow', max_attempts => 1, timeout => '300 ms');
SELECT jobq_put_now('t_slow', 'slow', '{"secs": 5}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.failed WHERE tube = 't_slow'$$);
SELECT sqlstate, message FROM jobq.failed WHERE tube = 't_slow';

-- registry changes are picked up live: a new tube, then removal
CREATE FUNCTION late(x int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args) VALUES ('late', jsonb_build_object('x', x))
$$;
SELECT jobq_put_now('t_late', 'late', '{"x": 0}') AS early \gset
-- nobody watches t_late: the job waits (beanstalkd counts its age in seconds)
SELECT wait_for($$SELECT age >= 2 FROM jobq_job($$ || :early || ')');
SELECT j.state, t.watching FROM jobq_job(:early) j, jobq_tubes() t WHERE t.tube = 't_late';
SELECT count(*) AS not_run_yet FROM results WHERE func = 'late';
SELECT jobq_register('t_late', 'late');
SELECT jobq_put_now('t_late', 'late', '{"x": 1}') > 0 AS put_after_register;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'late'$$);
SELECT args FROM results WHERE func = 'late';
-- the job put before the registration is not run: it was checked against none
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.failed WHERE tube = 't_late'$$);
SELECT sqlstate, kwargs, message LIKE 'job was put before its handler was registered%' AS why
  FROM jobq.failed WHERE tube = 't_late';
SELECT jobq_unregister('t_late', 'late');
SELECT jobq_unregister('t_late', 'late') AS again;
-- the workers stop watching the tube within a second
SELECT wait_for($$SELECT watching = 0 FROM jobq_tubes() WHERE tube = 't_late'$$);
SELECT jobq_put_now('t_late', 'late', '{"x": 2}') AS after_unregister \gset
SELECT j.state, t.watching FROM jobq_job(:after_unregister) j, jobq_tubes() t WHERE t.tube = 't_late';
SELECT count(*) AS still_one FROM results WHERE func = 'late';

-- SIGTERM while a handler runs: the transaction aborts, the job goes back to
-- the queue, runs again on a worker, and its effect is committed once
CREATE FUNCTION long_job(k int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.results (func, args) VALUES ('long_job', jsonb_build_object('k', k));
    PERFORM pg_sleep(2);
END $$;
SELECT jobq_register('t_long', 'long_job');
SELECT jobq_put_now('t_long', 'long_job', '{"k": 1}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.workers WHERE func_name = 'long_job'$$);
SELECT pid AS victim FROM jobq.workers WHERE func_name = 'long_job' \gset
SELECT pg_terminate_backend(:victim);
SELECT wait_for($$SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $$ || :victim);
SELECT count(*) AS nothing_committed_by_victim FROM results WHERE func = 'long_job';
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'long_job'$$);
-- done with: deleted from beanstalkd, so no second run can come
SELECT wait_for($$SELECT ready + reserved = 0 FROM jobq_tubes() WHERE tube = 't_long'$$);
SELECT count(*) AS once FROM results WHERE func = 'long_job';
SELECT wait_for($$SELECT count(*) = 3 FROM jobq.workers$$);

-- a failed job keeps its own priority and ttr: released with them, recorded
-- with them, and put back with them by jobq_retry_failed
CREATE FUNCTION fails_once_more(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'not yet (%)', n;
END $$;
SELECT jobq_register('t_prio', 'fails_once_more', max_attempts => 2, backoff => '1 h');
SELECT jobq_put_now('t_prio', 'fails_once_more', '{"n": 7}', priority => 77, ttr => '13 s') AS prio_job \gset
SELECT wait_for($$SELECT state = 'delayed' FROM jobq_job($$ || :prio_job || ')');
SELECT state, priority, ttr FROM jobq_job(:prio_job);
SELECT jobq_kick_job(:prio_job);
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.failed WHERE tube = 't_prio'$$);
SELECT attempts, priority, ttr FROM jobq.failed WHERE tube = 't_prio';
BEGIN;
SELECT jobq_retry_failed('t_prio'::text);
SELECT priority, delay, ttr FROM jobq.outbox WHERE tube = 't_prio';
ROLLBACK;
SELECT jobq_unregister('t_prio', 'fails_once_more');

-- the view counts what each worker did
SELECT sum(succeeded) >= 5 AS counted, sum(failed) >= 3 AS failures_counted
  FROM jobq.workers WHERE kind = 'worker';

SELECT jobq_unregister('t_role', 'whoami');
DROP OWNED BY jobq_runner, jobq_other;
DROP ROLE jobq_runner, jobq_other;

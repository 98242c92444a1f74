-- lifecycle (1.5): jobq_status, jobq_wait, jobq_cancel, unique keys and
-- kept results, on the paths valgrind runs too (JOBQ_VALGRIND=1)
\set VERBOSITY terse

-- where the relay puts each job is recorded only with jobq.track_jobs on
ALTER SYSTEM SET jobq.track_jobs = on;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);

CREATE FUNCTION lc_double(n int) RETURNS jsonb LANGUAGE sql AS $$
    INSERT INTO public.results (func, args) VALUES ('lc_double', jsonb_build_object('n', n));
    SELECT jsonb_build_object('twice', n * 2)
$$;
SELECT jobq_register('t_lc', 'lc_double', max_attempts => 1, keep_result => true);
CREATE FUNCTION lc_fail(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'lc_fail %', n; END $$;
SELECT jobq_register('t_lc', 'lc_fail', max_attempts => 1);

-- done, with its result; failed, with its error
SELECT jobq_put('t_lc', 'lc_double', '{"n": 21}') AS d \gset
SELECT state, tube, func_name, result, attempts, finished_at IS NOT NULL AS finished
  FROM jobq_wait(:'d', '30 s');
SELECT jobq_put('t_lc', 'lc_fail', '{"n": 5}') AS f \gset
SELECT state, sqlstate, message, kwargs FROM jobq_wait(:'f', '30 s');
SELECT state, result FROM jobq_status('00000000-0000-4000-8000-000000000000'::uuid);

-- a job pending in its own transaction, then queued (delayed) once committed
BEGIN;
SELECT jobq_put('t_lc', 'lc_double', '{"n": 1}', delay => '1 hour', unique_key => 'lc-k') AS q \gset
SELECT state, kwargs FROM jobq_status(:'q'::uuid);
SELECT jobq_put('t_lc', 'lc_double', '{"n": 2}', unique_key => 'lc-k') = :'q' AS same_job;
COMMIT;
SELECT wait_for($$SELECT state = 'queued' FROM jobq_status('$$ || :'q' || $$'::uuid)$$);
SELECT state, bs_state, server IS NOT NULL AS has_server FROM jobq_status(:'q'::uuid);
SELECT id = :'q' AS id, state FROM jobq_status(ARRAY[:'q', :'d', :'f', NULL]::uuid[]) ORDER BY state;

-- cancelled while queued: the key is free, a second cancel changes nothing
SELECT jobq_cancel(:'q');
SELECT state, cancelled_by = current_user AS by_me FROM jobq_status(:'q'::uuid);
SET client_min_messages = warning;   -- the notices name the uuid
SELECT jobq_cancel(:'q');
SELECT jobq_cancel(:'d');
RESET client_min_messages;
SELECT jobq_put('t_lc', 'lc_double', '{"n": 3}', delay => '1 hour', unique_key => 'lc-k') AS q3 \gset
SELECT :'q3' <> :'q' AS new_job;
SELECT job_id = :'q3' FROM jobq.unique_keys WHERE key = 'lc-k';
SELECT jobq_cancel(:'q3') IN ('pending', 'queued') AS cancelled;

-- a running job, cancelled: its handler is interrupted, it is not retried
CREATE TABLE lc_gate (open bool);
GRANT SELECT ON lc_gate TO PUBLIC;
CREATE FUNCTION lc_held(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WHILE NOT EXISTS (SELECT 1 FROM public.lc_gate) LOOP PERFORM pg_sleep(0.02); END LOOP;
    INSERT INTO public.results (func, args) VALUES ('lc_held', jsonb_build_object('n', n));
END $$;
SELECT jobq_register('t_lc', 'lc_held');
SELECT jobq_put('t_lc', 'lc_held', '{"n": 1}', unique_key => 'lc-run') AS r \gset
SELECT wait_for($$SELECT state = 'running' FROM jobq_status('$$ || :'r' || $$'::uuid)$$);
SELECT count(*) FROM jobq.workers WHERE job_uuid = :'r';
SELECT jobq_cancel(:'r');
SELECT state, cancelled_by = current_user AS by_me FROM jobq_status(:'r'::uuid);
INSERT INTO lc_gate VALUES (true);
SELECT pg_sleep(1);
SELECT count(*) AS ran FROM results WHERE func = 'lc_held';
SELECT count(*) AS key_free FROM jobq.unique_keys WHERE key = 'lc-run';

-- bad input
SELECT jobq_put('t_lc', 'lc_double', unique_key => '');
SELECT jobq_put('t_lc', 'lc_double', unique_for => '1 h');
SELECT jobq_put('t_lc', 'lc_double', unique_key => 'x', unique_for => '-1 s');
SELECT jobq_wait(:'d', '-1 s');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT jobq_wait(:'d', '1 s');
ROLLBACK;
SELECT jobq_status(NULL::uuid[]);

ALTER SYSTEM RESET jobq.track_jobs;
SELECT pg_reload_conf();

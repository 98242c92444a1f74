-- security: producer grants, the ownership rule, signed bodies, what a
-- handler leaves behind (the attacks themselves are in t/006_security.pl)
\set VERBOSITY terse

CREATE FUNCTION sec_sink(kw jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args, who) VALUES ('sec_sink', kw, current_user)
$$;
CREATE ROLE jobq_sec_owner;
CREATE ROLE jobq_sec_app;
GRANT INSERT ON results TO jobq_sec_owner;
GRANT USAGE ON SEQUENCE results_id_seq TO jobq_sec_owner;
GRANT EXECUTE ON FUNCTION sec_sink(jsonb) TO jobq_sec_owner;
GRANT EXECUTE ON FUNCTION jobq_put(text, text, jsonb, bigint, interval, interval, text, interval),
                          jobq_put_now(text, text, jsonb, bigint, interval, interval)
   TO jobq_sec_app;
SELECT jobq_register('t_sec', 'sec_sink', run_as => 'jobq_sec_owner');

-- who may enqueue: members of run_as, and roles granted by one of them
SET ROLE jobq_sec_app;
SELECT jobq_put('t_sec', 'sec_sink', '{"n": 1}');
SELECT jobq_put_now('t_sec', 'sec_sink', '{"n": 1}');
SELECT jobq_put('t_sec_free', 'whatever', '{}') IS NOT NULL AS unregistered_pair_is_free;
RESET ROLE;
SELECT jobq_grant('t_sec', 'sec_sink', 'jobq_sec_app');
SELECT jobq_grant('t_sec', 'sec_sink', 'jobq_sec_app');  -- twice is once
SELECT producers FROM jobq.handlers WHERE tube = 't_sec';
SET ROLE jobq_sec_app;
SELECT jobq_put_now('t_sec', 'sec_sink', '{"n": 2}') > 0 AS granted_put;
RESET ROLE;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'sec_sink'$$);
SELECT args, who FROM results WHERE func = 'sec_sink';
SELECT jobq_revoke('t_sec', 'sec_sink', 'jobq_sec_app') AS revoked,
       jobq_revoke('t_sec', 'sec_sink', 'jobq_sec_app') AS again;
SET ROLE jobq_sec_app;
SELECT jobq_put('t_sec', 'sec_sink', '{"n": 3}');
RESET ROLE;
SELECT jobq_grant('t_sec', 'no_such_func', 'jobq_sec_app');

-- the ownership rule: the function's owner must be a member of run_as
CREATE FUNCTION sec_owned(kw jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
ALTER FUNCTION sec_owned(jsonb) OWNER TO jobq_sec_app;
SELECT jobq_register('t_sec', 'sec_owned');
SELECT jobq_register('t_sec', 'sec_owned', run_as => 'jobq_sec_app') IS NULL AS registered_as_owner;
SELECT jobq_unregister('t_sec', 'sec_owned');

-- names the worker could not read are refused at enqueue; numbers of any
-- size are carried exactly (t/012_security_review.pl runs such jobs)
SELECT jobq_put('t_sec', E'sec\nsink');
SELECT jobq_put('t_sec', 'sec_sink', '{"n": 1e400}') IS NOT NULL AS huge_number_ok;
SELECT jobq_put('t_sec', 'sec_sink', '{"n": 123456789012345678901234567890}') IS NOT NULL AS long_integer_ok;

-- what a handler leaves in the worker's session does not reach the next job
CREATE FUNCTION sec_litter(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('search_path', 'nowhere', false);
    PERFORM set_config('default_transaction_read_only', 'on', false);
    PERFORM set_config('jobq_test.litter', 'left behind', false);
    PERFORM pg_advisory_lock(4242);
    CREATE TEMP TABLE litter (x int);
    PREPARE litter_stmt AS SELECT 1;
    INSERT INTO public.results (func, args) VALUES ('sec_litter', kw);
END $$;
CREATE FUNCTION sec_look(kw jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args) VALUES ('sec_look', jsonb_build_object(
        'search_path', current_setting('search_path'),
        'read_only', current_setting('transaction_read_only'),
        -- '' in a session that saw the setting, NULL in one that never did
        'litter', coalesce(current_setting('jobq_test.litter', true), ''),
        'temp_tables', (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
        'prepared', (SELECT count(*) FROM pg_prepared_statements),
        'advisory_locks', (SELECT count(*) FROM pg_locks
                            WHERE locktype = 'advisory' AND pid = pg_backend_pid())))
$$;
SELECT jobq_register('t_sec_litter', 'sec_litter');
SELECT jobq_register('t_sec_litter', 'sec_look');
-- the workers litter (both, or one that took the batch), then look
SELECT jobq_put_now('t_sec_litter', 'sec_litter', jsonb_build_object('i', i)) > 0 AS put
  FROM generate_series(1, 4) i;
SELECT wait_for($$SELECT count(*) = 4 FROM results WHERE func = 'sec_litter'$$);
SELECT jobq_put_now('t_sec_litter', 'sec_look', '{}') > 0 AS put FROM generate_series(1, 4);
SELECT wait_for($$SELECT count(*) = 4 FROM results WHERE func = 'sec_look'$$);
SELECT DISTINCT args FROM results WHERE func = 'sec_look';

-- signed bodies: jobq signs what it sends; workers may require it
ALTER SYSTEM SET jobq.signing_key = 'regression key';
ALTER SYSTEM SET jobq.require_signature = on;
SELECT pg_reload_conf();
-- a session applies a reload between statements, once the signal came
SELECT pg_sleep(0.5);
SHOW jobq.require_signature;
SHOW jobq.signing_key;
SELECT jobq_put_now('t_sec', 'sec_sink', '{"n": "signed"}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE args->>'n' = 'signed'$$);
\! printf '{"func_name": "sec_sink", "tube": "t_sec", "kwargs": {"n": "unsigned"}}' > results/sec_unsigned.bin
\! bash test/raw_put.sh t_sec results/sec_unsigned.bin | cut -c1-8
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.failed WHERE raw_body LIKE '%unsigned%'$$);
SELECT sqlstate, message FROM jobq.failed WHERE raw_body LIKE '%unsigned%';
SELECT count(*) AS unsigned_never_ran FROM results WHERE args->>'n' = 'unsigned';
ALTER SYSTEM RESET jobq.signing_key;
ALTER SYSTEM RESET jobq.require_signature;
SELECT pg_reload_conf();

SELECT jobq_unregister('t_sec', 'sec_sink');
SELECT jobq_unregister('t_sec_litter', 'sec_litter');
SELECT jobq_unregister('t_sec_litter', 'sec_look');
REVOKE ALL ON results FROM jobq_sec_owner;
REVOKE ALL ON SEQUENCE results_id_seq FROM jobq_sec_owner;
REVOKE ALL ON FUNCTION sec_sink(jsonb) FROM jobq_sec_owner;
REVOKE ALL ON FUNCTION jobq_put(text, text, jsonb, bigint, interval, interval, text, interval),
                       jobq_put_now(text, text, jsonb, bigint, interval, interval)
  FROM jobq_sec_app;
DROP FUNCTION sec_owned(jsonb);
DROP ROLE jobq_sec_owner, jobq_sec_app;

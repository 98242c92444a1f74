-- dispatch: how kwargs reach a handler, and what happens when they cannot
\set VERBOSITY terse

-- a single jsonb parameter receives the whole kwargs object
CREATE FUNCTION take_all(kw jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args) VALUES ('take_all', kw)
$$;
SELECT jobq_register('t_disp', 'take_all');
SELECT jobq_put_now('t_disp', 'take_all', '{"a": [1, 2], "b": {"c": 1.10}, "d": null}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'take_all'$$);
SELECT args FROM results WHERE func = 'take_all';

-- named parameters, coerced to their types, defaults for absent keys
CREATE FUNCTION typed(i int, n numeric, t text, b boolean, ts timestamptz,
                      j jsonb DEFAULT '{"default": true}', d date DEFAULT '2000-01-01')
RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args)
    VALUES ('typed', jsonb_build_object('i', i, 'n', n, 't', t, 'b', b,
                                        'ts', ts AT TIME ZONE 'UTC', 'j', j, 'd', d))
$$;
SELECT jobq_register('t_disp', 'typed', max_attempts => 1);
SELECT jobq_put_now('t_disp', 'typed',
    '{"i": "42", "n": 12.345678901234567890, "t": "héllo", "b": true, "ts": "2024-05-06 07:08:09+00"}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'typed'$$);
SELECT args FROM results WHERE func = 'typed';
SELECT jobq_put_now('t_disp', 'typed',
    '{"i": 1, "n": 0, "t": null, "b": false, "ts": "2024-01-01", "j": [1], "d": "2024-02-29"}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 2 FROM results WHERE func = 'typed'$$);
SELECT args FROM results WHERE func = 'typed' ORDER BY id DESC LIMIT 1;

-- unknown key, missing key, value of the wrong type: each recorded with the job
SELECT jobq_put_now('t_disp', 'typed', '{"i": 1, "n": 0, "t": "", "b": true, "ts": "2024-01-01", "zzz": 1}') > 0;
SELECT jobq_put_now('t_disp', 'typed', '{"i": 1}') > 0;
SELECT jobq_put_now('t_disp', 'typed', '{"i": "x", "n": 0, "t": "", "b": true, "ts": "2024-01-01"}') > 0;
SELECT wait_for($$SELECT count(*) = 3 FROM jobq.failed WHERE func_name = 'typed'$$);
SELECT sqlstate, message, kwargs FROM jobq.failed WHERE func_name = 'typed' ORDER BY sqlstate, message;
SELECT count(*) = 2 AS no_more_rows FROM results WHERE func = 'typed';

-- registration errors
SELECT jobq_register('t_disp', 'no_such_function');
CREATE FUNCTION twice(a int) RETURNS void LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION twice(a text) RETURNS void LANGUAGE sql AS 'SELECT 1';
SELECT jobq_register('t_disp', 'twice');
SELECT jobq_register('t_disp', 'twice', 'twice(text)'::regprocedure) AS explicit_ok;
SELECT jobq_register('bad tube', 'twice', 'twice(text)'::regprocedure);
SELECT jobq_register('t_disp', 'take_all', max_attempts => 0);
SELECT jobq_register('t_disp', 'take_all', backoff => '-1 s');
SELECT jobq_register('t_disp', 'take_all', timeout => '0 s');
SELECT jobq_register_c('t_disp', 'x', 'jobq_example_handler', 'no_such_symbol');
SELECT jobq_unregister('t_disp', 'twice');

-- C handlers, both ways: LANGUAGE C + regprocedure, and library/symbol
CREATE FUNCTION c_record(jsonb) RETURNS void
    AS 'jobq_example_handler', 'jobq_example_record' LANGUAGE C;
SELECT jobq_register('t_c', 'c_sql', 'c_record(jsonb)'::regprocedure);
SELECT jobq_register_c('t_c', 'c_sym', 'jobq_example_handler', 'jobq_example_record');
SELECT func_name, handler, library, symbol FROM jobq.handlers WHERE tube = 't_c' ORDER BY 1;
SELECT jobq_put_now('t_c', 'c_sql', '{"via": "regprocedure"}') > 0 AS put;
SELECT jobq_put_now('t_c', 'c_sym', '{"via": "symbol"}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 2 FROM results WHERE func = 'c_handler'$$);
SELECT args, who FROM results WHERE func = 'c_handler' ORDER BY args->>'via';

-- bodies from a raw socket that are not jobq jobs: buried and recorded at
-- once, no handler called
SELECT jobq_register('t_raw', 'take_all');
SELECT coalesce(max(id), 0) AS failed_before FROM jobq.failed \gset
\! printf 'not json at all' > results/raw1.bin
\! printf '{"func_name": 1, "tube": "t_raw"}' > results/raw2.bin
\! printf '{"func_name": "take_all", "func_name": "x", "tube": "t_raw", "kwargs": {}}' > results/raw3.bin
\! printf '{"func_name": "take_all", "tube": "t_raw", "kwargs": {"s": "\377\376"}}' > results/raw4.bin
\! printf '[1, 2, 3]' > results/raw5.bin
\! printf '{"func_name": "take_all", "tube": "t_raw", "kwargs": [1]}' > results/raw6.bin
\! printf '{"func_name": "take_all", "tube": "t_raw", "kwargs": {}, "id": "not-a-uuid"}' > results/raw7.bin
\! for f in raw1 raw2 raw3 raw4 raw5 raw6 raw7; do bash test/raw_put.sh t_raw results/$f.bin | cut -c1-8; done
SELECT wait_for($$SELECT count(*) = 7 FROM jobq.failed
                   WHERE raw_body IS NOT NULL AND id > $$ || :failed_before);
SELECT sqlstate, message, raw_body FROM jobq.failed
 WHERE raw_body IS NOT NULL AND id > :failed_before ORDER BY bs_id;
SELECT count(*) AS handler_never_called FROM results WHERE func = 'take_all' AND args ? 's';
SELECT buried FROM jobq_tubes() WHERE tube = 't_raw';
-- a foreign producer's valid job without an id runs (no deduplication)
\! printf '{"func_name": "take_all", "tube": "t_raw", "kwargs": {"foreign": true}, "extra": 1}' > results/raw8.bin
\! bash test/raw_put.sh t_raw results/raw8.bin | cut -c1-8
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE args ? 'foreign'$$);
-- a set-returning handler: its result columns are not arguments, its defaults fill in
CREATE FUNCTION tabled(a int DEFAULT 1) RETURNS TABLE (x int) LANGUAGE sql AS $$
    INSERT INTO public.results (func, args) VALUES ('tabled', jsonb_build_object('a', a)) RETURNING 1
$$;
SELECT jobq_register('t_disp', 'tabled', max_attempts => 1);
SELECT jobq_put_now('t_disp', 'tabled', '{}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'tabled'$$);
SELECT args FROM results WHERE func = 'tabled';

-- a deferred constraint that fails at commit fails the job, not the worker
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
GRANT ALL ON parent, child TO PUBLIC;
CREATE FUNCTION add_child(p int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.child VALUES (p)
$$;
SELECT jobq_register('t_deferred', 'add_child', max_attempts => 1);
SELECT jobq_put_now('t_deferred', 'add_child', '{"p": 1}') > 0 AS put;
SELECT wait_for($$SELECT count(*) = 1 FROM jobq.failed WHERE tube = 't_deferred'$$);
SELECT sqlstate, message FROM jobq.failed WHERE tube = 't_deferred';
SELECT count(*) AS no_orphans FROM child;

-- and the workers are all still there
SELECT count(*) AS workers FROM jobq.workers WHERE kind = 'worker';

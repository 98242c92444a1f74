-- jobq_put_now: sending at once, and every check made before any I/O
\set VERBOSITY default
-- the beanstalkd of this server is on BSPORT; BSPORT + 1 accepts and never answers
\getenv bsport BSPORT
SELECT '127.0.0.1:' || (:'bsport'::int + 1) AS silent_server \gset
-- errors that name the server, with its port masked
CREATE FUNCTION pg_temp.error_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '127\.0\.0\.1:[0-9]+', '127.0.0.1:PORT', 'g');
END $$;

-- a job goes in and comes back with the wire format of the Python original
SELECT jobq_put_now('t_put', 'task_one', '{"arg1": "a", "arg2": 2.50, "n": [1, {"x": null}]}') > 0 AS inserted;
SELECT body - 'id' - 'db' AS body, (body->>'id')::uuid IS NOT NULL AS has_uuid,
       body->>'db' = current_database() AS names_its_database,
       convert_from(raw, 'UTF8') ~ ('^\{"func_name":"task_one","tube":"t_put","kwargs":\{"n":\[1,\{"x":null\}\],"arg1":"a","arg2":2.50\},"id":"[0-9a-f-]{36}","db":"'
                                    || current_database() || '"\}$') AS compact
  FROM jobq_peek_ready('t_put');

-- priority, delay and ttr reach beanstalkd
SELECT id AS delayed_id FROM (SELECT jobq_put_now('t_put_opts', 'f', '{}', 5, '1 hour', '90 s') AS id) s \gset
SELECT state, priority, delay, ttr FROM jobq_job(:delayed_id);
SELECT jobq_put_now('t_put_opts', 'f', '{}', NULL, '1.2 s') > 0 AS rounded_up;
SELECT delay FROM jobq_job((SELECT id FROM jobq_peek_delayed('t_put_opts') ORDER BY 1 LIMIT 1));
SET jobq.default_ttr = '7s';
SELECT ttr FROM jobq_job(jobq_put_now('t_put_opts2', 'f'));
RESET jobq.default_ttr;

-- non-UTF-8-safe and odd characters are escaped properly
SELECT jobq_put_now('t_put_esc', 'f', jsonb_build_object('s', E'quote" back\\ nl\n é ☃')) > 0 AS ok;
SELECT body->'kwargs'->>'s' = E'quote" back\\ nl\n é ☃' AS same FROM jobq_peek_ready('t_put_esc');

-- invalid tube names
SELECT jobq_put_now('', 'f');
SELECT jobq_put_now('-x', 'f');
SELECT jobq_put_now('a b', 'f');
SELECT jobq_put_now(repeat('a', 201), 'f');
SELECT jobq_put_now(repeat('a', 200), 'f') > 0 AS max_len_ok;
SELECT jobq_put_now('A-z0+9/;.$_()', 'f') > 0 AS all_chars_ok;
SELECT jobq_put_now(NULL, 'f');

-- invalid func_name and kwargs
SELECT jobq_put_now('t_bad', '');
SELECT jobq_put_now('t_bad', repeat('f', 201));
SELECT jobq_put_now('t_bad', NULL);
SELECT jobq_put_now('t_bad', 'f', '[1,2]');
SELECT jobq_put_now('t_bad', 'f', '"s"');
SELECT jobq_put_now('t_bad', 'f', NULL);

-- priority, delay, ttr ranges
SELECT jobq_put_now('t_bad', 'f', '{}', -1);
SELECT jobq_put_now('t_bad', 'f', '{}', 4294967296);
SELECT jobq_put_now('t_bad', 'f', '{}', 4294967295) > 0 AS max_priority_ok;
SELECT jobq_put_now('t_bad', 'f', '{}', 0, '-1 s');
SELECT jobq_put_now('t_bad', 'f', '{}', 0, '0', '0 s');
SELECT jobq_put_now('t_bad', 'f', '{}', 0, '0', '-5 s');
SELECT jobq_put_now('t_bad', 'f', '{}', 0, '200 years');

-- body over the server's max-job-size (65535 by default)
-- (the body's size depends on the database's name, which it carries)
SELECT regexp_replace(pg_temp.error_of($$SELECT jobq_put_now('t_bad', 'f', jsonb_build_object('x', repeat('x', 70000)))$$),
                      'of \d+ bytes exceeds', 'of N bytes exceeds') AS error_of;
SELECT jobq_put_now('t_bad', 'f', jsonb_build_object('x', repeat('x', 60000))) > 0 AS under_limit_ok;

-- the server is unreachable: class 08, the address, a hint
SET jobq.servers = '127.0.0.1:1';
SELECT jobq_put_now('t_bad', 'f');
-- a server that accepts and never answers: the reply times out
SET jobq.servers = :'silent_server';
SET jobq.io_timeout = '300ms';
SELECT pg_temp.error_of($$SELECT jobq_put_now('t_bad', 'f')$$);
RESET jobq.io_timeout;
RESET jobq.servers;
-- and the connection is usable again right after
SELECT jobq_put_now('t_put_after', 'f') > 0 AS back;

-- settings that are not a list of host:port
SET jobq.servers = 'a:1,,b:2';
SET jobq.servers = 'a:1, b:2, a:1';
SET jobq.servers = 'a:1,nohost';
SET jobq.servers = 'nohost';
SET jobq.servers = 'h:99999';
SET jobq.connect_timeout = 0;

-- a pool: a job whose first choice is down goes to the next server that
-- answers, without an error; with every server down the error says so
SELECT format('127.0.0.1:1, %s, 127.0.0.1:2', current_setting('jobq.servers')) AS pool_servers \gset
SET jobq.servers = :'pool_servers';
SELECT count(*) AS put_in_pool, count(DISTINCT server) AS servers_used,
       bool_and(server = '127.0.0.1:' || :'bsport') AS all_on_the_live_one
  FROM generate_series(1, 20) g, LATERAL jobq_put_now_at('t_pool', 'f', jsonb_build_object('n', g));
-- job ids are per server: with several, the id alone names no job
SELECT pg_temp.error_of($$SELECT jobq_job(1)$$);
SELECT pg_temp.error_of($$SELECT jobq_job(1, '127.0.0.1:3')$$);
SELECT tube, ready FROM jobq_tubes() WHERE tube = 't_pool';
SET jobq.servers = '127.0.0.1:1, 127.0.0.1:2';
SELECT regexp_replace(pg_temp.error_of($$SELECT jobq_put_now('t_bad', 'f')$$), 'was .*', 'was ...') AS all_down;
RESET jobq.servers;

-- query cancel reaches a wait on beanstalkd: statement_timeout ends it
SET jobq.servers = :'silent_server';
SET statement_timeout = '200ms';
SELECT jobq_put_now('t_bad', 'f');
RESET statement_timeout;
RESET jobq.servers;
SELECT jobq_put_now('t_put_after', 'f') > 0 AS back_again;

-- the SQLSTATE of each kind of bad input
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
SELECT pg_temp.sqlstate_of(q) AS sqlstate, replace(q, :'silent_server', 'SILENT') AS q FROM (VALUES
    ($$SELECT jobq_put_now('', 'f')$$),
    ($$SELECT jobq_put_now(NULL, 'f')$$),
    ($$SELECT jobq_put_now('t', '')$$),
    ($$SELECT jobq_put_now('t', 'f', '[]')$$),
    ($$SELECT jobq_put_now('t', 'f', '{}', -1)$$),
    ($$SELECT jobq_put_now('t', 'f', '{}', 0, '-1 s')$$),
    ($$SELECT jobq_put_now('t', 'f', '{}', 0, '0', '0 s')$$),
    ($$SELECT jobq_put_now('t', 'f', jsonb_build_object('x', repeat('x', 70000)))$$),
    ($$SET jobq.servers = '127.0.0.1:1'; SELECT jobq_put_now('t', 'f')$$),
    (format($$SET jobq.servers = %L; SET jobq.io_timeout = 100; SELECT jobq_put_now('t', 'f')$$, :'silent_server'))
) v(q);
RESET jobq.servers;
RESET jobq.io_timeout;

-- only superusers redirect traffic
CREATE ROLE jobq_plain;
SET ROLE jobq_plain;
SET jobq.servers = '10.0.0.1:11300';
SELECT jobq_put_now('t_put', 'f');
RESET ROLE;
GRANT EXECUTE ON FUNCTION jobq_put_now(text, text, jsonb, bigint, interval, interval) TO jobq_plain;
SET ROLE jobq_plain;
SELECT jobq_put_now('t_put_granted', 'f') > 0 AS granted;
RESET ROLE;
DROP OWNED BY jobq_plain;
DROP ROLE jobq_plain;

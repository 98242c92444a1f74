-- a pool of servers (README, "Scaling out"), one of which refuses every
-- connection: jobq_put's jobs, placed by their uuid, go to the live one
-- when their first choice is the dead one; the workers reserve from the
-- live one; the admin functions leave the dead one out with a WARNING
\set VERBOSITY terse

SELECT current_setting('jobq.servers') AS live_server \gset
ALTER SYSTEM SET jobq.servers = '127.0.0.1:1, 127.0.0.1:2';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
ALTER SYSTEM SET jobq.servers = :'live_server';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SELECT format('127.0.0.1:1, %s', :'live_server') AS pool_servers \gset
ALTER SYSTEM SET jobq.servers = :'pool_servers';
SELECT pg_reload_conf();
-- the relay and the workers have it within a second
SELECT pg_sleep(1.5);
SET jobq.servers = :'pool_servers';

CREATE TABLE pool_effects (k int);
CREATE FUNCTION pool_h(kw jsonb) RETURNS void LANGUAGE sql
    AS $$INSERT INTO public.pool_effects VALUES ((kw->>'k')::int)$$;
SELECT jobq_register('t_pool_reg', 'pool_h');
SELECT count(jobq_put('t_pool_reg', 'pool_h', jsonb_build_object('k', k)))
  FROM generate_series(1, 100) k;
SELECT wait_for($$SELECT count(*) = 100 FROM pool_effects$$);
SELECT count(*) AS ran, count(DISTINCT k) AS distinct_jobs FROM pool_effects;
SELECT count(*) AS set_aside FROM jobq.failed WHERE tube = 't_pool_reg';
SELECT total FROM jobq_tubes() WHERE tube = 't_pool_reg';
SELECT count(*) FILTER (WHERE name = 'total-jobs') AS one_total FROM jobq_server_stats();
-- a job id alone names no job in a pool
SELECT jobq_delete(1);
SELECT jobq_delete(1, '127.0.0.1:1');
SELECT jobq_unregister('t_pool_reg', 'pool_h');
RESET jobq.servers;
ALTER SYSTEM RESET jobq.servers;
SELECT pg_reload_conf();
SELECT pg_sleep(1.5);

-- introspection and administration of beanstalkd from SQL
SELECT count(*) > 20 AS many, bool_or(name = 'max-job-size') AS has_max
  FROM jobq_stats();

SELECT jobq_put_now('t_adm', 'f', '{"k": 1}') AS a \gset
SELECT jobq_put_now('t_adm', 'f', '{"k": 2}') AS b \gset
SELECT tube, ready, reserved, delayed, buried, total, pause
  FROM jobq_tubes() WHERE tube = 't_adm';

-- stats-job and peek, by id
SELECT tube, state, priority, ttr FROM jobq_job(:a);
SELECT id = :a AS same_id, body->'kwargs' AS kwargs FROM jobq_peek(:a);
SELECT id = :a AS first_ready FROM jobq_peek_ready('t_adm');

-- missing jobs are NULL or false, not errors
SELECT jobq_job(999999999) IS NULL AS no_job;
SELECT (jobq_peek(999999999)).id IS NULL AS no_peek;
SELECT (jobq_peek_buried('t_adm')).id IS NULL AS none_buried;
SELECT (jobq_peek_delayed('t_adm')).id IS NULL AS none_delayed;
SELECT jobq_delete(999999999) AS deleted;
SELECT jobq_kick_job(999999999) AS kicked;
SELECT jobq_pause_tube('t_adm_nonexistent', '1 s') AS paused;

-- bad ids and bounds
SELECT jobq_job(0);
SELECT jobq_peek(-1);
SELECT jobq_kick('t_adm', 0);
SELECT jobq_peek_ready('bad tube');

-- delete
SELECT jobq_delete(:a) AS deleted;
SELECT jobq_job(:a) IS NULL AS gone;

-- pause
SELECT jobq_pause_tube('t_adm', '1 hour') AS paused;
SELECT pause FROM jobq_tubes() WHERE tube = 't_adm';
SELECT jobq_pause_tube('t_adm', '0') AS unpaused;

-- kick: bury a job through a raw peek is not possible from SQL, so kick the
-- delayed ones, which kick also moves to ready when nothing is buried
SELECT jobq_put_now('t_adm_kick', 'f', '{}', NULL, '1 hour') AS d \gset
SELECT state FROM jobq_job(:d);
SELECT jobq_kick('t_adm_kick', 10) AS kicked;
SELECT state FROM jobq_job(:d);
SELECT jobq_put_now('t_adm_kick', 'f', '{}', NULL, '1 hour') AS d2 \gset
SELECT jobq_kick_job(:d2) AS kicked_one;
SELECT state FROM jobq_job(:d2);

-- a body from a foreign producer that is not JSON: body NULL, raw kept
\! printf 'plain bytes' > results/adm_raw.bin
\! bash test/raw_put.sh t_adm_raw results/adm_raw.bin | cut -c1-8
SELECT body IS NULL AS not_json, convert_from(raw, 'UTF8') AS raw FROM jobq_peek_ready('t_adm_raw');

-- privileges: nothing for PUBLIC
CREATE ROLE jobq_nobody;
SET ROLE jobq_nobody;
SELECT * FROM jobq_stats();
SELECT jobq_delete(1);
SELECT * FROM jobq.failed;
RESET ROLE;
DROP ROLE jobq_nobody;

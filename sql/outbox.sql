-- jobq_put: transactional enqueue through jobq.outbox and the relay
\set VERBOSITY terse

CREATE FUNCTION drain_order(tube text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
    s text := '';
BEGIN
    LOOP
        SELECT * INTO r FROM jobq_peek_ready(tube);
        EXIT WHEN r.id IS NULL;
        s := s || (r.body->'kwargs'->>'n') || ' ';
        PERFORM jobq_delete(r.id);
    END LOOP;
    RETURN s;
END $$;

-- commit: the job reaches beanstalkd, quickly, and the outbox is empty again
SELECT jobq_put('t_ob', 'f', '{"n": 1}') AS job \gset
SELECT wait_for($$SELECT ready = 1 FROM jobq_tubes() WHERE tube = 't_ob'$$);
SELECT body->'kwargs' AS kwargs, body->>'id' = :'job' AS same_uuid FROM jobq_peek_ready('t_ob');
SELECT count(*) AS outbox FROM jobq.outbox;

-- a statement's jobs are one row of jobq.outbox_packs; the view jobq.outbox
-- shows them one by one, in order
BEGIN;
SELECT count(jobq_put('t_ob_pack', 'fp', jsonb_build_object('n', i), priority => 10 + i,
                      delay => '1 h', ttr => '1 min'))
  FROM generate_series(1, 3) i;
SELECT jobs FROM jobq.outbox_packs;
SELECT ord, tube, func_name, priority, delay, ttr,
       convert_from(body, 'UTF8')::jsonb->'kwargs' AS kwargs,
       convert_from(body, 'UTF8')::jsonb->>'id' = id::text AS id_in_body
  FROM jobq.outbox ORDER BY seq, ord;
ROLLBACK;
-- a PL/pgSQL loop's jobs are written at the end of its top-level statement,
-- together; and so are those of a savepoint after 1,000 of the outer level
BEGIN;
DO $$
BEGIN
    FOR i IN 1..10 LOOP
        PERFORM jobq_put('t_ob_pack', 'fp', jsonb_build_object('n', i));
    END LOOP;
END
$$;
SELECT count(*) AS packs, sum(jobs) AS jobs FROM jobq.outbox_packs;
SELECT count(jobq_put('t_ob_pack', 'fp', jsonb_build_object('n', i))) FROM generate_series(1, 1500) i;
SAVEPOINT s;
SELECT count(jobq_put('t_ob_pack', 'fp', jsonb_build_object('n', i))) FROM generate_series(1, 20) i;
RELEASE SAVEPOINT s;
SELECT count(*) AS packs, sum(jobs) AS jobs FROM jobq.outbox_packs;
ROLLBACK;
-- jobs made in exception blocks pass to the loop's level: after 1,000 the
-- write takes only the block's own job, and the next waits for 1,000 more
BEGIN;
DO $$
BEGIN
    FOR i IN 1..1200 LOOP
        BEGIN
            PERFORM jobq_put('t_ob_pack', 'fp', jsonb_build_object('n', i));
        EXCEPTION WHEN others THEN
            RAISE;
        END;
    END LOOP;
END
$$;
SELECT count(*) AS packs, sum(jobs) AS jobs FROM jobq.outbox_packs;
ROLLBACK;
-- jobq.unpack checks what it reads
SELECT * FROM jobq.unpack('\x00'::bytea);
SELECT * FROM jobq.unpack(decode(repeat('00', 40) || '7fffffff', 'hex'));
SELECT * FROM jobq.unpack(decode(repeat('00', 40) || '00000001' || '00', 'hex'));
SELECT count(*) AS empty_pack FROM jobq.unpack(''::bytea);

-- rollback: no job
BEGIN;
SELECT jobq_put('t_ob_rb', 'f', '{"n": 2}') IS NOT NULL AS put;
SELECT count(*) AS in_outbox FROM jobq.outbox WHERE tube = 't_ob_rb';
ROLLBACK;
-- a savepoint rolled back: only its jobs are missing
BEGIN;
SELECT jobq_put('t_ob_sp', 'f', '{"n": 1}') IS NOT NULL AS put;
SAVEPOINT s;
SELECT jobq_put('t_ob_sp', 'f', '{"n": 2}') IS NOT NULL AS put;
ROLLBACK TO SAVEPOINT s;
SELECT jobq_put('t_ob_sp', 'f', '{"n": 3}') IS NOT NULL AS put;
COMMIT;
SELECT wait_for($$SELECT total = 2 FROM jobq_tubes() WHERE tube = 't_ob_sp'$$);
SELECT drain_order('t_ob_sp') AS savepoint_kept;
SELECT jobq_put('t_ob_sync', 'f') IS NOT NULL AS later_job_committed;
SELECT wait_for($$SELECT ready = 1 FROM jobq_tubes() WHERE tube = 't_ob_sync'$$);
SELECT count(*) AS rolled_back_tube FROM jobq_tubes() WHERE tube = 't_ob_rb';

-- order within a transaction is kept
BEGIN;
SELECT count(jobq_put('t_ob_order', 'f', jsonb_build_object('n', n))) FROM generate_series(1, 5) n;
COMMIT;
SELECT wait_for($$SELECT ready = 5 FROM jobq_tubes() WHERE tube = 't_ob_order'$$);
SELECT drain_order('t_ob_order') AS order_seen;

-- priority, delay and ttr travel through the outbox
SELECT jobq_put('t_ob_opts', 'f', '{}', 7, '1 hour', '33 s') IS NOT NULL AS put;
SELECT wait_for($$SELECT delayed = 1 FROM jobq_tubes() WHERE tube = 't_ob_opts'$$);
SELECT priority, delay, ttr FROM jobq_job((jobq_peek_delayed('t_ob_opts')).id);

-- prepared transactions: delivered on COMMIT PREPARED (by the sweep: that
-- commit wakes nobody), never on ROLLBACK PREPARED
BEGIN;
SELECT jobq_put('t_ob_2pc', 'f', '{"tx": "committed"}') IS NOT NULL AS put;
PREPARE TRANSACTION 'jobq_a';
BEGIN;
SELECT jobq_put('t_ob_2pc', 'f', '{"tx": "rolled back"}') IS NOT NULL AS put;
PREPARE TRANSACTION 'jobq_b';
-- a later committed job has been sent: the relay has passed the prepared ones
SELECT jobq_put('t_ob_2pc_mark', 'f', '{"mark": 1}') IS NOT NULL AS marker;
SELECT wait_for($$SELECT ready = 1 FROM jobq_tubes() WHERE tube = 't_ob_2pc_mark'$$);
SELECT count(*) AS nothing_before_commit FROM jobq_tubes() WHERE tube = 't_ob_2pc';
COMMIT PREPARED 'jobq_a';
ROLLBACK PREPARED 'jobq_b';
SELECT wait_for($$SELECT ready = 1 FROM jobq_tubes() WHERE tube = 't_ob_2pc'$$);
-- and after a second marker, still only the committed one
SELECT jobq_put('t_ob_2pc_mark', 'f', '{"mark": 2}') IS NOT NULL AS marker;
SELECT wait_for($$SELECT ready = 2 FROM jobq_tubes() WHERE tube = 't_ob_2pc_mark'$$);
SELECT ready FROM jobq_tubes() WHERE tube = 't_ob_2pc';
SELECT body->'kwargs' AS kwargs FROM jobq_peek_ready('t_ob_2pc');

-- jobs wait in memory until their statement ends (or 1000 of them are
-- made, or the transaction commits); in savepoints and exception blocks,
-- statements of more than 1000 jobs: only what committed is sent
CREATE TABLE blocks (b int, i int);
CREATE FUNCTION record_block(b int, i int DEFAULT 0) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.blocks VALUES (b, i) $$;
SELECT jobq_register('t_ob_blocks', 'record_block');
CREATE FUNCTION put_in_blocks() RETURNS int LANGUAGE plpgsql AS $$
DECLARE kept int := 0;
BEGIN
    FOR b IN 1 .. 4 LOOP
        BEGIN
            PERFORM jobq_put('t_ob_blocks', 'record_block', jsonb_build_object('b', b, 'i', i))
               FROM generate_series(1, 1500) i;
            IF b % 2 = 0 THEN
                RAISE EXCEPTION 'block % rolls back', b;
            END IF;
            kept := kept + 1500;
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
    END LOOP;
    RETURN kept;
END $$;
BEGIN;
SELECT jobq_put('t_ob_blocks', 'record_block', '{"b": 0}') IS NOT NULL AS put;
SELECT put_in_blocks() AS kept;
-- at the end of a statement its jobs are rows, visible to the next one
SELECT count(*) AS in_outbox_now FROM jobq.outbox WHERE tube = 't_ob_blocks';
SAVEPOINT s2;
SELECT count(jobq_put('t_ob_blocks', 'record_block', jsonb_build_object('b', 9, 'i', i)))
  FROM generate_series(1, 2500) i;
ROLLBACK TO SAVEPOINT s2;
SAVEPOINT s3;
SELECT jobq_put('t_ob_blocks', 'record_block', '{"b": 5}') IS NOT NULL AS put;
RELEASE SAVEPOINT s3;
COMMIT;
SELECT wait_for($$SELECT count(*) = 3002 FROM blocks$$);
SELECT b, count(*), count(DISTINCT i) FROM blocks GROUP BY b ORDER BY b;

-- a read-only transaction cannot enqueue
BEGIN READ ONLY;
SELECT jobq_put('t_ob', 'f');
ROLLBACK;

-- the same checks as jobq_put_now, before anything is written
SELECT jobq_put('bad tube', 'f');
SELECT jobq_put('t_ob', '');
SELECT jobq_put('t_ob', 'f', '[]');
SELECT jobq_put('t_ob', 'f', '{}', -1);
-- (the body's size depends on the database's name, which it carries)
DO $$
BEGIN
    PERFORM jobq_put('t_ob', 'f', jsonb_build_object('x', repeat('x', 70000)));
EXCEPTION WHEN program_limit_exceeded THEN
    RAISE NOTICE 'refused: %', regexp_replace(SQLERRM, 'of \d+ bytes exceeds', 'of N bytes exceeds');
END
$$;
SELECT count(*) AS nothing_written FROM jobq.outbox;

-- end to end: a registered handler runs a job from a committed transaction
CREATE FUNCTION record_n(n int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args) VALUES ('record_n', jsonb_build_object('n', n))
$$;
SELECT jobq_register('t_ob_run', 'record_n');
BEGIN;
SELECT jobq_put('t_ob_run', 'record_n', '{"n": 1}') IS NOT NULL AS put;
SELECT jobq_put('t_ob_run', 'record_n', '{"n": 2}') IS NOT NULL AS put;
COMMIT;
BEGIN;
SELECT jobq_put('t_ob_run', 'record_n', '{"n": 3}') IS NOT NULL AS put;
ROLLBACK;
SELECT wait_for($$SELECT count(*) = 2 FROM results WHERE func = 'record_n'$$);
-- everything committed is sent and run: what ran is all that will
SELECT wait_for($$SELECT NOT EXISTS (SELECT FROM jobq.outbox WHERE tube = 't_ob_run')
                   AND (SELECT ready + reserved FROM jobq_tubes() WHERE tube = 't_ob_run') = 0$$);
SELECT array_agg((args->>'n')::int ORDER BY (args->>'n')::int) AS ran FROM results WHERE func = 'record_n';

-- the relay reports itself
SELECT state, succeeded >= 10 AS sent FROM jobq.workers WHERE kind = 'relay';
SELECT * FROM jobq.outbox_backlog;

-- rows of jobq.outbox_packs written by hand: one that is not a pack, and a
-- pack whose tube would be a second command on the wire, go to jobq.failed;
-- the jobs committed after them still go
INSERT INTO jobq.outbox_packs (jobs, packed) VALUES (1, '\x0001'::bytea);
INSERT INTO jobq.outbox_packs (jobs, packed)
SELECT 1, uuid_send(gen_random_uuid()) || int8send(0) || int8send(0) || int8send(60)
          || int4send(octet_length(t)) || t || int4send(1) || 'f'::bytea
          || int4send(2) || '{}'::bytea
  FROM (SELECT convert_to(E't_ob_evil\r\nkick 100', 'UTF8') AS t) x;
SELECT jobq_put('t_ob_after_bad', 'f') IS NOT NULL AS put_after;
SELECT wait_for($$SELECT ready = 1 FROM jobq_tubes() WHERE tube = 't_ob_after_bad'$$);
SELECT sqlstate, message, source, tube FROM jobq.failed
 WHERE source = 'relay' AND sqlstate IN ('22P03', '22023') ORDER BY id;
SELECT count(*) AS outbox_left FROM jobq.outbox_packs;

-- jobq's own writes check the outbox table's constraints, one an
-- administrator added included
\set VERBOSITY terse
ALTER TABLE jobq.outbox_packs ADD CONSTRAINT outbox_small CHECK (pg_catalog.octet_length(packed) < 200);
SELECT jobq_put('t_ob_check', 'f', jsonb_build_object('pad', repeat('x', 500)));
SELECT count(*) AS packs_left FROM jobq.outbox_packs;
ALTER TABLE jobq.outbox_packs DROP CONSTRAINT outbox_small;
\set VERBOSITY default

-- jobq_enqueue: one job per row change, through the outbox
\set VERBOSITY terse
CREATE TABLE orders (id int PRIMARY KEY, item text, qty int);
CREATE FUNCTION on_order(kw jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args) VALUES ('on_order', kw)
$$;
SELECT jobq_register('t_trg', 'on_order');
CREATE TRIGGER orders_jobs AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t_trg', 'on_order', '{"priority": 10, "ttr": "30 s"}');

INSERT INTO orders VALUES (1, 'apple', 3), (2, 'pear', 1);
UPDATE orders SET qty = 5 WHERE id = 1;
DELETE FROM orders WHERE id = 2;
-- a rolled-back change enqueues nothing
BEGIN;
INSERT INTO orders VALUES (3, 'plum', 9);
ROLLBACK;
SELECT wait_for($$SELECT count(*) = 4 FROM results WHERE func = 'on_order'$$);
-- everything committed is sent and run: what ran is all that will
SELECT wait_for($$SELECT NOT EXISTS (SELECT FROM jobq.outbox WHERE tube = 't_trg')
                   AND (SELECT ready + reserved FROM jobq_tubes() WHERE tube = 't_trg') = 0$$);
SELECT args FROM results WHERE func = 'on_order'
 ORDER BY args->>'op', coalesce(args->'new'->>'id', args->'old'->>'id');

-- a BEFORE trigger works too and keeps the row
CREATE TABLE notes (id int, body text);
CREATE TRIGGER notes_jobs BEFORE INSERT ON notes
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t_trg_before', 'f', '{"priority": 3, "ttr": 45}');
INSERT INTO notes VALUES (1, 'kept') RETURNING *;
SELECT wait_for($$SELECT ready = 1 FROM jobq_tubes() WHERE tube = 't_trg_before'$$);
SELECT body->'kwargs' AS kwargs FROM jobq_peek_ready('t_trg_before');
SELECT priority, ttr FROM jobq_job((jobq_peek_ready('t_trg_before')).id);

-- bad uses are errors at trigger time
CREATE TABLE bad (id int);
CREATE TRIGGER bad_stmt AFTER INSERT ON bad
    FOR EACH STATEMENT EXECUTE FUNCTION jobq_enqueue('t', 'f');
INSERT INTO bad VALUES (1);
DROP TRIGGER bad_stmt ON bad;
CREATE TRIGGER bad_args AFTER INSERT ON bad FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t');
INSERT INTO bad VALUES (1);
DROP TRIGGER bad_args ON bad;
CREATE TRIGGER bad_tube AFTER INSERT ON bad FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('no tube', 'f');
INSERT INTO bad VALUES (1);
DROP TRIGGER bad_tube ON bad;
CREATE TRIGGER bad_opts AFTER INSERT ON bad FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t', 'f', '{"prio": 1}');
INSERT INTO bad VALUES (1);
DROP TRIGGER bad_opts ON bad;
CREATE TRIGGER bad_json AFTER INSERT ON bad FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t', 'f', 'nope');
INSERT INTO bad VALUES (1);
DROP TRIGGER bad_json ON bad;
SELECT jobq_enqueue();
SELECT count(*) AS nothing_queued FROM jobq.outbox;

-- the row goes to JSON once, straight into the body; a json column (even
-- one added after the trigger first ran) goes through jsonb, so that no
-- body carries the duplicate keys a json value may hold
CREATE TABLE j_rows (id int, v text);
CREATE TRIGGER j_rows_jobs AFTER INSERT ON j_rows
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t_trg_json', 'f');
INSERT INTO j_rows VALUES (1, 'plain "quoted" \ text');
ALTER TABLE j_rows ADD COLUMN j json;
INSERT INTO j_rows VALUES (2, 'with json', '{"a": 1, "a": 2}');
SELECT wait_for($$SELECT ready = 2 FROM jobq_tubes() WHERE tube = 't_trg_json'$$);
CREATE FUNCTION peek_all(t text) RETURNS TABLE (kwargs jsonb, dup_keys bool) LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    LOOP
        SELECT * INTO r FROM jobq_peek_ready(t);
        EXIT WHEN r.id IS NULL;
        kwargs := r.body->'kwargs';
        dup_keys := position('"a":1' IN convert_from(r.raw, 'UTF8')) > 0;
        RETURN NEXT;
        PERFORM jobq_delete(r.id);
    END LOOP;
END $$;
SELECT * FROM peek_all('t_trg_json');

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

-- rows of built-in scalar types are written by jobq itself, column by
-- column: byte for byte what row_to_json writes, for every kind of value,
-- a dropped column and a renamed one included
CREATE DOMAIN small_pos AS int CHECK (VALUE > 0);
CREATE TABLE typed_rows (id int, i2 int2, i8 int8, f4 float4, f8 float8, n numeric,
    b bool, d date, ts timestamp, tz timestamptz, t text, vc varchar(20), c char(4),
    u uuid, iv interval, ip inet, ba bytea, nm name, tm time, dom small_pos, gone int);
CREATE TRIGGER typed_rows_jobs AFTER INSERT ON typed_rows
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t_trg_types', 'f');
BEGIN;
INSERT INTO typed_rows VALUES
    (1, -32768, 9223372036854775807, 1.5, 1e300, 12.50, true, '2026-11-29',
     '2026-11-29 12:34:56.789', '2026-11-29 12:34:56+02', E'quote " back \\ tab \t nl \n é ☃',
     'v', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 2 hours', '10.0.0.1/8',
     '\x00ff', 'nm', '13:14:15', 7, 0),
    (2, NULL, NULL, 'NaN', '-Infinity', 'NaN', false, 'infinity', '-infinity', 'infinity',
     '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, 0, -1, '-0', 'Infinity', -0.0001, NULL, '0044-03-15 BC', '2000-01-01', NULL,
     'null', 'true', '', NULL, '-1 mon', '::1', '', '', '00:00', 1, NULL);
CREATE FUNCTION pg_temp.bodies_match() RETURNS TABLE (id int, same_as_row_to_json bool)
LANGUAGE sql AS $$
SELECT r.id,
       strpos(convert_from(o.body, 'UTF8'), '"new":' || row_to_json(r)::text || ',"old":null') > 0
  FROM jobq.outbox o
  JOIN typed_rows r ON (convert_from(o.body, 'UTF8')::jsonb->'kwargs'->'new'->>'id')::int = r.id
 WHERE o.tube = 't_trg_types'
 ORDER BY r.id
$$;
SELECT * FROM pg_temp.bodies_match();
ALTER TABLE typed_rows DROP COLUMN gone;
ALTER TABLE typed_rows RENAME COLUMN t TO "t ""renamed""";
INSERT INTO typed_rows (id, "t ""renamed""") VALUES (4, 'after');
SELECT * FROM pg_temp.bodies_match() WHERE id = 4;
ROLLBACK;

-- numbers no double holds (a 400-digit numeric, in a column and an array)
-- reach the handler exactly
CREATE TABLE big_numbers (id int, n numeric, arr numeric[]);
CREATE FUNCTION on_big(kw jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.results (func, args) VALUES ('on_big', kw->'new')
$$;
SELECT jobq_register('t_trg_big', 'on_big');
CREATE TRIGGER big_numbers_jobs AFTER INSERT ON big_numbers
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t_trg_big', 'on_big');
INSERT INTO big_numbers VALUES (1, repeat('9', 400)::numeric, ARRAY[-(repeat('7', 400)::numeric)]);
SELECT wait_for($$SELECT count(*) = 1 FROM results WHERE func = 'on_big'$$);
SELECT (args->>'n')::numeric = repeat('9', 400)::numeric AS n_exact,
       (args->'arr'->>0)::numeric = -(repeat('7', 400)::numeric) AS arr_exact
  FROM results WHERE func = 'on_big';

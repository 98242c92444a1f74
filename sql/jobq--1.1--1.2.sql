-- jobq 1.1 -> 1.2: packed outbox rows; several databases.
--
-- A producer's write (the jobs of one statement, up to 1000 or 4 MB) is one
-- row of jobq.outbox_packs instead of a row of jobq.outbox per job: a job
-- costs a few bytes appended to a buffer, not a heap tuple and an index
-- entry, and the relay deletes a row per write instead of a row per job.
-- jobq.outbox becomes a view of the packed jobs, one row per job as before
-- (plus ord, the job's place in its pack).  The rows waiting in the 1.1
-- table are moved into packs of one job, keeping their seq, so that the
-- relay sends them first.
--
-- jobq.database may list several databases; jobq.check_database() tells
-- whether this one is among them (and warns if not), which CREATE
-- EXTENSION does at its end.
-- Everything here is schema-qualified or resolved through pg_catalog, which
-- comes first: it runs as a superuser.

\echo Use "ALTER EXTENSION jobq UPDATE TO '1.2'" to load this file. \quit

CREATE TABLE jobq.outbox_packs (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jobs       integer NOT NULL CHECK (jobs OPERATOR(pg_catalog.>) 0),
    packed     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- A pack of JSON bodies compresses to a third or less with lz4, which
-- costs the producer less than writing the bytes saved to the heap and the
-- WAL (100k-row trigger INSERT: 0.31 s against 0.37 s uncompressed); pglz
-- is too slow for that, so without lz4 the packs stay uncompressed.
DO $$
BEGIN
    ALTER TABLE jobq.outbox_packs ALTER COLUMN packed SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE jobq.outbox_packs ALTER COLUMN packed SET STORAGE EXTERNAL;
END
$$;

CREATE FUNCTION jobq.unpack(packed pg_catalog.bytea,
                            OUT ord pg_catalog.int4, OUT id pg_catalog.uuid,
                            OUT tube pg_catalog.text, OUT func_name pg_catalog.text,
                            OUT body pg_catalog.bytea, OUT priority pg_catalog.int8,
                            OUT delay pg_catalog.int8, OUT ttr pg_catalog.int8)
RETURNS SETOF pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_unpack'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- the relay (a library already at 1.2) may be sending rows of the 1.1
-- table: wait for its transaction (even one that has only read so far),
-- and keep producers out until the move
LOCK TABLE jobq.outbox IN ACCESS EXCLUSIVE MODE;

INSERT INTO jobq.outbox_packs (seq, jobs, packed, created_at) OVERRIDING SYSTEM VALUE
SELECT o.seq, 1,
       pg_catalog.uuid_send(o.id)
       OPERATOR(pg_catalog.||) pg_catalog.int8send(o.priority)
       OPERATOR(pg_catalog.||) pg_catalog.int8send(o.delay)
       OPERATOR(pg_catalog.||) pg_catalog.int8send(o.ttr)
       OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.octet_length(t.tube))
       OPERATOR(pg_catalog.||) t.tube
       OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.octet_length(t.func_name))
       OPERATOR(pg_catalog.||) t.func_name
       OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.octet_length(o.body))
       OPERATOR(pg_catalog.||) o.body,
       o.created_at
  FROM jobq.outbox o
 CROSS JOIN LATERAL (
       SELECT pg_catalog.convert_to(o.tube, pg_catalog.getdatabaseencoding()) AS tube,
              pg_catalog.convert_to(o.func_name, pg_catalog.getdatabaseencoding()) AS func_name) t;

SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('jobq.outbox_packs', 'seq'), s.last)
  FROM (SELECT pg_catalog.max(seq) AS last FROM jobq.outbox_packs) s
 WHERE s.last IS NOT NULL;

DROP VIEW jobq.outbox_backlog;
DROP TABLE jobq.outbox;

CREATE VIEW jobq.outbox AS
    SELECT p.seq, j.ord, j.id, j.tube, j.func_name, j.body, j.priority, j.delay, j.ttr,
           p.created_at
      FROM jobq.outbox_packs p
     CROSS JOIN LATERAL jobq.unpack(p.packed) j;

CREATE VIEW jobq.outbox_backlog AS
    SELECT tube, pg_catalog.count(*) AS jobs, pg_catalog.min(created_at) AS oldest
      FROM jobq.outbox GROUP BY tube;

-- new objects: for the administrators the superuser grants them to
REVOKE ALL ON TABLE jobq.outbox_packs, jobq.outbox, jobq.outbox_backlog FROM PUBLIC;

COMMENT ON TABLE jobq.outbox_packs IS
    'Jobs of transactions (jobq_put, jobq_enqueue), a row per write of a statement''s jobs, sent to beanstalkd by the relay after commit and deleted';
COMMENT ON COLUMN jobq.outbox_packs.jobs IS
    'How many jobs the row holds';
COMMENT ON COLUMN jobq.outbox_packs.packed IS
    'The jobs, one after the other: see jobq.unpack, or the view jobq.outbox';
COMMENT ON FUNCTION jobq.unpack(pg_catalog.bytea) IS
    'The jobs of a row of jobq.outbox_packs, in order';
COMMENT ON VIEW jobq.outbox IS
    'Jobs waiting in jobq.outbox_packs for the relay, a row per job';
COMMENT ON VIEW jobq.outbox_backlog IS
    'Jobs waiting in the outbox for the relay, per tube, and the oldest';

CREATE FUNCTION jobq.check_database()
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'jobq_check_database'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION jobq.check_database() FROM PUBLIC;
COMMENT ON FUNCTION jobq.check_database() IS
    'Whether jobq''s relay and workers serve this database (jobq.database lists it, jobq is preloaded); warns when not';

-- Run by every CREATE EXTENSION and update to 1.2 (and by the last update
-- script of later versions): jobs enqueued in a database nobody serves
-- stay in its outbox, so say so now, with the setting to change.
SELECT jobq.check_database();

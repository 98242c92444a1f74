/* jobq 1.4 -> 1.5: a job's lifecycle (README, "Following a job") */
\echo Use "ALTER EXTENSION jobq UPDATE TO '1.5'" to load this file. \quit

-- Everything here runs as a superuser: schema-qualified, search_path pinned.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

-- jobq.done keeps, besides the completed jobs, the cancelled ones (a worker
-- that reserves a cancelled job finds its id here and drops it, as it drops
-- a second delivery), and what a handler registered with keep_result
-- returned.  tube and func_name are known for those two kinds only.
ALTER TABLE jobq.done
    ADD COLUMN state pg_catalog.text NOT NULL DEFAULT 'done'
        CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['done', 'cancelled'])),
    ADD COLUMN attempts pg_catalog.int4,
    ADD COLUMN tube pg_catalog.text,
    ADD COLUMN func_name pg_catalog.text,
    ADD COLUMN result pg_catalog.jsonb,
    ADD COLUMN cancelled_by pg_catalog.name,
    ADD COLUMN cancelled_in pg_catalog.text;

-- where the relay put each job (jobq.track_jobs): what jobq_status says of
-- a job that left the outbox and has not finished, and where jobq_cancel
-- deletes it
CREATE TABLE jobq.sent (
    id          pg_catalog.uuid NOT NULL,
    server      pg_catalog.text NOT NULL,
    bs_id       pg_catalog.int8 NOT NULL,
    tube        pg_catalog.text NOT NULL,
    func_name   pg_catalog.text NOT NULL,
    enqueued_at pg_catalog.timestamptz NOT NULL,
    sent_at     pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- a hash index, not a unique one: an insert costs half as much, and the
-- relay's batch is sent again only after a crash before its commit (then
-- the latest row is the job's place); BRIN: the relay appends in sent_at
-- order, and pruning needs no more
CREATE INDEX sent_id_idx ON jobq.sent USING hash (id);
CREATE INDEX sent_sent_at_idx ON jobq.sent USING brin (sent_at);

-- unique keys taken by jobs not finished (or, with unique_for, enqueued
-- less than that long ago)
CREATE TABLE jobq.unique_keys (
    tube        pg_catalog.text NOT NULL,
    key         pg_catalog.text NOT NULL,
    job_id      pg_catalog.uuid NOT NULL,
    enqueued_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at  pg_catalog.timestamptz,
    finished    pg_catalog.bool NOT NULL DEFAULT false,
    PRIMARY KEY (tube, key)
);
CREATE INDEX unique_keys_job_id_idx ON jobq.unique_keys (job_id);

CREATE INDEX failed_job_id_idx ON jobq.failed (job_id);

ALTER TABLE jobq.handlers ADD COLUMN keep_result pg_catalog.bool NOT NULL DEFAULT false;

REVOKE ALL ON TABLE jobq.sent, jobq.unique_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('jobq.sent', '');
SELECT pg_catalog.pg_extension_config_dump('jobq.unique_keys', '');

-- jobq_put, jobq_register and jobq_worker_status get new parameters or
-- columns: each is dropped and created again (two functions that differ
-- only in parameters with defaults would make every call ambiguous), with
-- its owner and its grants put back as they were.  The grants go straight
-- into the catalog: a GRANT here would record them as the extension's
-- initial privileges, which pg_dump leaves out.
DO $$
DECLARE
    put_acl pg_catalog.aclitem[];
    put_owner pg_catalog.oid;
    reg_acl pg_catalog.aclitem[];
    reg_owner pg_catalog.oid;
    ws_acl pg_catalog.aclitem[];
    ws_owner pg_catalog.oid;
    view_acl pg_catalog.aclitem[];
    view_owner pg_catalog.oid;
BEGIN
    SELECT proacl, proowner INTO put_acl, put_owner FROM pg_catalog.pg_proc
     WHERE oid OPERATOR(pg_catalog.=) '@extschema@.jobq_put(text, text, jsonb, int8, interval, interval)'::pg_catalog.regprocedure;
    SELECT proacl, proowner INTO reg_acl, reg_owner FROM pg_catalog.pg_proc
     WHERE oid OPERATOR(pg_catalog.=) '@extschema@.jobq_register(text, text, regprocedure, regrole, int4, interval, interval)'::pg_catalog.regprocedure;
    SELECT proacl, proowner INTO ws_acl, ws_owner FROM pg_catalog.pg_proc
     WHERE oid OPERATOR(pg_catalog.=) '@extschema@.jobq_worker_status()'::pg_catalog.regprocedure;
    SELECT relacl, relowner INTO view_acl, view_owner FROM pg_catalog.pg_class
     WHERE oid OPERATOR(pg_catalog.=) 'jobq.workers'::pg_catalog.regclass;

    DROP FUNCTION @extschema@.jobq_put(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb,
                                       pg_catalog.int8, pg_catalog.interval, pg_catalog.interval);
    CREATE FUNCTION @extschema@.jobq_put(tube pg_catalog.text, func_name pg_catalog.text,
                                         kwargs pg_catalog.jsonb DEFAULT '{}',
                                         priority pg_catalog.int8 DEFAULT NULL,
                                         delay pg_catalog.interval DEFAULT NULL,
                                         ttr pg_catalog.interval DEFAULT NULL,
                                         unique_key pg_catalog.text DEFAULT NULL,
                                         unique_for pg_catalog.interval DEFAULT NULL)
    RETURNS pg_catalog.uuid
    AS 'MODULE_PATHNAME', 'jobq_put'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
    REVOKE ALL ON FUNCTION @extschema@.jobq_put(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb,
        pg_catalog.int8, pg_catalog.interval, pg_catalog.interval, pg_catalog.text,
        pg_catalog.interval) FROM PUBLIC;
    UPDATE pg_catalog.pg_proc SET proacl = put_acl, proowner = put_owner
     WHERE oid OPERATOR(pg_catalog.=) '@extschema@.jobq_put(text, text, jsonb, int8, interval, interval, text, interval)'::pg_catalog.regprocedure;

    DROP FUNCTION @extschema@.jobq_register(pg_catalog.text, pg_catalog.text, pg_catalog.regprocedure,
                                            pg_catalog.regrole, pg_catalog.int4, pg_catalog.interval,
                                            pg_catalog.interval);
    CREATE FUNCTION @extschema@.jobq_register(tube pg_catalog.text, func_name pg_catalog.text,
                                              handler pg_catalog.regprocedure DEFAULT NULL,
                                              run_as pg_catalog.regrole DEFAULT NULL,
                                              max_attempts pg_catalog.int4 DEFAULT 3,
                                              backoff pg_catalog.interval DEFAULT '1 s',
                                              timeout pg_catalog.interval DEFAULT NULL,
                                              keep_result pg_catalog.bool DEFAULT false)
    RETURNS void
    AS 'MODULE_PATHNAME', 'jobq_register'
    LANGUAGE C VOLATILE;
    REVOKE ALL ON FUNCTION @extschema@.jobq_register(pg_catalog.text, pg_catalog.text,
        pg_catalog.regprocedure, pg_catalog.regrole, pg_catalog.int4, pg_catalog.interval,
        pg_catalog.interval, pg_catalog.bool) FROM PUBLIC;
    UPDATE pg_catalog.pg_proc SET proacl = reg_acl, proowner = reg_owner
     WHERE oid OPERATOR(pg_catalog.=) '@extschema@.jobq_register(text, text, regprocedure, regrole, int4, interval, interval, bool)'::pg_catalog.regprocedure;

    DROP VIEW jobq.workers;
    DROP FUNCTION @extschema@.jobq_worker_status();
    CREATE FUNCTION @extschema@.jobq_worker_status(
        OUT worker pg_catalog.int4, OUT kind pg_catalog.text, OUT pid pg_catalog.int4,
        OUT state pg_catalog.text, OUT tube pg_catalog.text, OUT func_name pg_catalog.text,
        OUT job_id pg_catalog.int8, OUT since pg_catalog.timestamptz,
        OUT succeeded pg_catalog.int8, OUT failed pg_catalog.int8,
        OUT last_error pg_catalog.text, OUT last_error_at pg_catalog.timestamptz,
        OUT job_uuid pg_catalog.uuid)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'jobq_worker_status'
    LANGUAGE C VOLATILE STRICT;
    CREATE VIEW jobq.workers AS SELECT * FROM @extschema@.jobq_worker_status();
    REVOKE ALL ON FUNCTION @extschema@.jobq_worker_status() FROM PUBLIC;
    REVOKE ALL ON TABLE jobq.workers FROM PUBLIC;
    UPDATE pg_catalog.pg_proc SET proacl = ws_acl, proowner = ws_owner
     WHERE oid OPERATOR(pg_catalog.=) '@extschema@.jobq_worker_status()'::pg_catalog.regprocedure;
    UPDATE pg_catalog.pg_class SET relacl = view_acl, relowner = view_owner
     WHERE oid OPERATOR(pg_catalog.=) 'jobq.workers'::pg_catalog.regclass;
END
$$;

COMMENT ON FUNCTION @extschema@.jobq_put(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.int8,
                             pg_catalog.interval, pg_catalog.interval, pg_catalog.text,
                             pg_catalog.interval) IS
    'Enqueue a job transactionally: it reaches beanstalkd if and after the caller commits; returns the job''s uuid (with unique_key, the uuid of the job holding the key, if one does)';
COMMENT ON FUNCTION @extschema@.jobq_register(pg_catalog.text, pg_catalog.text, pg_catalog.regprocedure,
                                  pg_catalog.regrole, pg_catalog.int4, pg_catalog.interval,
                                  pg_catalog.interval, pg_catalog.bool) IS
    'Register (or replace) the SQL, PL or C function that runs the jobs of (tube, func_name), as run_as, with its retries, back-off, time limit and whether its result is kept';
COMMENT ON FUNCTION @extschema@.jobq_worker_status() IS
    'One row per jobq process (relay and workers) from shared memory: state, current job, counters and last error; read it through jobq.workers';
COMMENT ON VIEW jobq.workers IS
    'One row per jobq process (relay and workers): pid, state, current job (beanstalkd id and uuid), jobs succeeded and failed, last error';

-- following a job

CREATE FUNCTION @extschema@.jobq_status(id pg_catalog.uuid,
    OUT id pg_catalog.uuid, OUT state pg_catalog.text, OUT tube pg_catalog.text,
    OUT func_name pg_catalog.text, OUT kwargs pg_catalog.jsonb,
    OUT enqueued_at pg_catalog.timestamptz, OUT server pg_catalog.text,
    OUT bs_id pg_catalog.int8, OUT bs_state pg_catalog.text, OUT attempts pg_catalog.int4,
    OUT worker pg_catalog.int4, OUT since pg_catalog.timestamptz,
    OUT finished_at pg_catalog.timestamptz, OUT result pg_catalog.jsonb,
    OUT sqlstate pg_catalog.text, OUT message pg_catalog.text,
    OUT cancelled_by pg_catalog.name)
RETURNS record
AS 'MODULE_PATHNAME', 'jobq_status'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION @extschema@.jobq_status(ids pg_catalog.uuid[],
    OUT id pg_catalog.uuid, OUT state pg_catalog.text, OUT tube pg_catalog.text,
    OUT func_name pg_catalog.text, OUT kwargs pg_catalog.jsonb,
    OUT enqueued_at pg_catalog.timestamptz, OUT server pg_catalog.text,
    OUT bs_id pg_catalog.int8, OUT bs_state pg_catalog.text, OUT attempts pg_catalog.int4,
    OUT worker pg_catalog.int4, OUT since pg_catalog.timestamptz,
    OUT finished_at pg_catalog.timestamptz, OUT result pg_catalog.jsonb,
    OUT sqlstate pg_catalog.text, OUT message pg_catalog.text,
    OUT cancelled_by pg_catalog.name)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'jobq_status_many'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION @extschema@.jobq_wait(id pg_catalog.uuid, timeout pg_catalog.interval,
    OUT id pg_catalog.uuid, OUT state pg_catalog.text, OUT tube pg_catalog.text,
    OUT func_name pg_catalog.text, OUT kwargs pg_catalog.jsonb,
    OUT enqueued_at pg_catalog.timestamptz, OUT server pg_catalog.text,
    OUT bs_id pg_catalog.int8, OUT bs_state pg_catalog.text, OUT attempts pg_catalog.int4,
    OUT worker pg_catalog.int4, OUT since pg_catalog.timestamptz,
    OUT finished_at pg_catalog.timestamptz, OUT result pg_catalog.jsonb,
    OUT sqlstate pg_catalog.text, OUT message pg_catalog.text,
    OUT cancelled_by pg_catalog.name)
RETURNS record
AS 'MODULE_PATHNAME', 'jobq_wait'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION @extschema@.jobq_cancel(id pg_catalog.uuid)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'jobq_cancel'
LANGUAGE C VOLATILE STRICT;

REVOKE ALL ON FUNCTION @extschema@.jobq_status(pg_catalog.uuid), @extschema@.jobq_status(pg_catalog.uuid[]),
                       @extschema@.jobq_wait(pg_catalog.uuid, pg_catalog.interval),
                       @extschema@.jobq_cancel(pg_catalog.uuid)
    FROM PUBLIC;

COMMENT ON FUNCTION @extschema@.jobq_status(pg_catalog.uuid) IS
    'What became of a job: pending, queued, running, done, failed, cancelled or unknown, with where it is and what it left';
COMMENT ON FUNCTION @extschema@.jobq_status(pg_catalog.uuid[]) IS
    'jobq_status of many jobs, a row each, with one round trip per server';
COMMENT ON FUNCTION @extschema@.jobq_wait(pg_catalog.uuid, pg_catalog.interval) IS
    'jobq_status of a job once it is done, failed or cancelled, or when timeout has passed';
COMMENT ON FUNCTION @extschema@.jobq_cancel(pg_catalog.uuid) IS
    'Cancel a job that has not finished: returns the state it was cancelled in (pending, queued or running), or NULL if it had finished or is unknown';
COMMENT ON TABLE jobq.sent IS
    'Where the relay put each job (jobq.track_jobs), kept for jobq.done_retention';
COMMENT ON TABLE jobq.unique_keys IS
    'Unique keys of jobs (@extschema@.jobq_put(..., unique_key => ...)) that are taken';
COMMENT ON COLUMN jobq.handlers.keep_result IS
    'Whether what the handler returns is kept in jobq.done (for jobq_status)';

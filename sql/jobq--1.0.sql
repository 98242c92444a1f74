-- jobq 1.0: tables in schema jobq, functions in the extension's schema.

\echo Use "CREATE EXTENSION jobq" to load this file. \quit

CREATE SCHEMA jobq;

-- handlers: which function runs the jobs of (tube, func_name), as whom
CREATE TABLE jobq.handlers (
    tube          text NOT NULL,
    func_name     text NOT NULL,
    handler       regprocedure,
    library       text,
    symbol        text,
    run_as        regrole NOT NULL,
    max_attempts  integer NOT NULL DEFAULT 3 CHECK (max_attempts OPERATOR(pg_catalog.>=) 1),
    backoff       interval NOT NULL DEFAULT '1 s' CHECK (backoff OPERATOR(pg_catalog.>=) '0 s'),
    timeout       interval CHECK (timeout OPERATOR(pg_catalog.>) '0 s'),
    registered_by regrole NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (tube, func_name),
    CHECK ((handler IS NULL) OPERATOR(pg_catalog.=) (library IS NOT NULL AND symbol IS NOT NULL))
);

-- outbox: jobs of transactions, sent by the relay after commit
CREATE TABLE jobq.outbox (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         uuid NOT NULL,
    tube       text NOT NULL,
    func_name  text NOT NULL,
    body       bytea NOT NULL,
    priority   bigint NOT NULL,
    delay      bigint NOT NULL,
    ttr        bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- failed: jobs that ran out of attempts, were rejected, or could not be sent
CREATE TABLE jobq.failed (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     uuid,
    bs_id      bigint,
    tube       text,
    func_name  text,
    kwargs     jsonb,
    raw_body   text,
    sqlstate   text NOT NULL,
    message    text NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    priority   bigint,
    ttr        bigint,
    source     text NOT NULL CHECK (source OPERATOR(pg_catalog.=) ANY (ARRAY['worker', 'relay'])),
    failed_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX ON jobq.failed (tube);

-- done: ids of jobs whose handler committed, for exactly-once effects
CREATE TABLE jobq.done (
    id      uuid PRIMARY KEY,
    done_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX ON jobq.done (done_at);

REVOKE ALL ON ALL TABLES IN SCHEMA jobq FROM PUBLIC;

CREATE VIEW jobq.outbox_backlog AS
    SELECT tube, pg_catalog.count(*) AS jobs, pg_catalog.min(created_at) AS oldest
      FROM jobq.outbox GROUP BY tube;

-- producing

CREATE FUNCTION jobq_put_now(tube text, func_name text, kwargs jsonb DEFAULT '{}',
                             priority bigint DEFAULT NULL, delay interval DEFAULT NULL,
                             ttr interval DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'jobq_put_now'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION jobq_put(tube text, func_name text, kwargs jsonb DEFAULT '{}',
                         priority bigint DEFAULT NULL, delay interval DEFAULT NULL,
                         ttr interval DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'jobq_put'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION jobq_enqueue()
RETURNS trigger
AS 'MODULE_PATHNAME', 'jobq_enqueue'
LANGUAGE C;

-- introspection and administration

CREATE FUNCTION jobq_stats(OUT name text, OUT value text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'jobq_stats'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_tubes(OUT tube text, OUT ready bigint, OUT reserved bigint,
                           OUT delayed bigint, OUT buried bigint, OUT urgent bigint,
                           OUT total bigint, OUT using_ bigint, OUT watching bigint,
                           OUT waiting bigint, OUT pause interval,
                           OUT pause_time_left interval)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'jobq_tubes'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_job(job_id bigint, OUT id bigint, OUT tube text, OUT state text,
                         OUT priority bigint, OUT age bigint, OUT delay bigint,
                         OUT ttr bigint, OUT time_left bigint, OUT reserves bigint,
                         OUT timeouts bigint, OUT releases bigint, OUT buries bigint,
                         OUT kicks bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'jobq_job'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_peek(job_id bigint, OUT id bigint, OUT body jsonb, OUT raw bytea)
RETURNS record
AS 'MODULE_PATHNAME', 'jobq_peek'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_peek_ready(tube text, OUT id bigint, OUT body jsonb, OUT raw bytea)
RETURNS record
AS 'MODULE_PATHNAME', 'jobq_peek_ready'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_peek_delayed(tube text, OUT id bigint, OUT body jsonb, OUT raw bytea)
RETURNS record
AS 'MODULE_PATHNAME', 'jobq_peek_delayed'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_peek_buried(tube text, OUT id bigint, OUT body jsonb, OUT raw bytea)
RETURNS record
AS 'MODULE_PATHNAME', 'jobq_peek_buried'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_kick(tube text, bound bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'jobq_kick'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_kick_job(job_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jobq_kick_job'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_delete(job_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jobq_delete'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_pause_tube(tube text, duration interval)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jobq_pause_tube'
LANGUAGE C VOLATILE STRICT;

-- handlers

CREATE FUNCTION jobq_register(tube text, func_name text, handler regprocedure DEFAULT NULL,
                              run_as regrole DEFAULT NULL, max_attempts integer DEFAULT 3,
                              backoff interval DEFAULT '1 s', timeout interval DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'jobq_register'
LANGUAGE C VOLATILE;

CREATE FUNCTION jobq_register_c(tube text, func_name text, library text, symbol text,
                                run_as regrole DEFAULT NULL, max_attempts integer DEFAULT 3,
                                backoff interval DEFAULT '1 s', timeout interval DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'jobq_register_c'
LANGUAGE C VOLATILE;

CREATE FUNCTION jobq_unregister(tube text, func_name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jobq_unregister'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_retry_failed(failed_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'jobq_retry_failed'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_retry_failed(tube text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'jobq_retry_failed_tube'
LANGUAGE C VOLATILE STRICT;

-- workers

CREATE FUNCTION jobq_worker_status(OUT worker integer, OUT kind text, OUT pid integer,
                                   OUT state text, OUT tube text, OUT func_name text,
                                   OUT job_id bigint, OUT since timestamptz,
                                   OUT succeeded bigint, OUT failed bigint,
                                   OUT last_error text, OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'jobq_worker_status'
LANGUAGE C VOLATILE STRICT;

CREATE VIEW jobq.workers AS SELECT * FROM jobq_worker_status();

-- The privilege model: everything that reads or changes the queue is for
-- granted roles only (README, "Security model"). jobq_put, the trigger and
-- the registry functions write jobq's tables with their owner's rights, so
-- callers need EXECUTE, never rights on jobq.*.
REVOKE ALL ON FUNCTION
    jobq_put(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.int8,
             pg_catalog.interval, pg_catalog.interval),
    jobq_put_now(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.int8,
                 pg_catalog.interval, pg_catalog.interval),
    jobq_enqueue(),
    jobq_stats(),
    jobq_tubes(),
    jobq_job(pg_catalog.int8),
    jobq_peek(pg_catalog.int8),
    jobq_peek_ready(pg_catalog.text),
    jobq_peek_delayed(pg_catalog.text),
    jobq_peek_buried(pg_catalog.text),
    jobq_kick(pg_catalog.text, pg_catalog.int8),
    jobq_kick_job(pg_catalog.int8),
    jobq_delete(pg_catalog.int8),
    jobq_pause_tube(pg_catalog.text, pg_catalog.interval),
    jobq_register(pg_catalog.text, pg_catalog.text, pg_catalog.regprocedure,
                  pg_catalog.regrole, pg_catalog.int4, pg_catalog.interval,
                  pg_catalog.interval),
    jobq_register_c(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text,
                    pg_catalog.regrole, pg_catalog.int4, pg_catalog.interval,
                    pg_catalog.interval),
    jobq_unregister(pg_catalog.text, pg_catalog.text),
    jobq_retry_failed(pg_catalog.int8),
    jobq_retry_failed(pg_catalog.text),
    jobq_worker_status()
    FROM PUBLIC;

-- jobq.failed holds other roles' kwargs and error messages: grant SELECT on
-- it to administrators only.
REVOKE ALL ON TABLE jobq.handlers, jobq.outbox, jobq.failed, jobq.done,
                    jobq.workers, jobq.outbox_backlog
    FROM PUBLIC;

/* jobq 1.2 -> 1.3: a pool of beanstalkd servers (README, "Scaling out") */
\echo Use "ALTER EXTENSION jobq UPDATE TO '1.3'" to load this file. \quit

-- jobq.servers may list several servers.  Job ids are per server, so the
-- functions that take one get a form that also takes the server, and
-- jobq.failed records the server of the buried copy; jobq_stats() and
-- jobq_tubes() keep their columns and sum over the servers, and
-- jobq_server_stats() / jobq_server_tubes() show each server.  Nothing
-- existing changes shape: grants on the 1.2 functions stay.

ALTER TABLE jobq.failed ADD COLUMN server pg_catalog.text;
COMMENT ON COLUMN jobq.failed.server IS
    'The beanstalkd server (as jobq.servers spells it) that bs_id is an id of';

CREATE FUNCTION jobq_put_now_at(tube pg_catalog.text, func_name pg_catalog.text,
                                kwargs pg_catalog.jsonb DEFAULT '{}',
                                priority pg_catalog.int8 DEFAULT NULL,
                                delay pg_catalog.interval DEFAULT NULL,
                                ttr pg_catalog.interval DEFAULT NULL,
                                OUT server pg_catalog.text, OUT id pg_catalog.int8)
RETURNS pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_put_now_at'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION jobq_server_stats(OUT server pg_catalog.text, OUT name pg_catalog.text,
                                  OUT value pg_catalog.text)
RETURNS SETOF pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_server_stats'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_server_tubes(OUT server pg_catalog.text, OUT tube pg_catalog.text,
                                  OUT ready pg_catalog.int8,
                                  OUT reserved pg_catalog.int8, OUT delayed pg_catalog.int8,
                                  OUT buried pg_catalog.int8, OUT urgent pg_catalog.int8,
                                  OUT total pg_catalog.int8, OUT "using" pg_catalog.int8,
                                  OUT watching pg_catalog.int8, OUT waiting pg_catalog.int8,
                                  OUT pause pg_catalog.interval,
                                  OUT pause_time_left pg_catalog.interval)
RETURNS SETOF pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_server_tubes'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_job(job_id pg_catalog.int8, server pg_catalog.text,
                         OUT id pg_catalog.int8, OUT tube pg_catalog.text,
                         OUT state pg_catalog.text, OUT priority pg_catalog.int8,
                         OUT age pg_catalog.int8, OUT delay pg_catalog.int8,
                         OUT ttr pg_catalog.int8, OUT time_left pg_catalog.int8,
                         OUT reserves pg_catalog.int8, OUT timeouts pg_catalog.int8,
                         OUT releases pg_catalog.int8, OUT buries pg_catalog.int8,
                         OUT kicks pg_catalog.int8)
RETURNS pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_job'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_peek(job_id pg_catalog.int8, server pg_catalog.text,
                          OUT id pg_catalog.int8, OUT body pg_catalog.jsonb,
                          OUT raw pg_catalog.bytea)
RETURNS pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_peek'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_peek_ready(tube pg_catalog.text, server pg_catalog.text,
                                OUT id pg_catalog.int8, OUT body pg_catalog.jsonb,
                                OUT raw pg_catalog.bytea)
RETURNS pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_peek_ready'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_peek_delayed(tube pg_catalog.text, server pg_catalog.text,
                                  OUT id pg_catalog.int8, OUT body pg_catalog.jsonb,
                                  OUT raw pg_catalog.bytea)
RETURNS pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_peek_delayed'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_peek_buried(tube pg_catalog.text, server pg_catalog.text,
                                 OUT id pg_catalog.int8, OUT body pg_catalog.jsonb,
                                 OUT raw pg_catalog.bytea)
RETURNS pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_peek_buried'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_kick_job(job_id pg_catalog.int8, server pg_catalog.text)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'jobq_kick_job'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_delete(job_id pg_catalog.int8, server pg_catalog.text)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'jobq_delete'
LANGUAGE C VOLATILE STRICT;

-- new objects: EXECUTE is for granted roles, as for the 1.0 forms
REVOKE ALL ON FUNCTION
    jobq_put_now_at(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.int8,
                    pg_catalog.interval, pg_catalog.interval),
    jobq_server_stats(),
    jobq_server_tubes(),
    jobq_job(pg_catalog.int8, pg_catalog.text),
    jobq_peek(pg_catalog.int8, pg_catalog.text),
    jobq_peek_ready(pg_catalog.text, pg_catalog.text),
    jobq_peek_delayed(pg_catalog.text, pg_catalog.text),
    jobq_peek_buried(pg_catalog.text, pg_catalog.text),
    jobq_kick_job(pg_catalog.int8, pg_catalog.text),
    jobq_delete(pg_catalog.int8, pg_catalog.text)
    FROM PUBLIC;


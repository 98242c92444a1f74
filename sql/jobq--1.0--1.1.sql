-- jobq 1.0 -> 1.1: the security model.
--
-- * jobq.handlers.producers: roles granted to enqueue for a registration
--   (jobq_grant / jobq_revoke); without a grant, only members of run_as may.
-- * A statement trigger on jobq.handlers tells every backend's cache of
--   registrations that they changed, whoever changed them.
-- * jobq_tubes(): the OUT column using_ is now "using".
-- * An index on jobq.failed (failed_at), for pruning.
-- * COMMENT ON every object, so that \df+ and \d+ explain jobq.
-- No GRANT or REVOKE touches a 1.0 object here: inside ALTER EXTENSION it
-- would record the object's whole ACL, an administrator's grants included,
-- as the extension's initial privileges, which pg_dump then leaves out.
-- Everything here is schema-qualified or resolved through pg_catalog, which
-- comes first: it runs as a superuser.

\echo Use "ALTER EXTENSION jobq UPDATE TO '1.1'" to load this file. \quit

ALTER TABLE jobq.handlers
    ADD COLUMN producers pg_catalog.regrole[] NOT NULL DEFAULT '{}';

CREATE FUNCTION jobq_grant(tube pg_catalog.text, func_name pg_catalog.text,
                           role pg_catalog.regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'jobq_grant'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_revoke(tube pg_catalog.text, func_name pg_catalog.text,
                            role pg_catalog.regrole)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'jobq_revoke'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION jobq_handlers_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'jobq_handlers_changed'
LANGUAGE C;

CREATE TRIGGER handlers_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jobq.handlers
    FOR EACH STATEMENT EXECUTE FUNCTION jobq_handlers_changed();

-- jobq.failed is pruned after jobq.failed_retention, oldest first
CREATE INDEX failed_failed_at_idx ON jobq.failed (failed_at);

-- jobq_tubes(): the OUT column using_ becomes "using" (beanstalkd's
-- current-using).  An OUT column is part of the result type, so the function
-- is created anew; grants made on the 1.0 function do not carry over
-- (copying them here would record them as the extension's initial
-- privileges, which pg_dump omits): grant EXECUTE again after the update.
DROP FUNCTION jobq_tubes();

CREATE FUNCTION jobq_tubes(OUT tube pg_catalog.text, OUT ready pg_catalog.int8,
                           OUT reserved pg_catalog.int8, OUT delayed pg_catalog.int8,
                           OUT buried pg_catalog.int8, OUT urgent pg_catalog.int8,
                           OUT total pg_catalog.int8, OUT "using" pg_catalog.int8,
                           OUT watching pg_catalog.int8, OUT waiting pg_catalog.int8,
                           OUT pause pg_catalog.interval,
                           OUT pause_time_left pg_catalog.interval)
RETURNS SETOF pg_catalog.record
AS 'MODULE_PATHNAME', 'jobq_tubes'
LANGUAGE C VOLATILE STRICT;

-- new objects only (see above): EXECUTE is for granted roles
REVOKE ALL ON FUNCTION jobq_tubes(),
                       jobq_grant(pg_catalog.text, pg_catalog.text, pg_catalog.regrole),
                       jobq_revoke(pg_catalog.text, pg_catalog.text, pg_catalog.regrole),
                       jobq_handlers_changed()
    FROM PUBLIC;


-- What everything is for, for \df+ and \d+.
COMMENT ON SCHEMA jobq IS
    'jobq''s tables and views: registered handlers, the outbox, failed and completed jobs, and the workers';

COMMENT ON FUNCTION jobq_put(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb,
                             pg_catalog.int8, pg_catalog.interval, pg_catalog.interval) IS
    'Enqueue a job transactionally: it is written to jobq.outbox and reaches beanstalkd if and after the caller commits; returns the job''s uuid';
COMMENT ON FUNCTION jobq_put_now(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb,
                                 pg_catalog.int8, pg_catalog.interval, pg_catalog.interval) IS
    'Put a job into beanstalkd at once, not transactionally; returns beanstalkd''s job id';
COMMENT ON FUNCTION jobq_enqueue() IS
    'FOR EACH ROW trigger that enqueues one job per row through the outbox: jobq_enqueue(tube, func_name [, options])';
COMMENT ON FUNCTION jobq_stats() IS
    'The beanstalkd server''s stats, as (name, value) rows';
COMMENT ON FUNCTION jobq_tubes() IS
    'One row per beanstalkd tube with its job counts, connections and pause';
COMMENT ON FUNCTION jobq_job(pg_catalog.int8) IS
    'beanstalkd''s stats-job for one job id: tube, state, priority, times and counters; NULL if there is no such job';
COMMENT ON FUNCTION jobq_peek(pg_catalog.int8) IS
    'The body of a job by beanstalkd id, as jsonb (NULL if not JSON) and raw bytes';
COMMENT ON FUNCTION jobq_peek_ready(pg_catalog.text) IS
    'The next ready job of a tube: id, body as jsonb (NULL if not JSON) and raw bytes';
COMMENT ON FUNCTION jobq_peek_delayed(pg_catalog.text) IS
    'The delayed job of a tube that is ready soonest: id, body as jsonb (NULL if not JSON) and raw bytes';
COMMENT ON FUNCTION jobq_peek_buried(pg_catalog.text) IS
    'The next buried job of a tube: id, body as jsonb (NULL if not JSON) and raw bytes';
COMMENT ON FUNCTION jobq_kick(pg_catalog.text, pg_catalog.int8) IS
    'Move up to bound buried (or else delayed) jobs of a tube back to ready; returns how many';
COMMENT ON FUNCTION jobq_kick_job(pg_catalog.int8) IS
    'Move one buried or delayed job back to ready; false if there is no such job';
COMMENT ON FUNCTION jobq_delete(pg_catalog.int8) IS
    'Delete a job from beanstalkd by id; false if there is no such job';
COMMENT ON FUNCTION jobq_pause_tube(pg_catalog.text, pg_catalog.interval) IS
    'Stop handing out a tube''s jobs for the given duration';
COMMENT ON FUNCTION jobq_register(pg_catalog.text, pg_catalog.text, pg_catalog.regprocedure,
                                  pg_catalog.regrole, pg_catalog.int4, pg_catalog.interval,
                                  pg_catalog.interval) IS
    'Register (or replace) the SQL, PL or C function that runs the jobs of (tube, func_name), as run_as, with its retries, back-off and time limit';
COMMENT ON FUNCTION jobq_register_c(pg_catalog.text, pg_catalog.text, pg_catalog.text,
                                    pg_catalog.text, pg_catalog.regrole, pg_catalog.int4,
                                    pg_catalog.interval, pg_catalog.interval) IS
    'Register a C function not declared in SQL, by library and symbol, as the handler of (tube, func_name); superuser only';
COMMENT ON FUNCTION jobq_unregister(pg_catalog.text, pg_catalog.text) IS
    'Remove the registration of (tube, func_name); true if there was one';
COMMENT ON FUNCTION jobq_grant(pg_catalog.text, pg_catalog.text, pg_catalog.regrole) IS
    'Let members of a role enqueue jobs for the registration of (tube, func_name); for members of its run_as';
COMMENT ON FUNCTION jobq_revoke(pg_catalog.text, pg_catalog.text, pg_catalog.regrole) IS
    'Withdraw a role''s right, given by jobq_grant, to enqueue jobs for (tube, func_name); true if it had one';
COMMENT ON FUNCTION jobq_retry_failed(pg_catalog.int8) IS
    'Put one row of jobq.failed back into its tube through the outbox, keeping its uuid, and delete the row and the buried original';
COMMENT ON FUNCTION jobq_retry_failed(pg_catalog.text) IS
    'Put every row of jobq.failed of a tube back into the tube through the outbox, keeping their uuids, and delete the rows and the buried originals; returns how many';
COMMENT ON FUNCTION jobq_worker_status() IS
    'One row per jobq process (relay and workers) from shared memory: state, current job, counters and last error; read it through jobq.workers';
COMMENT ON FUNCTION jobq_handlers_changed() IS
    'Statement trigger on jobq.handlers that tells every backend''s cache of registrations that they changed';

COMMENT ON TRIGGER handlers_changed ON jobq.handlers IS
    'Invalidates every backend''s cache of registrations, whoever changed them';

COMMENT ON TABLE jobq.handlers IS
    'Registered handlers: which function runs the jobs of (tube, func_name), as whom, with what retries and limits, and who may enqueue for it';
COMMENT ON COLUMN jobq.handlers.handler IS
    'The function called with the job''s kwargs; NULL for a C handler registered by library and symbol';
COMMENT ON COLUMN jobq.handlers.library IS
    'The shared library of a C handler registered with jobq_register_c';
COMMENT ON COLUMN jobq.handlers.symbol IS
    'The C symbol of a handler registered with jobq_register_c';
COMMENT ON COLUMN jobq.handlers.run_as IS
    'The role the handler runs as; only its members may replace, remove or grant the registration, or enqueue without a grant';
COMMENT ON COLUMN jobq.handlers.max_attempts IS
    'How many times a job is run before it is buried and recorded in jobq.failed';
COMMENT ON COLUMN jobq.handlers.backoff IS
    'Delay before the first retry, doubled at every further attempt';
COMMENT ON COLUMN jobq.handlers.timeout IS
    'The handler''s time limit; NULL means just under the job''s ttr, at most jobq.max_handler_time';
COMMENT ON COLUMN jobq.handlers.registered_by IS
    'The role that registered the handler';
COMMENT ON COLUMN jobq.handlers.registered_at IS
    'When the handler was registered; workers run only jobs put after it, older ones go to jobq.failed with 42501';
COMMENT ON COLUMN jobq.handlers.producers IS
    'Roles whose members may enqueue jobs for this registration besides members of run_as (jobq_grant, jobq_revoke)';

COMMENT ON TABLE jobq.outbox IS
    'Jobs of transactions (jobq_put, jobq_enqueue), sent to beanstalkd by the relay after commit and deleted';

COMMENT ON TABLE jobq.failed IS
    'Jobs that ran out of attempts, were rejected or could not be sent, with their error; holds other roles'' kwargs, so for administrators only';
COMMENT ON COLUMN jobq.failed.id IS
    'The row''s id, which jobq_retry_failed(failed_id) takes';
COMMENT ON COLUMN jobq.failed.job_id IS
    'The job''s uuid, kept when it is retried; NULL for a body without one';
COMMENT ON COLUMN jobq.failed.bs_id IS
    'beanstalkd''s id of the buried job; NULL if it never reached beanstalkd';
COMMENT ON COLUMN jobq.failed.kwargs IS
    'The job''s keyword arguments, as decoded from its body';
COMMENT ON COLUMN jobq.failed.raw_body IS
    'For a body that could not be decoded, its first 2 kB with unprintable bytes replaced by ?';
COMMENT ON COLUMN jobq.failed.sqlstate IS
    'The SQLSTATE of the error that failed the job';
COMMENT ON COLUMN jobq.failed.message IS
    'The message of the error that failed the job';
COMMENT ON COLUMN jobq.failed.attempts IS
    'How many times the job was run';
COMMENT ON COLUMN jobq.failed.priority IS
    'The job''s beanstalkd priority, which jobq_retry_failed puts it back with';
COMMENT ON COLUMN jobq.failed.ttr IS
    'The job''s time-to-run in seconds, which jobq_retry_failed puts it back with';
COMMENT ON COLUMN jobq.failed.source IS
    'Who recorded the failure: worker (running the job) or relay (sending it)';
COMMENT ON COLUMN jobq.failed.failed_at IS
    'When the failure was recorded; rows older than jobq.failed_retention are pruned';

COMMENT ON TABLE jobq.done IS
    'Uuids of jobs whose handler committed, so that a second delivery runs nothing; kept for jobq.done_retention';

COMMENT ON VIEW jobq.workers IS
    'One row per jobq process (relay and workers): pid, state, current job, jobs succeeded and failed, last error';
COMMENT ON VIEW jobq.outbox_backlog IS
    'Jobs waiting in the outbox for the relay, per tube, and the oldest';

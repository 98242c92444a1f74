-- jobq 1.0 -> 1.1: the security model.
--
-- * jobq.handlers.producers: roles granted to enqueue for a registration
--   (jobq_grant / jobq_revoke); without a grant, only members of run_as may.
-- * A statement trigger on jobq.handlers tells every backend's cache of
--   registrations that they changed, whoever changed them.
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

REVOKE ALL ON FUNCTION jobq_grant(pg_catalog.text, pg_catalog.text, pg_catalog.regrole),
                       jobq_revoke(pg_catalog.text, pg_catalog.text, pg_catalog.regrole),
                       jobq_handlers_changed()
    FROM PUBLIC;

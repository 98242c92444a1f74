/* jobq 1.3 -> 1.4: backups and major-version upgrades keep jobq's data (README, "Backups and upgrades") */
\echo Use "ALTER EXTENSION jobq UPDATE TO '1.4'" to load this file. \quit

-- regprocedure and regrole values are oids: pg_upgrade refuses any table
-- with such a column, and pg_dump/pg_restore gives every function and role
-- a new oid.  jobq.handlers now names them: handler is the function's
-- signature as regprocedure prints it with search_path pinned (qualified
-- unless in pg_catalog: "public.send_mail(jsonb)"), run_as, registered_by
-- and producers are role names.  jobq resolves them when it uses them: a
-- function or role dropped or renamed after registration stops its jobs
-- (42883, 42704) until it is registered again.  Grants on the tables and
-- functions are untouched.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

ALTER TABLE jobq.handlers
    ALTER COLUMN handler TYPE pg_catalog.text USING handler::pg_catalog.text,
    ALTER COLUMN run_as TYPE pg_catalog.name
        USING pg_catalog.pg_get_userbyid(run_as::pg_catalog.oid),
    ALTER COLUMN registered_by TYPE pg_catalog.name
        USING pg_catalog.pg_get_userbyid(registered_by::pg_catalog.oid);

-- an array's elements cannot be converted in ALTER COLUMN (no subquery there)
ALTER TABLE jobq.handlers RENAME COLUMN producers TO producers_1_3;
ALTER TABLE jobq.handlers ADD COLUMN producers pg_catalog.name[] NOT NULL DEFAULT '{}';
-- a role dropped since is no name: a producer that is gone is left out, and
-- a run_as or registered_by that is gone becomes "pg_dropped_role", a name
-- CREATE ROLE refuses (pg_ is reserved), so no new role inherits its place
UPDATE jobq.handlers
   SET producers = ARRAY(SELECT pg_catalog.pg_get_userbyid(p::pg_catalog.oid)
                           FROM pg_catalog.unnest(producers_1_3) WITH ORDINALITY AS u(p, i)
                          WHERE EXISTS (SELECT FROM pg_catalog.pg_roles r
                                         WHERE r.oid OPERATOR(pg_catalog.=) p::pg_catalog.oid)
                          ORDER BY i);
ALTER TABLE jobq.handlers DROP COLUMN producers_1_3;
UPDATE jobq.handlers SET run_as = 'pg_dropped_role'
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) run_as);
UPDATE jobq.handlers SET registered_by = 'pg_dropped_role'
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) registered_by);

COMMENT ON COLUMN jobq.handlers.handler IS
    'The handler function''s signature (schema.name(argtypes)), resolved when a job runs; NULL for a library/symbol handler';
COMMENT ON COLUMN jobq.handlers.run_as IS
    'The role the handler runs as, by name';
COMMENT ON COLUMN jobq.handlers.registered_by IS
    'The role that registered the handler, by name';
COMMENT ON COLUMN jobq.handlers.producers IS
    'Roles, by name, whose members may enqueue jobs for this registration besides members of run_as (jobq_grant)';

-- pg_dump leaves an extension's tables out, rows included, unless they are
-- marked as holding users' data: registrations and grants, the jobs
-- committed but not yet sent, failed jobs, and the ids of completed jobs
-- (without which a second delivery of a job that ran before a dump would
-- run again after the restore), with the sequences of their ids
SELECT pg_catalog.pg_extension_config_dump('jobq.handlers', '');
SELECT pg_catalog.pg_extension_config_dump('jobq.outbox_packs', '');
SELECT pg_catalog.pg_extension_config_dump('jobq.failed', '');
SELECT pg_catalog.pg_extension_config_dump('jobq.done', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('jobq.outbox_packs', 'seq'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('jobq.failed', 'id'), '');

SELECT jobq.check_database();

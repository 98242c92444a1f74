# Upgrade path (issue 8): jobq 1.0 installed with registrations, a failed row
# and outbox rows the relay cannot send; ALTER EXTENSION jobq UPDATE keeps
# them all, the outbox is delivered and run once beanstalkd is back, and a
# 1.1 feature (jobq_grant) works.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $T0 = time;
my $port = bs_port(70);
my $bs = bs_start($port);

my $node = init_node('upgrade');
jobq_conf($node, $port);
$node->start;
$node->safe_psql('postgres', q{CREATE EXTENSION jobq VERSION '1.0'});
$node->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
ok(wait_workers($node, 60), 'jobq 1.0 installed, workers up');
is(sql_ok($node, q{SELECT extversion FROM pg_extension WHERE extname = 'jobq'}), '1.0', 'extension at 1.0');

sub as_role
{
	my ($role, $sql) = @_;
	return query_as($node, $role, $sql, timeout => 60);
}

sql_ok($node, q{
CREATE ROLE al LOGIN; CREATE ROLE bob LOGIN;
GRANT CREATE ON SCHEMA public TO al;
CREATE TABLE public.effects (tag text, who name DEFAULT current_user, kw jsonb);
GRANT INSERT, SELECT ON public.effects TO PUBLIC;
CREATE FUNCTION public.u1(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('u1', kw)$$;
});
for my $r (qw(al bob))
{
	sql_ok($node, qq{
DO \$\$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT oid::regprocedure FROM pg_proc
            WHERE proname IN ('jobq_put', 'jobq_put_now', 'jobq_register', 'jobq_unregister')
              AND pronamespace = 'public'::regnamespace
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO $r', f);
  END LOOP;
END
\$\$});
}

# registrations through the API: the new library (installed, not yet
# ALTER EXTENSION UPDATEd) works against the 1.0 schema
sub register
{
	my ($role, $sql) = @_;
	my ($rc, $out, $err) = as_role($role, $sql);
	ok($rc == 0, "on the 1.0 schema: $sql") or diag($err);
}
register(undef, q{SELECT jobq_register('tu', 'u1')});
as_role('al', q{CREATE FUNCTION public.ua(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('ua', kw)$$;});
register('al', q{SELECT jobq_register('tu_al', 'ua', max_attempts => 5, backoff => '2 s')});
my $handlers = sql_ok($node,
	q{SELECT string_agg(concat_ws(' ', tube, func_name, handler, run_as, max_attempts, backoff), ',' ORDER BY tube)
	  FROM jobq.handlers});
is($handlers, 'tu u1 u1(jsonb) ' . sql_ok($node, 'SELECT current_user') . ' 3 00:00:01,tu_al ua ua(jsonb) al 5 00:00:02',
	'two registrations in 1.0');

my ($rc0, $out0, $err0, $rc, $out, $err);

# a failed row
sql_ok($node, q{
INSERT INTO jobq.failed (job_id, bs_id, tube, func_name, kwargs, sqlstate, message, attempts, source)
VALUES (gen_random_uuid(), 4242, 'tu', 'u1', '{"n": "failed"}', '22023', 'failed in 1.0', 3, 'worker')});

# the new library's relay sends rows of the 1.0 table (one row per job)
($rc0, $out0, $err0) = as_role(undef, q{SELECT jobq_put('tu', 'u1', '{"n": "pre"}')});
ok($rc0 == 0, 'jobq_put on the 1.0 schema, beanstalkd up') or diag($err0);
ok(wait_for($node, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'u1' AND kw->>'n' = 'pre')}, 30),
	'its job was sent from the 1.0 table and ran');

# outbox rows the relay cannot send: beanstalkd is down
bs_stop($bs);
ok(bs_refuses($port), 'beanstalkd is down');
($rc, $out, $err) = as_role(undef,
	q{SELECT jobq_put('tu', 'u1', jsonb_build_object('n', i)) FROM generate_series(1, 5) i;
	  SELECT jobq_put('tu_al', 'ua', '{"n": "al"}');});
ok($rc == 0, 'jobq_put works on the 1.0 schema') or diag($err);
ok(wait_for($node, q{SELECT state = 'waiting for beanstalkd' FROM jobq.workers WHERE kind = 'relay'}, 30),
	'the relay tried, and waits for beanstalkd');
is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox'), '6', 'six rows wait in the outbox');
my $waiting = q{SELECT string_agg(concat_ws(' ', id, tube, func_name, encode(body, 'escape'), priority, delay, ttr, created_at),
                                  ',' ORDER BY seq) FROM jobq.outbox};
my $waiting_10 = sql_ok($node, $waiting);

# the update
($rc, $out, $err) = as_role(undef, 'ALTER EXTENSION jobq UPDATE');
ok($rc == 0, 'ALTER EXTENSION jobq UPDATE') or diag($err);
note("ALTER EXTENSION: $err") if $err;
is(sql_ok($node, q{SELECT extversion FROM pg_extension WHERE extname = 'jobq'}), '1.5', 'extension at 1.5');
is(sql_ok($node, q{SELECT string_agg(p.oid::regprocedure::text, ',' ORDER BY 1)
                     FROM pg_proc p WHERE p.proname IN ('jobq_job', 'jobq_delete')
                      AND p.pronamespace = 'public'::regnamespace}),
	'jobq_delete(bigint),jobq_delete(bigint,text),jobq_job(bigint),jobq_job(bigint,text)',
	'1.3: the functions that take a job id also take the server');
is(sql_ok($node, q{SELECT count(*) FROM jobq.failed WHERE server IS NULL}), '1',
	'1.3: jobq.failed has a server column, NULL for the old row');
(my $by_name = $handlers) =~ s/ (u1|ua)\(jsonb\)/ public.$1(jsonb)/g;
is(sql_ok($node,
		q{SELECT string_agg(concat_ws(' ', tube, func_name, handler, run_as, max_attempts, backoff), ',' ORDER BY tube)
	  FROM jobq.handlers}), $by_name, 'the registrations are kept, naming their function (1.4)');
is(sql_ok($node, q{SELECT string_agg(format_type(atttypid, NULL), ',' ORDER BY attname) FROM pg_attribute
                   WHERE attrelid = 'jobq.handlers'::regclass AND attname IN ('handler', 'run_as', 'registered_by', 'producers')}),
	'text,name[],name,name', '1.4: no reg* columns in jobq.handlers');
is(sql_ok($node, q{SELECT concat_ws(' ', bs_id, tube, func_name, kwargs->>'n', sqlstate, message, attempts, source)
                  FROM jobq.failed}),
	'4242 tu u1 failed 22023 failed in 1.0 3 worker', 'the failed row is kept');
is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox_packs'), '6', 'the outbox rows are kept, as six packs of one job');
is(sql_ok($node, $waiting), $waiting_10, 'the view jobq.outbox shows them as they were, in the same order');
is(sql_ok($node, q{SELECT string_agg(p.parameter_name, ',' ORDER BY p.ordinal_position)
                     FROM information_schema.parameters p
                     JOIN information_schema.routines r USING (specific_schema, specific_name)
                    WHERE r.routine_name = 'jobq_tubes'}),
	'tube,ready,reserved,delayed,buried,urgent,total,using,watching,waiting,pause,pause_time_left',
	'jobq_tubes() has its column "using" (was using_)');

# beanstalkd back: the outbox is delivered and runs
$bs = bs_start($port);
ok(wait_for($node, q{SELECT (SELECT count(*) FROM public.effects WHERE tag = 'u1' AND kw->>'n' <> 'pre') = 5
	AND EXISTS (SELECT FROM public.effects WHERE tag = 'ua' AND who = 'al')}, 60),
	'the outbox rows were delivered and ran (ua as al)');
is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox'), '0', 'the outbox is empty');

# 1.5 on the updated schema: unique keys, a job's status, jobq_wait
my ($life, $life2) = split /\n/, sql_ok($node, q{BEGIN;
SELECT jobq_put('tu', 'u1', '{"n": "life"}', unique_key => 'life');
SELECT jobq_put('tu', 'u1', '{"n": "life2"}', unique_key => 'life');
COMMIT;});
is($life2, $life, '1.5: a unique put after the update returns the holder');
is(sql_ok($node, "SELECT state FROM jobq_wait('$life', '30 s')"), 'done', '1.5: jobq_wait sees the job done');
is(sql_ok($node, q{SELECT count(*) FROM public.effects WHERE kw->>'n' LIKE 'life%'}), '1', '1.5: it ran once');
is(sql_ok($node, q{SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a
                   WHERE a.attrelid = 'jobq.workers'::regclass AND a.attnum > 10}),
	'last_error,last_error_at,job_uuid', '1.5: jobq.workers has job_uuid');

# the failed row can be retried
$node->safe_psql('postgres', q{SELECT jobq_retry_failed('tu'::text)});
ok(wait_for($node, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'u1' AND kw->>'n' = 'failed')}, 30),
	'the 1.0 failed row is retried and runs');

# a 1.1 feature: producer grants
sql_ok($node, q{
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT oid::regprocedure FROM pg_proc
            WHERE proname IN ('jobq_grant', 'jobq_revoke') AND pronamespace = 'public'::regnamespace
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO al', f);
  END LOOP;
END
$$});
($rc, $out, $err) = as_role('bob', q{SELECT jobq_put('tu_al', 'ua', '{"n": "bob-before"}')});
like($rc == 0 ? 'success' : $err, qr/42501/, 'bob may not enqueue for al\'s 1.0 registration');
($rc, $out, $err) = as_role('al', q{SELECT jobq_grant('tu_al', 'ua', 'bob')});
ok($rc == 0, 'al grants bob (jobq_grant)') or diag($err);
is(sql_ok($node, q{SELECT 'bob' = ANY (producers) FROM jobq.handlers WHERE tube = 'tu_al'}), 't',
	'jobq.handlers.producers shows it')
  if $rc == 0;
($rc, $out, $err) = as_role('bob', q{SELECT jobq_put('tu_al', 'ua', '{"n": "bob"}')});
ok($rc == 0, 'bob may enqueue now') or diag($err);
ok(wait_for($node, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'ua' AND kw->>'n' = 'bob' AND who = 'al')}, 20),
	'bob\'s job runs as al');

$node->stop('fast');

# without shared_preload_libraries: no workers, but the extension installs
# and jobq_put_now and the admin functions work (the library used to define
# PGC_POSTMASTER settings when a backend loaded it, a FATAL error)
my $plain = init_node('no_preload');
$plain->append_conf('postgresql.conf', "jobq.servers = '127.0.0.1:$port'\n");
$plain->start;
my ($prc, $pout, $perr) = (0, '', '');
$prc = $plain->psql('postgres', q{CREATE EXTENSION jobq;
SELECT jobq_put_now('t_plain', 'f', '{"n": 1}') > 0;
SELECT ready FROM jobq_tubes() WHERE tube = 't_plain';},
	stdout => \$pout, stderr => \$perr, on_error_stop => 1);
is("$prc|$pout", "0|t\n1", 'without the preload: CREATE EXTENSION, jobq_put_now and jobq_tubes work')
  or diag($perr);
$plain->stop('fast');
note(sprintf('total %.1f s', time - $T0));
done_testing();

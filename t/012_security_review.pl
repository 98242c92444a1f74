# Security, third review (issue 19): one database's owner cannot stall the
# others' workers, a trigger's huge numbers still make runnable jobs,
# setseed() does not cross jobs, jobq.workers.last_error is whole characters
# and shown only to whom may see the job, an out-of-range pack does not
# wedge the relay, and a name too long for the producer-rights cache cannot
# plant a wrong answer in it.  Each attack is made by a LOGIN role that is
# no superuser, and first proves it was made.
#
# One cluster serving two databases, postgres (the victim's) and db_a
# (whose owner attacks), with one worker each, so that two jobs in a row
# run in the same process.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(120);
my $bs = bs_start($port);
my $node = init_node('review3');
jobq_conf($node, $port, "jobq.database = 'postgres, db_a'", 'jobq.workers = 1');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION jobq');
$node->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
wait_workers($node, 60, 1) or BAIL_OUT('jobq workers did not start');

su_sql($node, q{
CREATE ROLE own_a LOGIN;
CREATE ROLE ra; CREATE ROLE rb;
CREATE ROLE rc LOGIN; CREATE ROLE rp LOGIN; CREATE ROLE mal LOGIN;
CREATE DATABASE db_a OWNER own_a;
CREATE TABLE public.effects (tag text, n text, at timestamptz DEFAULT clock_timestamp());
GRANT ALL ON public.effects TO PUBLIC;
});

sub in_a
{
	my ($sql, $role) = @_;
	my ($rc, $out, $err) = query_as($node, $role, $sql, db => 'db_a');
	die "query in db_a failed (rc $rc): $sql\n$err" if $rc != 0;
	return $out;
}

in_a('CREATE EXTENSION jobq');
in_a('ALTER DATABASE db_a SET search_path = public');
in_a(q{
CREATE TABLE public.done_a (n int);
CREATE FUNCTION public.h_a(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.done_a VALUES ((kw->>'n')::int)$$;
SELECT jobq_register('t_a', 'h_a');
});

my $procs_a = q{SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
                WHERE datname = 'db_a' AND backend_type IN ('jobq relay', 'jobq worker')};

###########################################################################
# 1. db_a's owner sets jobq.io_timeout = 1 on db_a: after its processes
#    restart they keep the server's 5 s (and say so), their timeouts do not
#    mark the server down for everyone, and postgres's jobs run meanwhile
{
	is(su_sql($node, q{SELECT rolsuper FROM pg_roles WHERE rolname = 'own_a'}), 'f',
		'case 1: own_a is no superuser');
	in_a('ALTER DATABASE db_a SET jobq.io_timeout = 1', 'own_a');
	is(su_sql($node, q{SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting
		WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'db_a') AND setrole = 0}),
		'search_path=public,jobq.io_timeout=1', 'case 1: the owner attached jobq.io_timeout = 1 to db_a');

	su_sql($node, q{
CREATE FUNCTION public.h_v(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, n)
       VALUES ('v', extract(epoch FROM clock_timestamp() - (kw->>'put')::timestamptz)::text)$$;
SELECT jobq_register('t_v', 'h_v');
});
	my $logpos = -s $node->logfile;
	my $before = su_sql($node, $procs_a);
	su_sql($node, q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = 'db_a' AND backend_type IN ('jobq relay', 'jobq worker')});
	ok(wait_for($node, qq{SELECT count(*) = 2 AND string_agg(pid::text, ',' ORDER BY pid) <> '$before'
		FROM pg_stat_activity WHERE datname = 'db_a' AND backend_type IN ('jobq relay', 'jobq worker')}, 40),
		"case 1: db_a's relay and worker were ended and started again (were $before)");
	ok(wait_log($node, qr/WARNING:  invalid value for parameter "jobq\.io_timeout": 1\n/, $logpos, 20),
		"case 1: db_a's processes refuse the database's jobq.io_timeout");
	like(log_since($node, $logpos),
		qr/jobq's relay and workers take jobq\.\* settings from the server's configuration only/,
		'case 1: and say why');

	# a burst in db_a (40 MB: a relay batch is 8 MB, more than a
	# millisecond's sending), and postgres's jobs 20 ms apart meanwhile,
	# each recording how long it waited
	my $puts = join('', map { "SELECT jobq_put('t_v', 'h_v', jsonb_build_object('put', clock_timestamp()));\nSELECT pg_sleep(0.02);\n" } 1 .. 100);
	my $bg = bg_psql($node, $puts);
	in_a(q{SELECT count(jobq_put('t_a', 'h_a', jsonb_build_object('n', i, 'pad', repeat('x', 20000))))
	       FROM generate_series(1, 2000) i});
	my ($rc, $out, $err) = bg_finish($bg, 60);
	is($rc, 0, 'case 1: 100 jobs put in postgres during the burst') or diag($err);
	ok(wait_for($node, q{SELECT count(*) = 100 FROM public.effects WHERE tag = 'v'}, 30),
		'case 1: all 100 ran');
	my $late = su_sql($node, q{SELECT count(*) FILTER (WHERE n::float8 > 2) || ' late, the longest '
		|| round(max(n::float8)::numeric, 2) || ' s' FROM public.effects WHERE tag = 'v'});
	like($late, qr/^0 late/, "case 1: none waited over 2 s for a worker ($late)");
	my $deadline = time + 60;
	usleep(200_000) while time < $deadline && in_a('SELECT count(*) FROM done_a') ne '2000';
	is(in_a('SELECT count(*) FROM done_a'), '2000', "case 1: db_a's burst ran whole");
	unlike(log_since($node, $logpos), qr/did not answer in time/,
		'case 1: no request timed out');
}

###########################################################################
# 2. numbers a double cannot hold: a trigger's numeric and numeric[]
#    columns, jobq_put, a foreign producer's body; an unreadable body is
#    recorded with the tube it was reserved from
{
	my $big = '9' x 400;
	su_sql($node, q{
CREATE TABLE public.nums (id int, n numeric, arr numeric[]);
CREATE FUNCTION public.h_num(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, n)
       VALUES ('num', coalesce(kw->'new'->>'n', kw->>'n') || '|' || coalesce(kw->'new'->'arr'->>0, ''))$$;
SELECT jobq_register('t_num', 'h_num');
CREATE TRIGGER nums_jobs AFTER INSERT ON public.nums
  FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t_num', 'h_num');
});
	su_sql($node, qq{INSERT INTO public.nums VALUES (1, '$big', ARRAY['-$big'::numeric])});
	ok_as($node, undef, q{SELECT jobq_put('t_num', 'h_num', '{"n": 1e400}')}, 'case 2: jobq_put takes 1e400');
	my $id = raw_put($port, 't_num', '{"func_name":"h_num","tube":"t_num","kwargs":{"n":-2.5e999}}');
	ok(defined $id, 'case 2: a foreign body with -2.5e999 was put');
	ok(wait_for($node, q{SELECT count(*) = 3 FROM public.effects WHERE tag = 'num'}, 20),
		'case 2: the three jobs ran')
	  or diag(su_sql($node, 'SELECT sqlstate, message FROM jobq.failed'));
	is(su_sql($node, qq{SELECT count(*) FROM public.effects WHERE tag = 'num' AND n = '$big|-$big'}), '1',
		'case 2: the trigger job carried the 400-digit numeric and numeric[] exactly');
	is(su_sql($node, qq{SELECT count(*) FROM public.effects WHERE tag = 'num' AND n = '1' || repeat('0', 400) || '|'}), '1',
		'case 2: the jobq_put job carried 1e400');
	is(su_sql($node, qq{SELECT count(*) FROM public.effects WHERE tag = 'num' AND n = '-25' || repeat('0', 998) || '|'}), '1',
		"case 2: the foreign body's -2.5e999 too");
	my $bad = raw_put($port, 't_num', '{"func_name":"h_num","tube":"t_num","kwargs":{"n":1e400,}}');
	ok(wait_for($node, "SELECT EXISTS (SELECT FROM jobq.failed WHERE bs_id = $bad)", 20),
		'case 2: an unreadable body is recorded');
	is(su_sql($node, "SELECT sqlstate || ' ' || tube || ' ' || (raw_body LIKE '%1e400,}}') FROM jobq.failed WHERE bs_id = $bad"),
		'22P02 t_num true', 'case 2: with the tube it was reserved from and its raw body');
}

###########################################################################
# 3. setseed() in one role's job does not decide the next job's random()
{
	su_sql($node, q{
CREATE FUNCTION public.h_seed(kw jsonb) RETURNS void LANGUAGE sql AS $$SELECT setseed(0.25)$$;
CREATE FUNCTION public.h_draw(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, n) VALUES ('draw', random()::text)$$;
GRANT INSERT ON public.effects TO rb;
SELECT jobq_register('t_seed', 'h_seed', run_as => 'ra');
SELECT jobq_register('t_seed', 'h_draw', run_as => 'rb');
});
	my $predicted = (split /\n/, su_sql($node, 'SELECT setseed(0.25); SELECT random()::text'))[-1];
	for my $i (1 .. 5)
	{
		su_sql($node, q{BEGIN; SELECT jobq_put('t_seed', 'h_seed'); SELECT jobq_put('t_seed', 'h_draw'); COMMIT;});
		wait_for($node, "SELECT count(*) = $i FROM public.effects WHERE tag = 'draw'", 20);
	}
	is(su_sql($node, q{SELECT count(*) FROM public.effects WHERE tag = 'draw'}), '5',
		"case 3: five pairs ran (ra's setseed, then rb's random, in the one worker)");
	is(su_sql($node, qq{SELECT count(*) FROM public.effects WHERE tag = 'draw' AND n = '$predicted'}), '0',
		"case 3: rb never drew the value ra's setseed(0.25) decided ($predicted)");
	is(su_sql($node, q{SELECT count(DISTINCT n) FROM public.effects WHERE tag = 'draw'}), '5',
		'case 3: and each job drew a value of its own');
}

###########################################################################
# 4. jobq.workers.last_error: cut at a character, readable by a LATIN1
#    client; a job's error only for roles that may enqueue it
{
	su_sql($node, q{
CREATE FUNCTION public.h_err(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% %', kw->>'secret', repeat('é', 200); END $$;
SELECT jobq_register('t_err', 'h_err', run_as => 'ra', max_attempts => 1);
SELECT jobq_grant('t_err', 'h_err', 'rp');
GRANT USAGE ON SCHEMA jobq TO rc, rp;
GRANT SELECT ON jobq.workers TO rc, rp;
GRANT EXECUTE ON FUNCTION jobq_worker_status() TO rc, rp;
SELECT jobq_put('t_err', 'h_err', '{"secret": "top-secret-42"}');
});
	ok(wait_for($node, q{SELECT EXISTS (SELECT FROM jobq.failed WHERE func_name = 'h_err')}, 20)
		  && wait_for($node, q{SELECT bool_or(last_error LIKE 'top-secret-42%') FROM jobq.workers}, 20),
		'case 4: the failing job ran and was recorded, and its error is in jobq.workers');
	my $view = q{SELECT coalesce(last_error, '<null>') FROM jobq.workers WHERE kind = 'worker'};
	my ($rc, $out, $err) = query_as($node, undef, "SET client_encoding = 'LATIN1'; $view");
	is($rc, 0, 'case 4: a LATIN1 client reads jobq.workers') or diag($err);
	$out = su_sql($node, $view);
	like($out, qr/^top-secret-42 (é)+$/, 'case 4: the message is cut after a whole character');
	cmp_ok(length($out), '<=', 255, 'case 4: within 255 bytes');
	($rc, $out, $err) = query_as($node, 'rc', $view);
	is($rc == 0 ? $out : $err, '<null>', 'case 4: rc, who may not enqueue the job, sees no error text');
	($rc, $out, $err) = query_as($node, 'rp', $view);
	like($rc == 0 ? $out : $err, qr/^top-secret-42/, 'case 4: rp, a granted producer, sees it');
	su_sql($node, 'GRANT pg_read_all_stats TO rc');
	($rc, $out, $err) = query_as($node, 'rc', $view);
	like($rc == 0 ? $out : $err, qr/^top-secret-42/, 'case 4: and so does a member of pg_read_all_stats');
}

###########################################################################
# 5. packs with a priority, delay or ttr beyond beanstalkd's range are set
#    aside (22023); the server is not taken for broken and the jobs after
#    them go
{
	my $logpos = -s $node->logfile;
	my $job = sub {
		my ($tube, $pri, $delay, $ttr) = @_;
		return qq{uuid_send(gen_random_uuid()) || int8send($pri) || int8send($delay) || int8send($ttr)
		          || int4send(length('$tube')) || '$tube'::bytea || int4send(1) || 'f'::bytea
		          || int4send(2) || '{}'::bytea};
	};
	su_sql($node, 'INSERT INTO jobq.outbox_packs (jobs, packed) SELECT 2, '
		  . $job->('t_pack', 8589934592, 0, 60) . ' || ' . $job->('t_pack_ok', 0, 0, 60));
	su_sql($node, 'INSERT INTO jobq.outbox_packs (jobs, packed) SELECT 1, ' . $job->('t_pack', 0, -1, 60));
	su_sql($node, 'INSERT INTO jobq.outbox_packs (jobs, packed) SELECT 1, ' . $job->('t_pack', 0, 0, 4294967296));
	su_sql($node, q{SELECT jobq_put('t_pack_after', 'f')});
	ok(wait_perl(sub { my $st = bs_stats($port, 'stats-tube t_pack_after'); $st && $st->{'current-jobs-ready'} == 1 }, 15),
		'case 5: a job committed after the bad packs reached beanstalkd');
	my $st = bs_stats($port, 'stats-tube t_pack_ok');
	is($st ? $st->{'current-jobs-ready'} : 0, 1, "case 5: the good job of the first pack went too");
	is(su_sql($node, q{SELECT string_agg(sqlstate || ' ' || message, '; ' ORDER BY id) FROM jobq.failed
		WHERE source = 'relay' AND tube = 't_pack'}),
		'22023 priority 8589934592 is out of range; 22023 delay of -1 s is out of range; 22023 ttr of 4294967296 s is out of range',
		'case 5: the three bad jobs are in jobq.failed with 22023');
	unlike(log_since($node, $logpos), qr/is unusable/, 'case 5: no server was marked unusable');
	is(su_sql($node, q{SELECT count(*) FROM jobq.outbox_packs}), '0', 'case 5: the outbox is empty');
}

###########################################################################
# 6. a tube name longer than the producer-rights cache's key (a row of
#    jobq.failed written by hand) cannot stand in the cache for the
#    registered name it starts with
{
	my $t200 = 'x' x 200;
	su_sql($node, qq{
CREATE FUNCTION public.h_acl(kw jsonb) RETURNS void LANGUAGE sql AS \$\$SELECT\$\$;
SELECT jobq_register('$t200', 'h_acl', run_as => 'ra');
INSERT INTO jobq.failed (tube, func_name, kwargs, sqlstate, message, attempts, source)
  VALUES ('${t200}zz', 'h_acl', '{}', '00000', 'by hand', 1, 'worker');
});
	grant_jobq($node, 'mal', qw(jobq_put));
	fails_with($node, 'mal', qq{SELECT jobq_put('$t200', 'h_acl', '{}')}, '42501',
		'case 6: mal may not enqueue for the registered 200-byte tube');
	my ($rc, $out, $err) = query_as($node, undef, qq{
DO \$\$BEGIN
  PERFORM jobq_retry_failed(id) FROM jobq.failed WHERE tube = '${t200}zz';
EXCEPTION WHEN others THEN RAISE NOTICE 'retry: % %', SQLSTATE, SQLERRM;
END\$\$;
SET ROLE mal;
SELECT jobq_put('$t200', 'h_acl', '{}');
});
	like($err, qr/retry: 22023/, 'case 6: retrying the hand-written row is refused for its tube name');
	is(sqlstate_of($err), '42501', 'case 6: and mal, in the same session, is still refused afterwards')
	  or diag($err);
}

$node->stop('fast');
done_testing();

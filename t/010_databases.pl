# Several databases (issue 12): jobq.database lists db_a and db_b; each gets
# its own relay and workers, which run its own jobs and nobody else's (a job
# carries the database that enqueued it); a database taken out of the list
# on reload has its processes stopped and one put back gets them again; a
# listed database dropped WITH (FORCE) is waited for, without a crash loop,
# and served again once created anew; CREATE EXTENSION where nobody serves
# warns with the setting to change.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(100);
my $bs = bs_start($port);
my $node = init_node('databases');
jobq_conf($node, $port, "jobq.database = 'db_a, db_b'");
$node->start;

sub in_db
{
	my ($db, $sql) = @_;
	my ($rc, $out, $err) = query($node, $sql, db => $db);
	die "query failed in $db (rc $rc): $sql\n$err" if $rc != 0;
	return $out;
}

sub wait_in
{
	my ($db, $sql, $secs) = @_;
	my $deadline = time + ($secs || 30);
	my ($rc, $out, $err);
	while (1)
	{
		($rc, $out, $err) = query($node, $sql, db => $db);
		return 1 if $rc == 0 && $out eq 't';
		last if time > $deadline;
		usleep(100_000);
	}
	diag("wait_in $db timed out: $sql\ngot: $out\n$err");
	return 0;
}

my $up = q{SELECT count(*) = 3 AND bool_and(state NOT IN ('starting', 'waiting for extension'))
           FROM jobq.workers};

sub set_up_database
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql('postgres', "ALTER DATABASE $db SET search_path = public");
	my ($rc, $out, $err) = query($node, 'CREATE EXTENSION jobq', db => $db);
	is($rc, 0, "$db: CREATE EXTENSION jobq");
	unlike($err, qr/WARNING/, "$db: no warning, jobq.database lists it");
	in_db($db, q{
CREATE TABLE effects (db text, n int);
CREATE FUNCTION h(kw jsonb) RETURNS void LANGUAGE sql
    AS $$INSERT INTO public.effects VALUES (current_database(), (kw->>'n')::int)$$;
SELECT jobq_register('t_} . $db . q{', 'h');});
	ok(wait_in($db, $up, 60), "$db: its relay and two workers are up");
}

set_up_database($_) for qw(db_a db_b);

###########################################################################
# 1. each database runs its own jobs
{
	for my $db (qw(db_a db_b))
	{
		in_db($db, "SELECT count(jobq_put('t_$db', 'h', jsonb_build_object('n', i))) FROM generate_series(1, 20) i");
	}
	for my $db (qw(db_a db_b))
	{
		ok(wait_in($db, q{SELECT count(*) = 20 FROM effects}, 30), "case 1: $db ran its 20 jobs");
		is(in_db($db, q{SELECT string_agg(DISTINCT db, ',') FROM effects}), $db,
			"case 1: in $db, by ${db}'s handler");
	}
	my $pids_a = in_db('db_a', 'SELECT string_agg(pid::text, \',\' ORDER BY pid) FROM jobq.workers');
	my $pids_b = in_db('db_b', 'SELECT string_agg(pid::text, \',\' ORDER BY pid) FROM jobq.workers');
	isnt($pids_a, $pids_b, 'case 1: jobq.workers shows each database its own processes');
	is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type IN ('jobq relay', 'jobq worker')}), '6',
		'case 1: six jobq processes in all (a relay and two workers per database)');
}

###########################################################################
# 2. a job enqueued in db_a on db_b's tube: db_b's workers take it but do
#    not run it (db_a checked nobody's right to run db_b's handler)
{
	in_db('db_a', q{SELECT jobq_put('t_db_b', 'h', '{"n": 999}')});
	ok(wait_in('db_b', q{SELECT EXISTS (SELECT FROM jobq.failed WHERE kwargs->>'n' = '999'
		AND sqlstate = '42501' AND message LIKE 'job was enqueued in database "db_a"%')}, 30),
		'case 2: db_b records the job from db_a as refused (42501)');
	is(in_db('db_b', q{SELECT count(*) FROM effects WHERE n = 999}), '0', 'case 2: and did not run it');
}

###########################################################################
# 3. db_b taken out of jobq.database on reload: its processes stop and its
#    jobs wait; put back, they run
{
	my $logpos = -s $node->logfile;
	$node->append_conf('postgresql.conf', "jobq.database = 'db_a'\n");
	$node->reload;
	ok(wait_in('db_b', q{SELECT count(*) = 0 FROM jobq.workers}, 30), 'case 3: db_b\'s processes stopped');
	ok(wait_log($node, qr/database "db_b" is no longer in jobq.database/, $logpos, 10),
		'case 3: the launcher says so');
	ok(wait_in('db_a', $up, 10), 'case 3: db_a\'s still run');
	my ($rc, $out, $err) = query($node, q{SELECT jobq_put('t_db_b', 'h', '{"n": 21}')}, db => 'db_b');
	like($err, qr/jobq does not serve database "db_b"/, 'case 3: jobq_put in db_b warns');
	sleep 1;
	is(in_db('db_b', q{SELECT count(*) FROM jobq.outbox}), '1', 'case 3: its job waits in the outbox');
	$node->append_conf('postgresql.conf', "jobq.database = 'db_a, db_b'\n");
	$node->reload;
	ok(wait_in('db_b', q{SELECT count(*) = 21 FROM effects}, 30), 'case 3: put back, db_b runs it');
}

###########################################################################
# 4. db_b dropped WITH (FORCE) while listed: the launcher waits for it
#    (no crash loop), and serves it again once it is created anew
{
	my $logpos = -s $node->logfile;
	$node->safe_psql('postgres', 'DROP DATABASE db_b WITH (FORCE)');
	ok(wait_log($node, qr/database "db_b" does not exist; jobq's workers wait for it/, $logpos, 30),
		'case 4: the launcher waits for db_b');
	# longer than the launcher's 10 s restart delay, so that a crash loop
	# (starting db_b's processes again and again) would show in the count
	sleep 12;
	my $log = slurp_file($node->logfile, $logpos);
	my $failed = () = $log =~ /FATAL:  database "db_b" does not exist/g;
	cmp_ok($failed, '<=', 3, "case 4: no crash loop ($failed of db_b's processes failed to connect after the drop)");
	ok(wait_in('db_a', $up, 10), 'case 4: db_a is served throughout');
	in_db('db_a', "SELECT jobq_put('t_db_a', 'h', '{\"n\": 100}')");
	ok(wait_in('db_a', q{SELECT count(*) = 21 FROM effects}, 30), 'case 4: and runs its jobs');
	set_up_database('db_b');
	in_db('db_b', "SELECT jobq_put('t_db_b', 'h', '{\"n\": 1}')");
	ok(wait_in('db_b', q{SELECT count(*) = 1 FROM effects}, 30), 'case 4: the new db_b runs its jobs');
}

###########################################################################
# 5. CREATE EXTENSION where jobq.database does not reach
{
	$node->safe_psql('postgres', 'CREATE DATABASE db_c');
	my ($rc, $out, $err) = query($node, 'CREATE EXTENSION jobq', db => 'db_c');
	is($rc, 0, 'case 5: the extension installs in db_c');
	like($err, qr/WARNING:  jobq does not serve database "db_c"/, 'case 5: with a warning');
	like($err, qr/HINT:  Add this database to jobq.database and reload the configuration/,
		'case 5: naming the setting');
	is(in_db('db_c', 'SELECT jobq.check_database()'), 'f', 'case 5: jobq.check_database() says so');
	is(in_db('db_a', 'SELECT jobq.check_database()'), 't', 'case 5: and is true in db_a');
}

###########################################################################
# 6. the launcher ends (its relays and workers outlive it) and comes back:
#    it takes its blocks back without starting anything twice, and a
#    database removed afterwards still has its processes stopped
{
	my $pids = q{SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
	             WHERE backend_type IN ('jobq relay', 'jobq worker')};
	my $before = $node->safe_psql('postgres', $pids);
	my $launcher = $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'jobq launcher'});
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)"), 't',
		'case 6: the launcher is terminated');
	ok(wait_for($node, qq{SELECT EXISTS (SELECT FROM pg_stat_activity
		WHERE backend_type = 'jobq launcher' AND pid <> $launcher)}, 30),
		'case 6: the postmaster starts it again');
	sleep 2;    # two passes of its loop
	is($node->safe_psql('postgres', $pids), $before,
		'case 6: the same six relays and workers, none started twice');
	in_db('db_a', "SELECT jobq_put('t_db_a', 'h', '{\"n\": 101}')");
	ok(wait_in('db_a', q{SELECT count(*) = 22 FROM effects}, 30), 'case 6: db_a runs its jobs');
	$node->append_conf('postgresql.conf', "jobq.database = 'db_a'\n");
	$node->reload;
	ok(wait_in('db_b', q{SELECT count(*) = 0 FROM jobq.workers}, 30),
		'case 6: db_b removed: its processes, which the new launcher did not start, stop');
}

$node->stop('fast');
done_testing();

# the enqueue path: jobs wait in the producing backend's memory and are
# written to jobq.outbox_packs many jobs to a row.  A crash in the middle of a
# big statement, after some of its jobs were written, leaves nothing; a
# prepared transaction keeps its jobs through an immediate restart.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(90);
my $binlog = "${PostgreSQL::Test::Utils::tmp_check}/binlog_009";
mkdir $binlog or die "mkdir $binlog: $!";
my $bs = bs_start($port, '-b', $binlog);
my $node = new_node('enqueue', $port);

sql_ok($node, q{
CREATE TABLE big (id int);
CREATE TRIGGER big_jobs AFTER INSERT ON big
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t_big', 'f');
CREATE TABLE small (id int);
CREATE TRIGGER small_jobs AFTER INSERT ON small
    FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t_2pc', 'f');
});

###########################################################################
# 1. kill -9 the backend of a big trigger statement once it has written
#    part of its jobs into jobq.outbox_packs (the table and its TOAST
#    grew): after the crash
#    recovery, no job of it exists anywhere
{
	my $logpos = -s $node->logfile;
	my $size0 = sql_ok($node, "SELECT pg_total_relation_size('jobq.outbox_packs')");
	my $bg = bg_psql($node, 'INSERT INTO big SELECT i FROM generate_series(1, 5000000) i;');
	ok(wait_for($node, "SELECT pg_total_relation_size('jobq.outbox_packs') > $size0 + 1024 * 1024", 60),
		'case 1: the statement has written jobs into jobq.outbox_packs (it grew by over 1 MB)');
	my $victim = sql_ok($node,
		"SELECT pid FROM pg_stat_activity WHERE query LIKE 'INSERT INTO big%' AND state = 'active'");
	ok($victim =~ /^\d+$/, "case 1: the statement still runs (backend $victim)");
	ok(kill('KILL', $victim), 'case 1: SIGKILL sent to it');
	my ($rc) = bg_finish($bg, 60);
	isnt($rc, 0, 'case 1: the statement failed');
	ok(wait_log($node, qr/all server processes terminated; reinitializing/, $logpos, 30),
		'case 1: the postmaster reinitialized after the crash');
	ok(wait_workers($node, 60), 'case 1: workers and relay are back');
	is(sql_ok($node, 'SELECT count(*) FROM big'), '0', 'case 1: no row of the statement');
	is(sql_ok($node, "SELECT count(*) FROM jobq.outbox WHERE tube = 't_big'"), '0',
		'case 1: no job of it in jobq.outbox');
	sleep 2;    # the relay would have sent any by now
	is(bs_stats($port, 'stats-tube t_big'), undef, 'case 1: and none reached beanstalkd');
}

###########################################################################
# 2. a prepared transaction whose jobs were written at PREPARE survives an
#    immediate restart; COMMIT PREPARED after it delivers them, all of them
{
	sql_ok($node, q{
BEGIN;
INSERT INTO small SELECT i FROM generate_series(1, 1500) i;
INSERT INTO small VALUES (0);
PREPARE TRANSACTION 'jobq_009';
});
	is(sql_ok($node, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'jobq_009'"), '1',
		'case 2: the transaction is prepared');
	$node->stop('immediate');
	$node->start;
	ok(wait_workers($node, 60), 'case 2: the server is back');
	is(bs_stats($port, 'stats-tube t_2pc'), undef, 'case 2: nothing was sent before COMMIT PREPARED');
	sql_ok($node, "COMMIT PREPARED 'jobq_009'");
	ok(wait_for($node, "SELECT ready = 1501 FROM jobq_tubes() WHERE tube = 't_2pc'", 60),
		'case 2: all 1501 jobs reached beanstalkd after COMMIT PREPARED');
	is(sql_ok($node, "SELECT count(*) FROM jobq.outbox"), '0', 'case 2: the outbox is empty');
}

###########################################################################
# 3. a database the relay does not serve: jobq_put says so, with the
#    setting to change, once per session
{
	sql_ok($node, 'CREATE DATABASE other');
	my ($rc, $out, $err) = query($node, 'CREATE EXTENSION jobq', db => 'other');
	is($rc, 0, 'case 3: the extension installs in another database');
	like($err, qr/WARNING:  jobq does not serve database "other": jobs stay in jobq.outbox/,
		'case 3: CREATE EXTENSION warns that nothing will send its jobs');
	($rc, $out, $err) = query($node,
		"SELECT jobq_put('t_other', 'f') IS NOT NULL; SELECT jobq_put('t_other', 'f') IS NOT NULL;",
		db => 'other');
	is($rc, 0, 'case 3: jobq_put works there');
	like($err, qr/WARNING:  jobq does not serve database "other": jobs stay in jobq.outbox/,
		'case 3: it warns that nothing sends the jobs');
	like($err, qr/HINT:  Add this database to jobq.database and reload the configuration/,
		'case 3: ... naming the setting');
	is(scalar(() = $err =~ /WARNING/g), 1, 'case 3: once per session');
	($rc, $out, $err) = query($node, "SELECT jobq_put('t_served', 'f') IS NOT NULL");
	unlike($err, qr/WARNING/, 'case 3: no warning in the database the relay serves');
}

$node->stop('fast');
done_testing();

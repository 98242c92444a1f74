# PostgreSQL restarts and reloads: an immediate restart under load, a fast
# shutdown while handlers run, and jobq.servers changed by SIGHUP.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(20);
my $port2 = bs_port(21);
my $binlog = "${PostgreSQL::Test::Utils::tmp_check}/binlog_003";
mkdir $binlog or die "mkdir $binlog: $!";
my $bs = bs_start($port, '-b', $binlog);
my $node = new_node('server_restart', $port);

sql_ok($node, q{
CREATE TABLE effects (c text NOT NULL, k int NOT NULL,
                      at timestamptz DEFAULT clock_timestamp());  -- no unique key
CREATE FUNCTION slow_rec(c text, k int, secs float DEFAULT 0) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects (c, k) VALUES (c, k);
    PERFORM pg_sleep(secs);
END $$;
SELECT jobq_register('t5', 'slow_rec');
SELECT jobq_register('t6', 'slow_rec');
SELECT jobq_register('t7', 'slow_rec');
});

sub counts
{
	my ($c) = @_;
	return sql_ok($node,
		"SELECT count(*) || '/' || count(DISTINCT k) FROM effects WHERE c = '$c'");
}

###########################################################################
# 5. pg_ctl restart -m immediate with jobs in the outbox and in beanstalkd,
#    handlers running: everything comes back, the backlog drains, no job
#    lost or doubled
{
	my $t0 = time;
	my ($na, $nb) = (300, 200);
	sql_ok($node, "SELECT count(jobq_put('t5', 'slow_rec', "
		  . "jsonb_build_object('c', 'case5', 'k', k, 'secs', 0.02))) FROM generate_series(1, $na) k");
	ok(wait_for($node, "SELECT count(*) >= 30 FROM effects WHERE c = 'case5'", 60),
		'case 1: handlers are running');
	# freeze beanstalkd: what the relay sends now stays unanswered, so the
	# next rows are still in the outbox when the server goes down
	bs_signal($bs, 'STOP');
	my ($done_before) = split m{/}, counts('case5');
	cmp_ok($done_before, '<', $na, "case 1: jobs still queued in beanstalkd ($done_before of $na done)");
	sql_ok($node, "SELECT count(jobq_put('t5', 'slow_rec', "
		  . "jsonb_build_object('c', 'case5', 'k', k, 'secs', 0.02))) FROM generate_series($na + 1, $na + $nb) k");
	is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox'), $nb, "case 1: $nb committed jobs in the outbox");
	my $before = worker_pids($node);

	my $t1 = time;
	my $logpos = -s $node->logfile;
	PostgreSQL::Test::Utils::system_or_bail('pg_ctl', '-w', '-D', $node->data_dir,
		'-l', $node->logfile, '-m', 'immediate', 'restart');
	$node->_update_pid(1);
	my $took = time - $t1;
	note(sprintf('case 1: pg_ctl restart -m immediate took %.1f s', $took));
	like(log_since($node, $logpos), qr/received immediate shutdown request/,
		'case 1: the server went down in immediate mode');
	like(log_since($node, $logpos), qr/database system was interrupted|redo starts|not properly shut down/,
		'case 1: and came back through crash recovery');
	bs_signal($bs, 'CONT');

	ok(wait_workers($node, 60), 'case 1: workers and relay are back');
	isnt(worker_pids($node), $before, 'case 1: as new processes');
	ok(wait_for($node, "SELECT count(*) >= $na + $nb FROM effects WHERE c = 'case5'", 90),
		'case 1: the backlog drained');
	ok(wait_for($node, 'SELECT count(*) = 0 FROM jobq.outbox', 30), 'case 1: the outbox is empty');
	sleep 3;
	my $n = $na + $nb;
	is(counts('case5'), "$n/$n", 'case 1: every committed job ran exactly once');
	is(sql_ok($node, 'SELECT count(*) FROM jobq.failed'), '0', 'case 1: nothing failed');
	note(sprintf('case 1 took %.1f s', time - $t0));
}

###########################################################################
# 6. fast shutdown while handlers run: a clean exit within a bound, then
#    nothing lost and nothing doubled after the start
{
	my $t0 = time;
	my $n = 20;
	sql_ok($node, "SELECT count(jobq_put('t6', 'slow_rec', "
		  . "jsonb_build_object('c', 'case6', 'k', k, 'secs', 2))) FROM generate_series(1, $n) k");
	ok(wait_for($node,
			"SELECT count(*) = 2 FROM jobq.workers WHERE func_name = 'slow_rec' AND state = 'running'", 30),
		'case 2: both workers are inside a handler');
	my $postmaster = $node->{_pid};
	my $logpos = -s $node->logfile;
	my $t1 = time;
	ok($node->stop('fast'), 'case 2: fast shutdown succeeded');
	my $took = time - $t1;
	cmp_ok($took, '<', 10, sprintf('case 2: the server stopped in %.1f s (< 10 s)', $took));
	ok(wait_pid_gone($postmaster, 5), 'case 2: the postmaster is gone');
	my $log = log_since($node, $logpos);
	like($log, qr/database system is shut down/, 'case 2: clean shutdown logged');
	unlike($log, qr/terminated by signal/, 'case 2: no process crashed on the way');
	$node->start;
	ok(wait_workers($node, 60), 'case 2: workers and relay are back');
	ok(wait_for($node, "SELECT count(*) >= $n FROM effects WHERE c = 'case6'", 90),
		'case 2: the rest of the jobs ran after the start');
	sleep 3;
	is(counts('case6'), "$n/$n", 'case 2: every job ran exactly once');
	note(sprintf('case 2 took %.1f s', time - $t0));
}

###########################################################################
# 7. SIGHUP moves jobq.servers to another beanstalkd without a restart
{
	my $t0 = time;
	my $n = 30;
	my $bs2 = bs_start($port2);
	my $before = worker_pids($node);
	sql_ok($node, "ALTER SYSTEM SET jobq.servers = '127.0.0.1:$port2'");
	sql_ok($node, 'SELECT pg_reload_conf()');
	# the workers have moved once they wait for jobs there
	my $moved = 0;
	for (1 .. 100)
	{
		my $st = bs_stats($port2, 'stats');
		if (($st->{'current-workers'} // 0) >= 2) { $moved = 1; last; }
		usleep(100_000);
	}
	ok($moved, 'case 3: both workers reserve from the second server');
	sql_ok($node, "SELECT count(jobq_put('t7', 'slow_rec', "
		  . "jsonb_build_object('c', 'case7', 'k', k))) FROM generate_series(1, $n) k");
	ok(wait_for($node, "SELECT count(*) >= $n FROM effects WHERE c = 'case7'", 60),
		'case 3: the jobs ran');
	my $st2 = bs_stats($port2, 'stats-tube t7');
	is($st2 && $st2->{'total-jobs'}, $n, "case 3: all $n jobs went through the second server");
	my $st1 = bs_stats($port, 'stats-tube t7');
	is($st1 ? $st1->{'total-jobs'} : 0, 0, 'case 3: none went to the first server');
	is(sql_ok($node, "SELECT total FROM jobq_tubes() WHERE tube = 't7'"), $n,
		'case 3: a new session sees the second server too (jobq_tubes)');
	sleep 1;
	is(counts('case7'), "$n/$n", 'case 3: each ran once');
	is(worker_pids($node), $before, 'case 3: without restarting any jobq process');
	note(sprintf('case 3 took %.1f s', time - $t0));
}

$node->stop('fast');
done_testing();

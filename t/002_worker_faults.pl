# job worker faults: kill -9 in the middle of a handler, a handler that
# outlives the TTR (with and without touch), handlers that misbehave.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(10);
my $binlog = "${PostgreSQL::Test::Utils::tmp_check}/binlog_002";
mkdir $binlog or die "mkdir $binlog: $!";
my $bs = bs_start($port, '-b', $binlog);
my $node = new_node('worker_faults', $port);

sql_ok($node, q{
CREATE TABLE effects (c text NOT NULL, k int NOT NULL,
                      at timestamptz DEFAULT clock_timestamp());  -- no unique key
-- insert, then sleep: the effect is visible only if the job commits
CREATE FUNCTION slow_rec(c text, k int, secs float DEFAULT 3) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects (c, k) VALUES (c, k);
    PERFORM pg_sleep(secs);
END $$;
SELECT jobq_register('t3', 'slow_rec');
SELECT jobq_register('t4', 'slow_rec', timeout => '6 s');
});


###########################################################################
# 3. kill -9 a job worker in the middle of its handler: the postmaster
#    restarts the whole cluster; the job runs again, its effect lands once
{
	my $t0 = time;
	my $before = worker_pids($node);
	my $logpos = -s $node->logfile;
	my $uuid = sql_ok($node,
		q{SELECT jobq_put('t3', 'slow_rec', '{"c": "case3", "k": 1, "secs": 3}')});
	ok(wait_for($node,
			"SELECT count(*) = 1 FROM jobq.workers WHERE func_name = 'slow_rec' AND state = 'running'",
			30),
		'case 1: a worker runs the handler');
	my $victim = sql_ok($node, "SELECT pid FROM jobq.workers WHERE func_name = 'slow_rec'");
	usleep(500_000);    # inside pg_sleep, after the INSERT
	ok(kill('KILL', $victim), "case 1: SIGKILL sent to worker $victim");
	ok(wait_pid_gone($victim, 10), 'case 1: the worker process is gone');
	ok(wait_log($node, qr/all server processes terminated; reinitializing/, $logpos, 30),
		'case 1: the postmaster reinitialized after the crash');
	ok(wait_workers($node, 60), 'case 1: workers and relay are back');
	is(sql_ok($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $victim"), '0',
		'case 1: the victim is not in pg_stat_activity');
	isnt(worker_pids($node), $before, 'case 1: all jobq processes were restarted');
	ok(wait_for($node, "SELECT count(*) >= 1 FROM effects WHERE c = 'case3'", 60),
		'case 1: the job ran again');
	ok(wait_for($node, "SELECT count(*) = 0 FROM jobq.workers WHERE func_name = 'slow_rec'", 30),
		'case 1: the handler finished');
	sleep 2;
	is(effect_counts($node, 'case3'), '1/1', 'case 1: its effect is committed once');
	is(sql_ok($node, "SELECT count(*) FROM jobq.done WHERE id = '$uuid'"), '1',
		'case 1: recorded as done');
	is(sql_ok($node, 'SELECT count(*) FROM jobq.failed'), '0', 'case 1: nothing failed');
	note(sprintf('case 1 took %.1f s', time - $t0));
}

###########################################################################
# 4. a handler that outlives the job's TTR (2 s; handler sleeps 4 s, its
#    time limit is 6 s).  Without touch beanstalkd hands the job to a
#    second worker, and jobq.done keeps the effect single; with touch the
#    job stays reserved once.
#
#    The job is watched through jobq.workers (PostgreSQL only), and
#    stats-job is asked once: beanstalkd 1.12 often fails to expire a
#    reservation while another client keeps sending it commands, so polling
#    it would hide the very timeout under test.
sub watch_job
{
	my ($id, $secs) = @_;
	my %seen = (max_workers => 0, polls => 0, stats => '');
	my $t0 = time;
	while (time - $t0 < $secs)
	{
		my $n = sql_ok($node, "SELECT count(*) FROM jobq.workers WHERE job_id = $id");
		$seen{polls}++;
		$seen{max_workers} = $n if $n > $seen{max_workers};
		if ($seen{stats} eq '' && time - $t0 > 3.2)
		{
			$seen{stats} = sql_ok($node,
				"SELECT coalesce(state || ' reserves=' || reserves || ' timeouts=' || timeouts "
				  . "|| ' left=' || time_left, 'gone') "
				  . "FROM jobq_job($id)");
		}
		last if $n == 0 && time - $t0 > 3.2;
		usleep(100_000);
	}
	$seen{gone} = wait_for($node, "SELECT jobq_job($id) IS NULL", 20);
	return \%seen;
}

{
	my $t0 = time;
	sql_ok($node, 'ALTER SYSTEM SET jobq.touch_jobs = off');
	sql_ok($node, 'SELECT pg_reload_conf()');
	sleep 2;    # the workers reload at their next loop (reserve waits 1 s)
	# beanstalkd 1.12 itself sometimes misses a reservation's deadline
	# (time-left goes negative, the job stays reserved: upstream issues
	# #262, #380), so up to six jobs are tried until one is re-released
	my ($released, $tries) = (0, 0);
	for my $k (1 .. 6)
	{
		$tries = $k;
		my $id = sql_ok($node,
			qq{SELECT jobq_put_now('t4', 'slow_rec', '{"c": "case4off", "k": $k, "secs": 4}', ttr => '2 s')});
		my $seen = watch_job($id, 30);
		note("case 2 (touch off), job $k: at most $seen->{max_workers} workers on it; at 3.2 s: $seen->{stats}");
		ok($seen->{gone}, "case 2: without touch, job $k is deleted in the end");
		if ($seen->{max_workers} >= 2 || $seen->{stats} =~ /reserves=[2-9]|timeouts=[1-9]/)
		{
			$released = 1;
			last;
		}
	}
	TODO:
	{
		# not jobq's to guarantee: if beanstalkd kept every reservation past
		# its deadline, there was no second delivery to deduplicate
		local $TODO = $released ? undef
		  : 'beanstalkd 1.12 expired none of the reservations (upstream issues #262, #380)';
		ok($released,
			"case 2: without touch, beanstalkd re-released a job and a second worker reserved it (try $tries)");
	}
	sleep 3;
	is(effect_counts($node, 'case4off'), "$tries/$tries", 'case 2: without touch each effect is committed once');
	is(sql_ok($node, "SELECT count(*) FROM jobq.failed WHERE tube = 't4'"), '0',
		'case 2: without touch nothing failed');

	sql_ok($node, 'ALTER SYSTEM RESET jobq.touch_jobs');
	sql_ok($node, 'SELECT pg_reload_conf()');
	sleep 2;
	my $id = sql_ok($node,
		q{SELECT jobq_put_now('t4', 'slow_rec', '{"c": "case4on", "k": 1, "secs": 4}', ttr => '2 s')});
	my $seen = watch_job($id, 30);
	note("case 2 (touch on): at most $seen->{max_workers} workers on the job; at 3.2 s: $seen->{stats}");
	is($seen->{max_workers}, 1, 'case 2: with touch, one worker ran the job');
	like($seen->{stats}, qr/^reserved reserves=1 timeouts=0 left=[1-9]/,
		'case 2: with touch, past its TTR it is still reserved once, its time-left renewed');
	ok($seen->{gone}, 'case 2: with touch, the job is deleted in the end');
	sleep 1;
	is(effect_counts($node, 'case4on'), '1/1', 'case 2: with touch the effect is committed once');
	is(sql_ok($node, "SELECT count(*) FROM jobq.failed WHERE tube = 't4'"), '0',
		'case 2: with touch nothing failed');
	note(sprintf('case 2 took %.1f s', time - $t0));
}

###########################################################################
# 9. handlers that misbehave; each ends as the policy says and the workers
#    live on
{
	my $t0 = time;
	my $before = worker_pids($node);
	my $logpos = -s $node->logfile;
	sql_ok($node, q{
-- catches an error in its own block, then fails anyway
CREATE FUNCTION catch_then_fail(c text, k int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects (c, k) VALUES (c, k);
    BEGIN
        PERFORM 1 / 0;
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO public.effects (c, k) VALUES (c || '-caught', k);
    END;
    RAISE EXCEPTION 'handler gave up after catching %', 'division_by_zero'
        USING ERRCODE = 'JQ001';
END $$;
-- catches an error in its own block and succeeds
CREATE FUNCTION catch_then_succeed(c text, k int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects (c, k) VALUES (c, k);
    BEGIN
        INSERT INTO public.effects (c, k) VALUES (c || '-rolled-back', k);
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        INSERT INTO public.effects (c, k) VALUES (c || '-caught', k);
    END;
END $$;
-- returns a 50 MB value
CREATE FUNCTION huge_result(c text, k int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.effects (c, k) VALUES (c, k);
    RETURN repeat('x', 50000000);
END $$;
SELECT jobq_register('t9', 'catch_then_fail', max_attempts => 1);
SELECT jobq_register('t9', 'catch_then_succeed', max_attempts => 1);
SELECT jobq_register('t9', 'slow_rec', max_attempts => 1, timeout => '500 ms');
SELECT jobq_register('t9', 'huge_result', max_attempts => 1);
});
	my $put_at = sql_ok($node, 'SELECT clock_timestamp()');
	my %uuid;
	$uuid{fail} = sql_ok($node,
		q{SELECT jobq_put('t9', 'catch_then_fail', '{"c": "case9fail", "k": 1}')});
	$uuid{ok} = sql_ok($node,
		q{SELECT jobq_put('t9', 'catch_then_succeed', '{"c": "case9ok", "k": 1}')});
	$uuid{slow} = sql_ok($node,
		q{SELECT jobq_put('t9', 'slow_rec', '{"c": "case9slow", "k": 1, "secs": 10}')});
	$uuid{huge} = sql_ok($node,
		q{SELECT jobq_put('t9', 'huge_result', '{"c": "case9huge", "k": 1}')});

	ok(wait_for($node, "SELECT count(*) = 2 FROM jobq.failed WHERE tube = 't9'", 60),
		'case 3: two jobs failed');
	ok(wait_for($node,
			"SELECT count(*) = 2 FROM jobq.done WHERE id IN ('$uuid{ok}', '$uuid{huge}')", 60),
		'case 3: two jobs succeeded');
	is(sql_ok($node,
			"SELECT sqlstate || ' | ' || message || ' | ' || attempts FROM jobq.failed WHERE job_id = '$uuid{fail}'"),
		'JQ001 | handler gave up after catching division_by_zero | 1',
		'case 3: the catch-then-raise handler failed with its own sqlstate');
	is(effect_counts($node, 'case9fail') . ' ' . effect_counts($node, 'case9fail-caught'), '0/0 0/0',
		'case 3: ... and none of its writes survived');
	is(effect_counts($node, 'case9ok') . ' ' . effect_counts($node, 'case9ok-caught') . ' ' . effect_counts($node, 'case9ok-rolled-back'),
		'1/1 1/1 0/0', 'case 3: the catch-and-succeed handler committed what it kept, once');
	is(sql_ok($node,
			"SELECT sqlstate || ' | ' || message FROM jobq.failed WHERE job_id = '$uuid{slow}'"),
		'57014 | canceling statement due to statement timeout',
		'case 3: the handler past its 500 ms limit was cancelled (57014)');
	is(sql_ok($node,
			"SELECT failed_at - '$put_at'::timestamptz < interval '5 s' FROM jobq.failed WHERE job_id = '$uuid{slow}'"),
		't', 'case 3: ... well before it would have finished (10 s)');
	is(effect_counts($node, 'case9slow'), '0/0', 'case 3: ... and its write was rolled back');
	is(effect_counts($node, 'case9huge'), '1/1', 'case 3: the 50 MB result handler succeeded once');
	sleep 1;
	is(worker_pids($node), $before, 'case 3: the same worker processes live on');
	unlike(log_since($node, $logpos), qr/terminated by signal|server process .* exited with exit code/,
		'case 3: no process crashed');
	note(sprintf('case 3 took %.1f s', time - $t0));
}

$node->stop('fast');
done_testing();

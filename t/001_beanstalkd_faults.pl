# beanstalkd faults: kill -9 with a binlog while jobs flow, an outage while
# transactions and triggers enqueue, and a server that can never take a row.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(0);
my $binlog = "${PostgreSQL::Test::Utils::tmp_check}/binlog_001";
mkdir $binlog or die "mkdir $binlog: $!";
my $bs = bs_start($port, '-b', $binlog);
my $node = new_node('beanstalkd_faults', $port);

sql_ok($node, q{
CREATE TABLE effects (c text NOT NULL, k int NOT NULL,
                      at timestamptz DEFAULT clock_timestamp());  -- no unique key
CREATE FUNCTION rec(c text, k int) RETURNS void LANGUAGE sql AS
  'INSERT INTO public.effects (c, k) VALUES (c, k)';
CREATE FUNCTION on_row(kw jsonb) RETURNS void LANGUAGE sql AS
  $$INSERT INTO public.effects (c, k) VALUES ('trigger', (kw->'new'->>'id')::int)$$;
SELECT jobq_register('t1', 'rec');
SELECT jobq_register('t2', 'rec');
SELECT jobq_register('t2', 'on_row');
SELECT jobq_register('t10', 'rec');
});

# count(*), count(DISTINCT k) of a case's effects
sub counts
{
	my ($c) = @_;
	return sql_ok($node,
		"SELECT count(*) || '/' || count(DISTINCT k) FROM effects WHERE c = '$c'");
}

###########################################################################
# 1. kill -9 beanstalkd (with a binlog) while jobs flow, restart it
{
	my $n = 600;
	my $t0 = time;
	my $script = '';
	$script .= "SELECT jobq_put('t1', 'rec', '{\"c\": \"case1\", \"k\": $_}') IS NOT NULL;\n"
	  . "SELECT pg_sleep(0.01);\n"
	  for 1 .. $n;
	my $producer = bg_psql($node, $script);

	ok(wait_for($node, "SELECT count(*) >= 100 FROM effects WHERE c = 'case1'", 60),
		'case 1: jobs flow before the fault');
	bs_signal($bs, 'KILL');
	my $at_kill = counts('case1');
	ok(pid_gone($bs), 'case 1: beanstalkd is gone after kill -9');
	ok(bs_refuses($port), 'case 1: beanstalkd port refuses connections');
	ok(bg_running($producer), "case 1: producer still running at the kill ($at_kill done)");
	my ($done_at_kill) = split m{/}, $at_kill;
	cmp_ok($done_at_kill, '<', $n, 'case 1: the kill hit mid-stream');

	sleep 2;    # the producer keeps committing into the outbox
	$bs = bs_start($port, '-b', $binlog);

	my ($rc, $out, $err) = bg_finish($producer, 120);
	is($rc, 0, 'case 1: every jobq_put committed');
	is($err, '', 'case 1: no producer saw an error');

	ok(wait_for($node, "SELECT count(*) >= $n FROM effects WHERE c = 'case1'", 90),
		'case 1: all jobs ran');
	sleep 3;    # any second delivery would land by now
	is(counts('case1'), "$n/$n", 'case 1: every committed job ran exactly once');
	is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox'), '0', 'case 1: outbox drained');
	is(sql_ok($node, 'SELECT count(*) FROM jobq.failed'), '0', 'case 1: nothing failed');
	my $st = bs_stats($port, 'stats-tube t1');
	is(($st->{'current-jobs-ready'} // 0) + ($st->{'current-jobs-reserved'} // 0)
		  + ($st->{'current-jobs-buried'} // 0) + ($st->{'current-jobs-delayed'} // 0),
		0, 'case 1: nothing left in beanstalkd');
	note(sprintf('case 1 took %.1f s', time - $t0));
}

###########################################################################
# 2. beanstalkd down for several seconds while transactions call jobq_put
#    and a jobq_enqueue trigger fires: nobody sees an error; all run once
{
	my $t0 = time;
	my $n = 50;
	sql_ok($node, q{
CREATE TABLE orders (id int PRIMARY KEY, item text);
CREATE TRIGGER orders_jobs AFTER INSERT ON orders
  FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t2', 'on_row');
});
	bs_stop($bs, 'TERM');
	ok(pid_gone($bs), 'case 2: beanstalkd stopped');
	ok(bs_refuses($port), 'case 2: beanstalkd port refuses connections');

	my $script = '';
	$script .= "BEGIN;\nINSERT INTO orders VALUES ($_, 'item $_');\n"
	  . "SELECT jobq_put('t2', 'rec', '{\"c\": \"case2\", \"k\": $_}') IS NOT NULL;\n"
	  . "COMMIT;\nSELECT pg_sleep(0.08);\n"
	  for 1 .. $n;
	my $producer = bg_psql($node, $script);
	my ($rc, $out, $err) = bg_finish($producer, 60);
	is($rc, 0, 'case 2: all transactions committed during the outage');
	is($err, '', 'case 2: no error or warning reached a caller');
	is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox'), 2 * $n,
		'case 2: the jobs wait in the outbox');
	sleep 2;
	ok(bs_refuses($port), 'case 2: still down after ' . sprintf('%.1f', time - $t0) . ' s');
	is(sql_ok($node, "SELECT count(*) FROM effects WHERE c IN ('case2', 'trigger')"), '0',
		'case 2: nothing ran during the outage');

	$bs = bs_start($port, '-b', $binlog);
	ok(wait_for($node,
			"SELECT count(*) >= 2 * $n FROM effects WHERE c IN ('case2', 'trigger')", 60),
		'case 2: the backlog ran after the restart');
	sleep 3;
	is(counts('case2'), "$n/$n", 'case 2: jobq_put jobs ran exactly once');
	is(counts('trigger'), "$n/$n", 'case 2: trigger jobs ran exactly once');
	is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox'), '0', 'case 2: outbox drained');
	note(sprintf('case 2 took %.1f s', time - $t0));
}

###########################################################################
# 10. a row the server can never accept: it goes to jobq.failed (54000,
#     source relay) and the jobs behind it are still delivered
{
	my $t0 = time;
	# the relay has learnt the server's max-job-size (65535): a bigger job
	# is refused at once
	my ($rc, $out, $err) = query($node,
		"SELECT jobq_put('t10', 'rec', jsonb_build_object('x', repeat('x', 70000)))");
	isnt($rc, 0, 'case 3: a job above 65535 bytes is refused by jobq_put');
	like($err, qr/max-job-size of 65535/, 'case 3: the relay had learnt max-job-size 65535');

	bs_stop($bs, 'TERM');
	ok(pid_gone($bs) && bs_refuses($port), 'case 3: beanstalkd stopped');
	my $big = sql_ok($node,
		"SELECT jobq_put('t10', 'rec', jsonb_build_object('c', 'case10', 'k', 0, 'x', repeat('x', 5000)))");
	like($big, qr/^[0-9a-f-]{36}$/, 'case 3: a 5000-byte job is accepted while the server is away');
	sql_ok($node, "SELECT jobq_put('t10', 'rec', jsonb_build_object('c', 'case10', 'k', k)) "
		  . "FROM generate_series(1, 5) k");
	is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox'), '6', 'case 3: six rows wait');

	my $binlog2 = "${PostgreSQL::Test::Utils::tmp_check}/binlog_001_small";
	mkdir $binlog2 or die;
	$bs = bs_start($port, '-z', 1024, '-b', $binlog2);
	ok(wait_for($node, "SELECT count(*) = 1 FROM jobq.failed WHERE job_id = '$big'", 60),
		'case 3: the big row ends in jobq.failed');
	is(sql_ok($node,
			"SELECT sqlstate || ' ' || source || ' ' || tube || ' ' || func_name "
			  . "|| ' ' || length(kwargs->>'x') FROM jobq.failed WHERE job_id = '$big'"),
		'54000 relay t10 rec 5000', 'case 3: recorded with sqlstate 54000, source relay, its kwargs');
	ok(wait_for($node, "SELECT count(*) = 5 FROM effects WHERE c = 'case10'", 60),
		'case 3: the jobs behind it were delivered and ran');
	sleep 1;
	is(counts('case10'), '5/5', 'case 3: each once, the big one never');
	is(sql_ok($node, 'SELECT count(*) FROM jobq.outbox'), '0', 'case 3: outbox drained');
	like(log_since($node), qr/job for func_name "rec" on tube "t10" cannot go to beanstalkd/,
		'case 3: the relay logged the refusal');
	note(sprintf('case 3 took %.1f s', time - $t0));
}

unlike(log_since($node), qr/terminated by signal/, 'no jobq process crashed');
$node->stop('fast');
done_testing();

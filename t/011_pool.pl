# A pool of beanstalkd servers (issue 12): jobq.servers lists three, each
# with a binlog.  Jobs spread over all three and run (two workers, fewer
# than the servers, starve none); bury, kick and release act on the server
# the job is on.  One server is killed with SIGKILL in the middle of a flow
# of jobq_put transactions and jobq_put_now calls: no caller sees an error,
# nothing is lost or doubled, and the jobs its binlog kept run once it is
# back.  A reload that takes a server out sends it nothing more; one that
# puts it back gives it jobs again, which run.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my @ports = (bs_port(110), bs_port(111), bs_port(112));
my @binlogs = map { "${PostgreSQL::Test::Utils::tmp_check}/binlog_$_" } @ports;
mkdir $_ for @binlogs;
my @bs = map { bs_start($ports[$_], '-b', $binlogs[$_]) } 0 .. 2;
my @names = map { "127.0.0.1:$_" } @ports;
my $all = join(', ', @names);

my $node = init_node('pool');
jobq_conf($node, $ports[0], "jobq.servers = '$all'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION jobq');
$node->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
ok(wait_workers($node, 60), 'relay and two workers up with three servers');

sql_ok($node, q{
CREATE TABLE effects (c text, k int);
CREATE FUNCTION h(kw jsonb) RETURNS void LANGUAGE sql
    AS $$INSERT INTO public.effects VALUES (kw->>'c', (kw->>'k')::int)$$;
SELECT jobq_register('t_pool', 'h');
-- fails while flaky.on, which the kick case turns off
CREATE TABLE flaky (on_ boolean);
INSERT INTO flaky VALUES (true);
CREATE FUNCTION f(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT on_ FROM public.flaky) THEN
        RAISE EXCEPTION 'flaky';
    END IF;
    INSERT INTO public.effects VALUES (kw->>'c', (kw->>'k')::int);
END $$;
SELECT jobq_register('t_flaky', 'f', max_attempts => 1);
-- fails in the first 1.5 s after its put: released with a 2 s back-off, then runs
CREATE FUNCTION once(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF pg_catalog.clock_timestamp() < (kw->>'t')::timestamptz + interval '1.5 s' THEN
        RAISE EXCEPTION 'too early';
    END IF;
    INSERT INTO public.effects VALUES (kw->>'c', (kw->>'k')::int);
END $$;
SELECT jobq_register('t_once', 'once', max_attempts => 3, backoff => '2 s');
});

# total-jobs of a tube on each server, "a/b/c"
sub spread
{
	my ($tube) = @_;
	return join('/', map {
		my $s = bs_stats($_, "stats-tube $tube");
		defined $s ? $s->{'total-jobs'} : 0;
	} @_[ 1 .. $#_ ]);
}

# ---------------------------------------------------------------------------
# case 1: jobs spread over the three servers and all run, once
sql_ok($node, q{SELECT jobq_put('t_pool', 'h', jsonb_build_object('c', 'spread', 'k', k))
                FROM generate_series(1, 300) k});
ok(wait_for($node, q{SELECT count(*) = 300 FROM effects WHERE c = 'spread'}, 60),
	'case 1: the 300 jobs ran');
is(effect_counts($node, 'spread'), '300/300', 'case 1: each once');
my @per = split m{/}, spread('t_pool', @ports);
note("case 1: spread over the servers: @per");
ok((grep { $_ >= 50 } @per) == 3, "case 1: every server got a fair share (@per)");

# the admin functions see the pool: per server, and summed
is(sql_ok($node, q{SELECT count(DISTINCT server) FROM jobq_server_tubes() WHERE tube = 't_pool'}), '3',
	'case 1: jobq_server_tubes() shows the tube on each server');
is(sql_ok($node, q{SELECT total FROM jobq_tubes() WHERE tube = 't_pool'}), '300',
	'case 1: jobq_tubes() sums over the servers');
is(sql_ok($node, q{SELECT value FROM jobq_stats() WHERE name = 'total-jobs'}),
	sql_ok($node, q{SELECT sum(value::bigint) FROM jobq_server_stats() WHERE name = 'total-jobs'}),
	'case 1: jobq_stats() sums what jobq_server_stats() shows');

# ---------------------------------------------------------------------------
# case 2: bury and kick, release with back-off: on the job's own server
sql_ok($node, q{SELECT jobq_put('t_flaky', 'f', jsonb_build_object('c', 'flaky', 'k', k))
                FROM generate_series(1, 30) k});
ok(wait_for($node, q{SELECT sum(buried) = 30 FROM jobq_server_tubes() WHERE tube = 't_flaky'}, 60),
	'case 2: the 30 failing jobs are buried');
ok(sql_ok($node, q{SELECT count(*) FROM jobq_server_tubes() WHERE tube = 't_flaky' AND buried > 0}) >= 2,
	'case 2: buried on the servers they came from (more than one)');
is(sql_ok($node, q{SELECT count(*) FROM jobq.failed
                    WHERE tube = 't_flaky' AND server = ANY (string_to_array(replace(current_setting('jobq.servers'), ' ', ''), ','))}),
	'30', 'case 2: jobq.failed records the server of each');
my ($fid, $fserver) = split /\|/, sql_ok($node,
	q{SELECT bs_id || '|' || server FROM jobq.failed WHERE tube = 't_flaky' ORDER BY id LIMIT 1});
is(sql_ok($node, "SELECT state FROM jobq_job($fid, '$fserver')"), 'buried',
	'case 2: jobq_job(id, server) finds the buried job');
my ($rc, $out, $err) = query_as($node, undef, "SELECT jobq_job($fid)");
like($err, qr/22023.*job ids are per server/, 'case 2: jobq_job(id) alone is ambiguous: 22023');
sql_ok($node, q{UPDATE flaky SET on_ = false});
is(sql_ok($node, q{SELECT jobq_kick('t_flaky', 1000)}), '30', 'case 2: jobq_kick kicks on every server');
ok(wait_for($node, q{SELECT count(*) = 30 FROM effects WHERE c = 'flaky'}, 60),
	'case 2: the kicked jobs ran');

my $releases = q{SELECT coalesce(sum(value::bigint), 0) FROM jobq_server_stats() WHERE name = 'cmd-release'};
my $released0 = sql_ok($node, $releases);
sql_ok($node, q{SELECT jobq_put('t_once', 'once', jsonb_build_object('c', 'once', 'k', k, 't', clock_timestamp()))
                FROM generate_series(1, 30) k});
# a release sent to another server than the job's would leave it reserved
# for its whole ttr (60 s)
ok(wait_for($node, q{SELECT count(*) = 30 FROM effects WHERE c = 'once'}, 25),
	'case 2: jobs released after a failure ran on a later attempt');
ok(sql_ok($node, $releases) > $released0, 'case 2: they were released (cmd-release counted)');
is(effect_counts($node, 'once'), '30/30', 'case 2: each once');
ok(wait_for($node, q{SELECT coalesce(sum(ready + reserved + delayed + buried), 0) = 0
                      FROM jobq_server_tubes() WHERE tube IN ('t_pool', 't_flaky', 't_once')}, 30),
	'case 2: nothing left on any server (deletes went to the right server)');

# ---------------------------------------------------------------------------
# case 3: kill -9 one server in the middle of the flow
# delayed jobs wait on every server, in the binlogs
sql_ok($node, q{SELECT jobq_put('t_pool', 'h', jsonb_build_object('c', 'delayed', 'k', k), delay => '4 s')
                FROM generate_series(1, 90) k});
ok(wait_for($node, q{SELECT sum(delayed) = 90 FROM jobq_server_tubes() WHERE tube = 't_pool'}, 30),
	'case 3: 90 delayed jobs wait in beanstalkd');
my $on_b = bs_stats($ports[1], 'stats-tube t_pool')->{'current-jobs-delayed'};
ok($on_b > 0, "case 3: $on_b of them on the server to be killed");

# the flow: a transaction per job
my $producer = bg_psql($node, join('', map {
	"SELECT jobq_put('t_pool', 'h', '{\"c\": \"flow\", \"k\": $_}');\nSELECT pg_sleep(0.005);\n"
} 1 .. 400));
usleep(500_000);
ok(bg_running($producer), 'case 3: the flow is under way');
my $logpos = -s $node->logfile;
bs_stop($bs[1], 'KILL');
ok(bs_refuses($ports[1]), 'case 3: server 2 killed mid-flow');
# the workers, waiting on it, see it go at once, and mark it down for all
ok(wait_log($node, qr/jobq worker \d: beanstalkd at \Q$names[1]\E is unusable/, $logpos, 10),
	'case 3: a worker marked it down');
($rc, $out, $err) = query_as($node, undef,
	q{SELECT count(*), count(DISTINCT server) FILTER (WHERE server = ANY (ARRAY[} .
	  join(', ', map { "'$_'" } @names[0, 2]) .
	  q{])) FROM generate_series(1, 50) k, LATERAL jobq_put_now_at('t_pool', 'h', jsonb_build_object('c', 'now', 'k', k))});
is($rc, 0, 'case 3: jobq_put_now with one server down: no error') or diag($err);
like($out, qr/^50\|[12]$/, 'case 3: the 50 jobs went to the servers that answer');
unlike(log_since($node, $logpos), qr/011_pool\.pl LOG:  jobq: beanstalkd at \Q$names[1]\E is unusable/,
	'case 3: the session did not try it: the workers\' mark is shared');
($rc, $out, $err) = bg_finish($producer, 120);
is($rc, 0, 'case 3: 400 jobq_put transactions across the kill: no error') or diag($err);
ok(wait_for($node, q{SELECT count(*) = 400 FROM effects WHERE c = 'flow'}, 60),
	'case 3: every job of the flow ran, the killed server\'s share elsewhere');
ok(wait_for($node, q{SELECT count(*) = 50 FROM effects WHERE c = 'now'}, 60),
	'case 3: every jobq_put_now job ran');
ok(wait_for($node, "SELECT count(*) = 90 - $on_b FROM effects WHERE c = 'delayed'", 30),
	'case 3: the delayed jobs of the live servers ran');
is(sql_ok($node, q{SELECT count(*) FROM jobq.outbox}), '0', 'case 3: the outbox is empty');
is(sql_ok($node, q{SELECT string_agg(DISTINCT source || ' ' || sqlstate, ',') FROM jobq.failed WHERE tube = 't_pool'}),
	'', 'case 3: nothing was set aside as failed');

# the killed server comes back with its binlog: its delayed jobs run
$bs[1] = bs_start($ports[1], '-b', $binlogs[1]);
ok(wait_for($node, q{SELECT count(*) = 90 FROM effects WHERE c = 'delayed'}, 60),
	"case 3: the $on_b jobs the killed server's binlog kept ran after its restart");
for my $c ('flow', 'now', 'delayed')
{
	my $n = $c eq 'flow' ? 400 : $c eq 'now' ? 50 : 90;
	is(effect_counts($node, $c), "$n/$n", "case 3: $c: nothing lost, nothing doubled");
}
# and it gets new jobs again, once the relay tries it again (within 10 s)
my $before = spread('t_pool', $ports[1]);
my $back = 0;
my $deadline = time + 20;
while (time < $deadline && spread('t_pool', $ports[1]) == $before)
{
	sql_ok($node, "SELECT jobq_put('t_pool', 'h', jsonb_build_object('c', 'back', 'k', k))
	               FROM generate_series($back + 1, $back + 10) k");
	$back += 10;
	usleep(500_000);
}
ok(spread('t_pool', $ports[1]) > $before, 'case 3: the restarted server gets jobs again');
ok(wait_for($node, "SELECT count(*) = $back FROM effects WHERE c = 'back'", 60),
	'case 3: jobs put after the restart ran');
is(effect_counts($node, 'back'), "$back/$back", 'case 3: each once');

# ---------------------------------------------------------------------------
# case 4: a reload takes server 3 out, then puts it back
$logpos = -s $node->logfile;
sql_ok($node, "ALTER SYSTEM SET jobq.servers = '$names[0], $names[1]'");
sql_ok($node, 'SELECT pg_reload_conf()');
sleep 2;
$before = spread('t_pool', $ports[2]);
sql_ok($node, q{SELECT jobq_put('t_pool', 'h', jsonb_build_object('c', 'two', 'k', k))
                FROM generate_series(1, 60) k});
ok(wait_for($node, q{SELECT count(*) = 60 FROM effects WHERE c = 'two'}, 60),
	'case 4: with server 3 taken out, jobs run');
is(spread('t_pool', $ports[2]), $before, 'case 4: server 3 got none of them');

# a job waiting on server 3 while it is out runs once it is back
bs_command($ports[2], "use t_pool\r\nput 0 0 60 2\r\n{}");
sql_ok($node, "ALTER SYSTEM SET jobq.servers = '$all'");
sql_ok($node, 'SELECT pg_reload_conf()');
sleep 2;
sql_ok($node, q{SELECT jobq_put('t_pool', 'h', jsonb_build_object('c', 'three', 'k', k))
                FROM generate_series(1, 60) k});
ok(wait_for($node, q{SELECT count(*) = 60 FROM effects WHERE c = 'three'}, 60),
	'case 4: with server 3 back, jobs run');
ok(spread('t_pool', $ports[2]) > $before + 1, 'case 4: server 3 gets jobs again');
ok(wait_for($node, q{SELECT coalesce(sum(ready + reserved + delayed), 0) = 0
                      FROM jobq_server_tubes() WHERE tube = 't_pool'}, 30),
	'case 4: nothing waits on any server, the job put on server 3 while it was out included');

unlike(log_since($node), qr/terminated by signal|server process .* exited with exit code [1-9]/,
	'no jobq process crashed');
$node->stop;
done_testing();

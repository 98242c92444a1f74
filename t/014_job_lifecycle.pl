# A job's lifecycle (issue 22): jobq_status in every state, each reached for
# real (pending while beanstalkd is down; queued ready, delayed and buried on
# a pool of two servers, and on a server that is down; running; done with a
# result; failed; cancelled; unknown), jobq_cancel in each state (a running
# job inside a batch whose other jobs commit, a cancel racing the job's
# commit), unique keys (sequential, concurrent in both orders, freed by
# done, failed and cancel, a period, the trigger, a kill -9 while the job
# runs), jobq_wait (woken, timing out, cancelled) and who may see and cancel
# a job.
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my ($p1, $p2, $p3) = (bs_port(140), bs_port(141), bs_port(142));
mkdir "$tmp/binlog_014_$_" or die "mkdir: $!" for (1, 2);
my $bs1 = bs_start($p1, '-b', "$tmp/binlog_014_1");
my $bs2 = bs_start($p2, '-b', "$tmp/binlog_014_2");
my $node = new_node('lifecycle', $p1, "jobq.servers = '127.0.0.1:$p1,127.0.0.1:$p2'",
	'jobq.io_timeout = 5s', 'jobq.track_jobs = on');

su_sql($node, q{
CREATE TABLE effects (c text NOT NULL, k int NOT NULL, xid xid8 NOT NULL DEFAULT pg_current_xact_id());
CREATE TABLE gate (k int PRIMARY KEY);
CREATE FUNCTION work(c text, k int) RETURNS jsonb LANGUAGE sql
  AS $$INSERT INTO public.effects (c, k) VALUES (c, k); SELECT jsonb_build_object('twice', k * 2)$$;
-- waits until gate has k (each statement a snapshot of its own), then writes
CREATE FUNCTION held(c text, k int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  WHILE NOT EXISTS (SELECT 1 FROM public.gate g WHERE g.k = held.k) LOOP
    PERFORM pg_sleep(0.02);
  END LOOP;
  INSERT INTO public.effects (c, k) VALUES (c, k);
END$$;
CREATE FUNCTION boom(c text, k int) RETURNS void LANGUAGE plpgsql
  AS $$BEGIN RAISE EXCEPTION 'boom %', k; END$$;
CREATE FUNCTION row_work(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (c, k) VALUES (kw->>'c', (kw->>'k')::int)$$;
SELECT jobq_register('t', 'work', 'work(text,int)', keep_result => true);
SELECT jobq_register('t', 'held', 'held(text,int)', keep_result => true);
SELECT jobq_register('t', 'boom', 'boom(text,int)', max_attempts => 1);
SELECT jobq_register('t', 'row_work', 'row_work(jsonb)');
SELECT jobq_register('q', 'work', 'work(text,int)');
CREATE ROLE runner;
CREATE ROLE app LOGIN;
CREATE ROLE stranger LOGIN;
});
grant_jobq($node, $_, qw(jobq_put jobq_status jobq_cancel jobq_wait)) for qw(app stranger);
su_sql($node, q{SELECT jobq_grant('t', 'work', 'app'); SELECT jobq_grant('t', 'held', 'app');});

sub status
{
	my ($id, $cols) = @_;
	return sql_ok($node, "SELECT concat_ws('|', $cols) FROM jobq_status('$id'::uuid)");
}

sub put
{
	my ($args) = @_;
	return sql_ok($node, "SELECT jobq_put($args)");
}

sub effects_of
{
	my ($c) = @_;
	return sql_ok($node,
		"SELECT coalesce(string_agg(k::text, ',' ORDER BY k), '') FROM effects WHERE c = '$c'");
}

###########################################################################
# done with a result, a void result, failed, unknown
my $d1 = put(q{'t', 'work', '{"c": "d", "k": 21}'});
is(sql_ok($node, "SELECT concat_ws('|', state, tube, func_name, result, attempts, "
	  . "enqueued_at IS NOT NULL, finished_at IS NOT NULL, sqlstate IS NULL) "
	  . "FROM jobq_wait('$d1', '30 s')"),
	'done|t|work|{"twice": 42}|1|t|t|t', 'done: its result, its run, its times');
sql_ok($node, q{INSERT INTO gate VALUES (22)});
my $d2 = put(q{'t', 'held', '{"c": "d", "k": 22}'});
is(sql_ok($node, "SELECT state || '|' || (result IS NULL) FROM jobq_wait('$d2', '30 s')"),
	'done|true', 'done: a void handler keeps no result');
my $f1 = put(q{'t', 'boom', '{"c": "f", "k": 5}'});
is(sql_ok($node, "SELECT concat_ws('|', state, sqlstate, message, attempts, kwargs->>'k') "
	  . "FROM jobq_wait('$f1', '30 s')"),
	'failed|P0001|boom 5|1|5', 'failed: its jobq.failed row');
is(status('00000000-0000-4000-8000-000000000000', 'state, tube, server, result'), 'unknown',
	'unknown: a uuid never enqueued');

###########################################################################
# queued on a pool of two: ready (tube q paused on both), delayed, buried
ok(wait_for($node, q{SELECT jobq_pause_tube('q', '1 hour')}, 20), 'tube q paused on both servers');
my @ready = map { put(qq{'q', 'work', '{"c": "q", "k": $_}'}) } 1 .. 12;
ok(wait_for($node, "SELECT bool_and(state = 'queued' AND bs_state = 'ready') "
	  . "FROM jobq_status(ARRAY['" . join("','", @ready) . "']::uuid[])", 20),
	'queued: 12 ready jobs, one jobq_status(uuid[]) call');
is(sql_ok($node, "SELECT count(DISTINCT server) FROM jobq_status(ARRAY['" . join("','", @ready)
	  . "']::uuid[])"), '2', 'queued: the jobs are on both servers, each named');
is(sql_ok($node, "SELECT count(*) FROM jobq_status(ARRAY['" . join("','", @ready)
	  . "', NULL]::uuid[])"), '12', 'jobq_status(uuid[]): a row per id, nulls skipped');
my $delayed = put(q{'t', 'work', '{"c": "dl", "k": 1}', delay => '1 hour'});
ok(wait_for($node, "SELECT state || bs_state FROM jobq_status('$delayed'::uuid)", 20, 'queueddelayed'),
	'queued: delayed');
# a tube nobody serves here; bury its job by hand
my $b1 = put(q{'nobody', 'f', '{"c": "b", "k": 1}'});
ok(wait_for($node, "SELECT state FROM jobq_status('$b1'::uuid)", 20, 'queued'), 'queued: ready on tube nobody');
my ($b1_server, $b1_bsid) = split /\|/, status($b1, 'server, bs_id');
my ($b1_port) = $b1_server =~ /:(\d+)$/;
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $b1_port, Proto => 'tcp')
	  or die "connect: $!";
	print $s "watch nobody\r\n";
	my $l = <$s>;
	print $s "reserve-with-timeout 5\r\n";
	$l = <$s>;
	my ($id, $len) = $l =~ /^RESERVED (\d+) (\d+)/ or die "reserve: $l";
	read($s, my $body, $len + 2);
	print $s "bury $id 0\r\n";
	$l = <$s>;
	is($l, "BURIED\r\n", 'job on tube nobody buried by hand');
	is($id, $b1_bsid, 'jobq_status named its beanstalkd id');
	close($s);
}
is(status($b1, 'state, bs_state'), 'queued|buried', 'queued: buried');

###########################################################################
# running, then cancelled while running inside a batch whose others commit
ok(wait_for($node, q{SELECT jobq_pause_tube('t', '1 hour')}, 20), 'tube t paused');
my @batch = split /\n/, sql_ok($node, q{
BEGIN;
SELECT jobq_put('t', 'work', '{"c": "batch", "k": 1}', ttr => '3 s');
SELECT jobq_put('t', 'held', '{"c": "batch", "k": 2}', ttr => '3 s');
SELECT jobq_put('t', 'work', '{"c": "batch", "k": 3}', ttr => '3 s');
COMMIT;});
is(scalar(@batch), 3, 'three jobs put in one transaction');
ok(wait_for($node, "SELECT count(*) = 3 FROM jobq_status(ARRAY['" . join("','", @batch)
	  . "']::uuid[]) WHERE state = 'queued'", 20), 'the three are queued');
sql_ok($node, q{SELECT jobq_pause_tube('t', '0')});
my $held = $batch[1];
ok(wait_for($node, "SELECT state FROM jobq_status('$held'::uuid)", 20, 'running'), 'running: in its handler');
is(status($held, 'worker IS NOT NULL, since IS NOT NULL, attempts, bs_state, tube, func_name'),
	't|t|1|reserved|t|held', 'running: which worker, since when, its run');
is(sql_ok($node, "SELECT count(*) FROM jobq.workers WHERE job_uuid = '$held'"), '1',
	'jobq.workers shows the uuid of the job it runs');
is(sql_ok($node, "SELECT jobq_cancel('$held')"), 'running', 'cancel: running job, returns running');
is(status($held, 'state, cancelled_by IS NOT NULL, worker'), 'cancelled|t',
	'cancelled: by whom; no worker');
# the gate opens: a run after the ttr would write its effect now
sql_ok($node, q{INSERT INTO gate VALUES (2)});
ok(wait_for($node, "SELECT bool_and(state = 'done') FROM jobq_status(ARRAY['$batch[0]', '$batch[2]']::uuid[])", 20),
	"the batch's other jobs are done");
my $same_batch = sql_ok($node, q{SELECT count(DISTINCT xid) FROM effects WHERE c = 'batch'});
sleep(5);    # the ttr is 3 s
is(effects_of('batch'), '1,3', 'the cancelled job left no effect and did not run after its ttr');
is(status($held, 'state'), 'cancelled', 'still cancelled after its ttr');
note("batch jobs 1 and 3 committed in $same_batch transaction(s)");

###########################################################################
# cancel a queued (delayed) job: deleted from its server
my ($dl_server, $dl_bsid) = split /\|/, status($delayed, 'server, bs_id');
is(sql_ok($node, "SELECT jobq_cancel('$delayed')"), 'queued', 'cancel: delayed job, returns queued');
my ($dl_port) = $dl_server =~ /:(\d+)$/;
ok(wait_perl(sub { !defined bs_stats($dl_port, "stats-job $dl_bsid") }, 10),
	'the cancelled job is gone from its server');
like(sql_ok($node, "SELECT jobq_cancel('$delayed')"), qr/^$/, 'cancel again: nothing to cancel (NULL)');
my ($rc, $out, $err) = query($node, "SELECT jobq_cancel('$d1')");
like($err, qr/is done already, nothing was cancelled/, 'cancel a done job: says so');
is(status($d1, 'state'), 'done', 'and the job stays done');
($rc, $out, $err) = query($node, "SELECT jobq_cancel('00000000-0000-4000-8000-000000000000')");
like($err, qr/is unknown, nothing was cancelled/, 'cancel an unknown job: says so');
# a cancel that rolls back cancels nothing
my $rb = put(q{'t', 'work', '{"c": "rb", "k": 1}', delay => '2 s'});
ok(wait_for($node, "SELECT state FROM jobq_status('$rb'::uuid)", 20, 'queued'), 'a delayed job');
sql_ok($node, "BEGIN; SELECT jobq_cancel('$rb'); ROLLBACK;");
is(sql_ok($node, "SELECT state FROM jobq_wait('$rb', '30 s')"), 'done',
	'a cancel rolled back: the job runs');

###########################################################################
# cancels racing the job: exactly one of done and cancelled, never both
my $script = '';
for my $i (1 .. 30)
{
	$script .= "SELECT jobq_put('t', 'work', '{\"c\": \"race\", \"k\": $i}') AS id \\gset\n"
	  . "SELECT pg_sleep(" . ($i % 6) * 0.002 . ");\n"
	  . "SELECT '$i', :'id', coalesce(jobq_cancel(:'id'), 'none');\n";
}
($rc, $out, $err) = query($node, "\\pset tuples_only on\n\\pset format unaligned\n$script");
my %race = map { my @f = split /\|/; ($f[0] => [ $f[1], $f[2] ]) } grep { /^\d+\|/ } split /\n/, $out;
is(scalar(keys %race), 30, '30 jobs put and cancelled at once');
my $ids = join("','", map { $race{$_}[0] } keys %race);
ok(wait_for($node, "SELECT bool_and(state IN ('done', 'cancelled')) FROM jobq_status(ARRAY['$ids']::uuid[])", 30),
	'each race ended done or cancelled');
sleep(1);
my %st = map { split /\|/ } split /\n/, sql_ok($node,
	"SELECT s.id || '|' || s.state || (e.k IS NOT NULL)::text FROM jobq_status(ARRAY['$ids']::uuid[]) s "
	  . "LEFT JOIN effects e ON e.c = 'race' AND e.k = (s.kwargs->>'k')::int");
my ($bad, %seen) = (0);
for my $i (keys %race)
{
	my ($id, $said) = @{ $race{$i} };
	my $k = sql_ok($node, "SELECT count(*) FROM effects WHERE c = 'race' AND k = $i");
	my $state = status($id, 'state');
	my $ok = ($said eq 'none') ? ($state eq 'done' && $k == 1) : ($state eq 'cancelled' && $k == 0);
	$seen{$said}++;
	$bad++ unless $ok;
	diag("race $i: cancel said $said, state $state, effects $k") unless $ok;
}
is($bad, 0, 'every race: cancelled and no effect, or done once and the cancel said nothing');
note('race outcomes: ' . join(', ', map { "$_ $seen{$_}" } sort keys %seen));

###########################################################################
# unique keys
my $u1 = put(q{'t', 'work', '{"c": "u", "k": 1}', delay => '1 hour', unique_key => 'u1'});
is(put(q{'t', 'work', '{"c": "u", "k": 2}', unique_key => 'u1'}), $u1, 'unique: a second put returns the first job');
isnt(put(q{'q', 'work', '{"c": "u", "k": 3}', unique_key => 'u1'}), $u1, 'unique: the key is per tube');
is(sql_ok($node, "SELECT jobq_cancel('$u1')"), 'queued', 'unique: the holder cancelled');
my $u1b = put(q{'t', 'work', '{"c": "u", "k": 4}', unique_key => 'u1'});
isnt($u1b, $u1, 'unique: a cancel frees the key');
is(sql_ok($node, "SELECT state FROM jobq_wait('$u1b', '30 s')"), 'done', 'the new holder ran');
my $u1c = put(q{'t', 'work', '{"c": "u", "k": 5}', unique_key => 'u1'});
isnt($u1c, $u1b, 'unique: done frees the key');
is(sql_ok($node, "SELECT state FROM jobq_wait('$u1c', '30 s')"), 'done', 'and that one ran');
my $uf = put(q{'t', 'boom', '{"c": "u", "k": 6}', unique_key => 'uf'});
is(sql_ok($node, "SELECT state FROM jobq_wait('$uf', '30 s')"), 'failed', 'a unique job failed');
isnt(put(q{'t', 'boom', '{"c": "u", "k": 7}', unique_key => 'uf'}), $uf, 'unique: a final failure frees the key');
is(effects_of('u'), '4,5', 'unique: only the holders ran');

# a period: the key stays taken for unique_for after the put, done or not
my $up = put(q{'t', 'work', '{"c": "up", "k": 1}', unique_key => 'p', unique_for => '3 s'});
is(sql_ok($node, "SELECT state FROM jobq_wait('$up', '30 s')"), 'done', 'a job with a period ran');
is(put(q{'t', 'work', '{"c": "up", "k": 2}', unique_key => 'p', unique_for => '3 s'}), $up,
	'unique_for: within the period the key is taken, though the job is done');
sleep(3);
isnt(put(q{'t', 'work', '{"c": "up", "k": 3}', unique_key => 'p', unique_for => '3 s'}), $up,
	'unique_for: after the period a new job');
($rc, $out, $err) = query_as($node, undef, q{SELECT jobq_put('t', 'work', unique_for => '3 s')});
is(sqlstate_of($err), '22023', 'unique_for without unique_key: 22023');

# two sessions, the same key: whichever commits first holds it
for my $first ('COMMIT', 'ROLLBACK')
{
	my $key = "c_$first";
	my $h = bg_psql($node, "BEGIN;\nSELECT jobq_put('t', 'work', '{\"c\": \"$key\", \"k\": 1}', unique_key => '$key');\n"
		  . "SELECT pg_sleep(1.5);\n$first;\n");
	usleep(500_000);
	my $second_end = $first eq 'COMMIT' ? 'ROLLBACK' : 'COMMIT';
	my $t0 = time;
	my $second = sql_ok($node, "BEGIN;\nSELECT jobq_put('t', 'work', '{\"c\": \"$key\", \"k\": 2}', unique_key => '$key');\n$second_end;");
	my $waited = time - $t0;
	my ($brc, $bout) = bg_finish($h, 30);
	my ($first_id) = $bout =~ /([0-9a-f-]{36})/;
	ok($waited > 0.5, "$first first: the second put waited for the first transaction");
	if ($first eq 'COMMIT')
	{
		is($second, $first_id, 'first committed: the second put got its job');
	}
	else
	{
		isnt($second, $first_id, 'first rolled back: the second put took the key');
	}
	my $winner = $first eq 'COMMIT' ? $first_id : $second;
	is(sql_ok($node, "SELECT state FROM jobq_wait('$winner', '30 s')"), 'done', "$first first: the holder ran");
	is(effects_of($key), $first eq 'COMMIT' ? '1' : '2', "$first first: exactly one job ran");
}

# a unique key made from the row, in the trigger
su_sql($node, q{
CREATE TABLE orders (c text, k int, ref text);
CREATE TRIGGER orders_job AFTER INSERT ON orders FOR EACH ROW
  EXECUTE FUNCTION jobq_enqueue('t', 'row_work', '{"unique_key": "ref", "delay": "1 hour"}');
INSERT INTO orders VALUES ('trg', 1, 'r1'), ('trg', 2, 'r1'), ('trg', 3, 'r2'), ('trg', 4, NULL);
});
is(sql_ok($node, q{SELECT string_agg(key, ',' ORDER BY key) FROM jobq.unique_keys WHERE tube = 't' AND key LIKE 'r%'}),
	'r1,r2', 'trigger: one key per distinct ref');
ok(wait_for($node, q{SELECT count(*) = 3 FROM jobq.sent WHERE func_name = 'row_work'}, 20),
	'trigger: three jobs (r1 once, r2, and the row without a ref)');

# kill -9 while a unique job runs: it runs again, the key taken until then
my $uk = put(q{'t', 'held', '{"c": "uk", "k": 77}', unique_key => 'kk', ttr => '3 s'});
ok(wait_for($node, "SELECT state FROM jobq_status('$uk'::uuid)", 20, 'running'), 'a unique job runs');
my $wpid = sql_ok($node, "SELECT pid FROM jobq.workers WHERE job_uuid = '$uk'");
kill 'KILL', $wpid;
ok(wait_pid_gone($wpid, 10), 'the worker running it was killed (kill -9)');
ok(wait_for($node, "SELECT count(*) = 0 FROM jobq.workers WHERE pid = $wpid", 60) && wait_workers($node, 60),
	'the cluster restarted after kill -9 of the worker');
is(put(q{'t', 'held', '{"c": "uk", "k": 78}', unique_key => 'kk'}), $uk,
	'after kill -9: the key is still taken by the job');
sql_ok($node, q{INSERT INTO gate VALUES (77)});
is(sql_ok($node, "SELECT state FROM jobq_wait('$uk', '60 s')"), 'done', 'the killed job ran again, to the end');
is(effects_of('uk'), '77', 'its effect is there once (the killed run rolled back)');
isnt(put(q{'t', 'held', '{"c": "uk", "k": 79}', unique_key => 'kk', delay => '1 hour'}), $uk,
	'and then the key is free');

###########################################################################
# jobq_wait: times out, is cancelled
my $w = put(q{'t', 'held', '{"c": "w", "k": 90}'});
my $t0 = time;
my $ws = sql_ok($node, "SELECT state FROM jobq_wait('$w', '0.5 s')");
ok($ws =~ /^(pending|queued|running)$/ && time - $t0 >= 0.5, "jobq_wait times out: $ws");
($rc, $out, $err) = query_as($node, undef, "SET statement_timeout = '300ms'; SELECT jobq_wait('$w', '1 min')");
is(sqlstate_of($err), '57014', 'jobq_wait is cancelled by statement_timeout');
($rc, $out, $err) = query_as($node, undef, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT jobq_wait('$w', '1 s')");
is(sqlstate_of($err), '0A000', 'jobq_wait refuses a REPEATABLE READ transaction');
sql_ok($node, q{INSERT INTO gate VALUES (90)});
is(sql_ok($node, "SELECT state FROM jobq_wait('$w', '30 s')"), 'done', 'jobq_wait woken when the job is done');

###########################################################################
# who sees kwargs and results, who may cancel
my $r1 = put(q{'t', 'work', '{"c": "r", "k": 1}', delay => '1 hour'});
ok(wait_for($node, "SELECT state FROM jobq_status('$r1'::uuid)", 20, 'queued'), 'a job to look at');
my $p = put(q{'t', 'work', '{"c": "r", "k": 2}', delay => '1 hour'});
is(ok_as($node, 'stranger', "SELECT concat_ws('|', state, tube, func_name, kwargs IS NULL) FROM jobq_status('$d1'::uuid)",
	'stranger reads a status'), 'done|t|work|t', 'a stranger sees the state, not the result');
is(ok_as($node, 'stranger', "SELECT result IS NULL FROM jobq_status('$d1'::uuid)", 'stranger'), 't',
	'a stranger sees no result');
is(ok_as($node, 'app', "SELECT result FROM jobq_status('$d1'::uuid)", 'producer reads a status'),
	'{"twice": 42}', 'a granted producer sees the result');
is(ok_as($node, 'stranger', "SELECT message IS NULL FROM jobq_status('$f1'::uuid)", 'stranger'), 't',
	"a stranger sees no error message of a job it may not enqueue");
fails_with($node, 'stranger', "SELECT jobq_cancel('$r1')", '42501', 'a stranger cannot cancel (42501)');
is(status($r1, 'state'), 'queued', 'and the job is not cancelled');
is(ok_as($node, 'app', "SELECT jobq_cancel('$r1')", 'producer cancels'), 'queued', 'a granted producer may cancel');

###########################################################################
# a server down: its jobs are queued there, with no beanstalkd state
my $on2 = sql_ok($node, "SELECT id FROM jobq_status(ARRAY['" . join("','", @ready)
	  . "']::uuid[]) WHERE server = '127.0.0.1:$p2' LIMIT 1");
bs_stop($bs2);
wait_pid_gone($bs2, 10);
is(status($on2, 'state, server, bs_state IS NULL'), "queued|127.0.0.1:$p2|t",
	'server down: queued on it, state unknown, no error');

# both down: a job is pending; cancelled, it never runs
bs_stop($bs1);
wait_pid_gone($bs1, 10);
my $pend = put(q{'t', 'work', '{"c": "pend", "k": 1}'});
sleep(1);
is(status($pend, 'state, kwargs'), 'pending|{"c": "pend", "k": 1}', 'pending: beanstalkd is down');
is(sql_ok($node, "SELECT jobq_cancel('$pend')"), 'pending', 'cancel: pending job, returns pending');
$bs1 = bs_start($p1, '-b', "$tmp/binlog_014_1");
$bs2 = bs_start($p2, '-b', "$tmp/binlog_014_2");
ok(wait_for($node, q{SELECT count(*) = 0 FROM jobq.outbox}, 60), 'servers back: the outbox is sent');
sql_ok($node, q{SELECT jobq_pause_tube('q', '0')});
ok(wait_for($node, "SELECT bool_and(state = 'done') FROM jobq_status(ARRAY['" . join("','", @ready)
	  . "']::uuid[])", 60), 'the ready jobs ran once their tube was resumed');
sleep(1);
is(effects_of('pend'), '', 'the cancelled pending job never ran');
is(status($pend, 'state'), 'cancelled', 'and is cancelled');

$node->stop;
bs_stop($_) for ($bs1, $bs2);
done_testing();

# batches: several jobs per transaction, each in a subtransaction of its own.
# Failure isolation inside a batch, constraints and roles that must not
# carry from one job to the next, kill -9 in the middle of a batch and
# between its commit and its deletes, touches that keep waiting jobs
# reserved, and jobq.batch_size = 1.
#
# Every batch case proves it ran batched: the handlers record
# pg_current_xact_id(), and jobs that shared a transaction share it.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(80);
my $binlog = "${PostgreSQL::Test::Utils::tmp_check}/binlog_008";
mkdir $binlog or die "mkdir $binlog: $!";
my $bs = bs_start($port, '-b', $binlog);
# one worker: which jobs share a batch follows from the order they are put
my $node = new_node('batches', $port, 'jobq.io_timeout = 60s', 'jobq.workers = 1');

sql_ok($node, q{
CREATE TABLE effects (c text NOT NULL, k int NOT NULL, note text,
                      xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                      who name NOT NULL DEFAULT current_user);  -- no unique key
CREATE SEQUENCE runs;        -- handler calls, committed or not
CREATE SEQUENCE sleep_once;  -- counts the calls that may sleep
CREATE TABLE sleep_off (off bool NOT NULL);  -- set before a kill: no sleep after it
INSERT INTO sleep_off VALUES (false);
GRANT SELECT ON sleep_off TO PUBLIC;
GRANT INSERT ON effects TO PUBLIC;
GRANT USAGE ON SEQUENCE runs, sleep_once TO PUBLIC;

-- k % 10 = 3 raises, k % 10 = 7 outlives its 300 ms limit; the rest insert
CREATE FUNCTION mixed(c text, k int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('public.runs');
    INSERT INTO public.effects (c, k) VALUES (c, k);
    IF k % 10 = 3 THEN
        RAISE EXCEPTION 'job % fails', k USING ERRCODE = 'JQ003';
    ELSIF k % 10 = 7 THEN
        PERFORM pg_sleep(5);
    END IF;
END $$;

-- inserts, then the sleep_at-th call since sleep_once was reset sleeps
-- secs; sleep_off is committed before a worker is killed (the crash may
-- take back sleep_once's unflushed increments, not that)
CREATE FUNCTION rec(c text, k int, secs float DEFAULT 0, sleep_at int DEFAULT 0)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('public.runs');
    INSERT INTO public.effects (c, k) VALUES (c, k);
    IF secs > 0 AND nextval('public.sleep_once') = sleep_at
       AND NOT (SELECT off FROM public.sleep_off) THEN
        PERFORM pg_sleep(secs);
    END IF;
END $$;

SELECT jobq_register('b_mixed', 'mixed', max_attempts => 1, timeout => '300 ms');
SELECT jobq_register('b_rec', 'rec');
SELECT jobq_register('b_slow', 'rec', timeout => '10 s');
});


# jobs that shared a transaction with another one
sub batched
{
	my ($c) = @_;
	return sql_ok($node,
		"SELECT count(*) FROM effects e WHERE c = '$c' AND EXISTS "
		  . "(SELECT FROM effects f WHERE f.c = e.c AND f.xid = e.xid AND f.k <> e.k)");
}

sub reset_sleeper
{
	sql_ok($node, "SELECT setval('sleep_once', 1, false); UPDATE sleep_off SET off = false");
}
sub sleeper_off { sql_ok($node, 'UPDATE sleep_off SET off = true'); }

# pause a tube the workers watch, run $sql (which puts jobs), un-pause
sub put_paused
{
	my ($tube, $sql) = @_;
	ok(wait_for($node, "SELECT jobq_pause_tube('$tube', '1 hour')", 30),
		"$tube: the tube exists and pause-tube answered PAUSED");
	sql_ok($node, $sql);
	sql_ok($node, "SELECT jobq_pause_tube('$tube', '0')");
}

sub tube_empty
{
	my ($tube, $secs) = @_;
	return wait_for($node,
		"SELECT coalesce(bool_and(ready + reserved + delayed = 0), true) "
		  . "FROM jobq_tubes() WHERE tube = '$tube'", $secs || 30);
}

###########################################################################
# 1. a batch where 1 job in 10 raises and 1 in 10 outlives its time limit:
#    each fails alone, the others of its transaction commit
{
	put_paused('b_mixed', q{
SELECT count(jobq_put_now('b_mixed', 'mixed', jsonb_build_object('c', 'case1', 'k', k)))
  FROM generate_series(1, 40) k;
});
	ok(wait_for($node, "SELECT count(*) = 8 FROM jobq.failed WHERE tube = 'b_mixed'", 60),
		'case 1: the 8 failing jobs are recorded in jobq.failed');
	ok(tube_empty('b_mixed'), 'case 1: every job was settled');
	is(sql_ok($node, "SELECT buried FROM jobq_tubes() WHERE tube = 'b_mixed'"), '8',
		'case 1: the failed ones are buried');
	is(effect_counts($node, 'case1'), '32/32', 'case 1: the 32 good jobs committed once each');
	is(sql_ok($node, "SELECT count(*) FROM effects WHERE c = 'case1' AND k % 10 IN (3, 7)"), '0',
		'case 1: nothing of the failed jobs survived');
	is(sql_ok($node,
			"SELECT string_agg(DISTINCT sqlstate, ',' ORDER BY sqlstate) FROM jobq.failed WHERE tube = 'b_mixed'"),
		'57014,JQ003', 'case 1: failures are the raise (JQ003) and the timeout (57014)');
	cmp_ok(batched('case1'), '>=', 10, 'case 1: jobs shared transactions (batches ran)');
	ok(sql_ok($node, q{
SELECT count(*) > 0 FROM effects a JOIN effects b USING (c, xid)
 WHERE c = 'case1' AND a.k % 10 IN (1, 2) AND b.k % 10 IN (4, 5, 6, 8) AND b.k / 10 = a.k / 10
}) eq 't', 'case 1: jobs before and after a failed one committed in one transaction');
}

###########################################################################
# 2. constraints start from their defaults in every job of a batch: an
#    INITIALLY DEFERRED foreign key lets each job insert the child first;
#    a DEFERRABLE INITIALLY IMMEDIATE unique key is checked per statement
sql_ok($node, q{
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY,
                    pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE once (x int UNIQUE DEFERRABLE INITIALLY IMMEDIATE);
INSERT INTO once VALUES (1);
CREATE FUNCTION child_first(c text, k int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE caught text := 'not caught';
BEGIN
    INSERT INTO public.child VALUES (k, k);
    INSERT INTO public.parent VALUES (k);
    BEGIN
        INSERT INTO public.once VALUES (1);
    EXCEPTION WHEN unique_violation THEN
        caught := 'caught';
    END;
    INSERT INTO public.effects (c, k, note) VALUES (c, k, caught);
END $$;
SELECT jobq_register('b_cons', 'child_first', max_attempts => 1);
});
{
	put_paused('b_cons', q{
SELECT count(jobq_put_now('b_cons', 'child_first', jsonb_build_object('c', 'case2', 'k', k)))
  FROM generate_series(1, 30) k;
});
	ok(tube_empty('b_cons', 60), 'case 2: every job was settled');
	is(sql_ok($node, "SELECT count(*) FROM jobq.failed WHERE tube = 'b_cons'"), '0',
		'case 2: no job failed on the deferred foreign key');
	is(effect_counts($node, 'case2'), '30/30', 'case 2: all 30 committed once');
	is(sql_ok($node, "SELECT count(*) FROM effects WHERE c = 'case2' AND note = 'caught'"), '30',
		'case 2: the initially immediate unique key failed at its statement in every job');
	cmp_ok(batched('case2'), '>=', 10, 'case 2: jobs shared transactions');
}

###########################################################################
# 3. roles in one batch: what alice's job opens or creates is gone before
#    bob's job runs in the same transaction
sql_ok($node, q{
CREATE ROLE alice;
CREATE ROLE bob;
SELECT lo_create(424242);
ALTER LARGE OBJECT 424242 OWNER TO alice;
SELECT lo_put(424242, 0, 'alice secret');
CREATE FUNCTION alice_opens(c text, k int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE cur refcursor := 'alice_cur';
BEGIN
    PERFORM lo_open(424242, 262144);           -- INV_READ: descriptor 0
    CREATE TEMP TABLE alice_tmp AS SELECT 'alice temp' AS v;
    OPEN cur FOR SELECT v FROM alice_tmp;      -- left open on her temp table
    INSERT INTO public.effects (c, k, note) VALUES (c, k, 'opened');
END $$;
CREATE FUNCTION bob_reads(c text, k int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE got text;
BEGIN
    BEGIN
        got := 'read ' || convert_from(loread(0, 100), 'UTF8');
    EXCEPTION WHEN others THEN
        got := SQLSTATE;
    END;
    BEGIN
        EXECUTE 'SELECT v FROM pg_temp.alice_tmp' INTO got;
        got := got || ' / read temp';
    EXCEPTION WHEN others THEN
        got := got || ' / ' || SQLSTATE;
    END;
    DECLARE
        v text;
        cur refcursor := 'alice_cur';
    BEGIN
        FETCH cur INTO v;
        got := got || ' / fetched ' || coalesce(v, 'nothing');
    EXCEPTION WHEN others THEN
        got := got || ' / ' || SQLSTATE;
    END;
    INSERT INTO public.effects (c, k, note) VALUES (c, k, got);
END $$;
ALTER FUNCTION alice_opens OWNER TO alice;
ALTER FUNCTION bob_reads OWNER TO bob;
SELECT jobq_register('b_roles', 'alice_opens', run_as => 'alice');
SELECT jobq_register('b_roles', 'bob_reads', run_as => 'bob');
});
{
	put_paused('b_roles', q{
SELECT count(jobq_put_now('b_roles', CASE WHEN k % 2 = 1 THEN 'alice_opens' ELSE 'bob_reads' END,
                          jsonb_build_object('c', 'case3', 'k', k)))
  FROM generate_series(1, 40) k;
});
	ok(tube_empty('b_roles', 60), 'case 3: every job was settled');
	is(effect_counts($node, 'case3'), '40/40', 'case 3: all 40 committed once');
	cmp_ok(sql_ok($node, q{
SELECT count(*) FROM effects b JOIN effects a USING (c, xid)
 WHERE c = 'case3' AND b.who = 'bob' AND a.who = 'alice' AND a.k < b.k
}), '>=', 1, 'case 3: bob jobs ran after alice jobs in the same transaction');
	is(sql_ok($node,
			"SELECT string_agg(DISTINCT note, ',') FROM effects WHERE c = 'case3' AND who = 'bob'"),
		'42704 / 42P01 / 34000',
		"case 3: bob's jobs found neither alice's large object descriptor, nor her temp table, nor her cursor");
	is(sql_ok($node, "SELECT count(*) FROM jobq.failed WHERE tube = 'b_roles'"), '0',
		"case 3: alice's jobs, which leave a cursor open on a temp table, did not fail");
}

###########################################################################
# 4. kill -9 in the middle of a batch: the second job of the batch sleeps;
#    the first ran but did not commit; all of the batch runs again, and
#    each effect lands once
{
	my $logpos = -s $node->logfile;
	reset_sleeper();
	my $runs_before = sql_ok($node, "SELECT nextval('runs')");
	put_paused('b_rec', q{
SELECT count(jobq_put_now('b_rec', 'rec',
         jsonb_build_object('c', 'case4', 'k', k, 'secs', 60, 'sleep_at', 2)))
  FROM generate_series(1, 30) k;
});
	ok(wait_for($node,
			"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'jobq: rec on tube b_rec%' AND wait_event = 'PgSleep'",
			30),
		'case 4: the worker sleeps in the second job of its batch');
	my $victim = sql_ok($node,
		"SELECT pid FROM pg_stat_activity WHERE query LIKE 'jobq: rec on tube b_rec%' AND wait_event = 'PgSleep'");
	my $held = bs_stats($port, 'stats-tube b_rec')->{'current-jobs-reserved'};
	cmp_ok($held, '>=', 2, "case 4: the batch holds $held jobs");
	is(sql_ok($node, "SELECT last_value - $runs_before FROM runs"), '2',
		'case 4: two handlers of the batch were called');
	is(effect_counts($node, 'case4'), '0/0', 'case 4: ... and nothing is committed');
	sleeper_off();
	ok(kill('KILL', $victim), "case 4: SIGKILL sent to worker $victim");
	ok(wait_log($node, qr/all server processes terminated; reinitializing/, $logpos, 30),
		'case 4: the postmaster reinitialized after the crash');
	ok(wait_workers($node, 60, 1), 'case 4: the worker is back');
	ok(tube_empty('b_rec', 60), 'case 4: every job was settled');
	is(effect_counts($node, 'case4'), '30/30', 'case 4: all 30 effects landed, each once');
	cmp_ok(sql_ok($node, "SELECT last_value - $runs_before FROM runs"), '>=', 32,
		'case 4: the killed batch\'s first jobs ran again');
	is(sql_ok($node, "SELECT count(*) FROM jobq.failed WHERE tube = 'b_rec'"), '0',
		'case 4: nothing failed');
}

###########################################################################
# 5. committed, then killed before the deletes: the batch's first job
#    sleeps 3.5 s; while it sleeps, beanstalkd is stopped (SIGSTOP), before
#    the batch's first touch (ttr 5 s: at 2.5 s), whose replies cannot come;
#    the batch commits, and its deletes wait behind them.  The worker is
#    killed then; the jobs are still in beanstalkd, and when they come back
#    each is dropped as done
{
	my $logpos = -s $node->logfile;
	reset_sleeper();
	put_paused('b_slow', q{
SELECT count(jobq_put_now('b_slow', 'rec',
         jsonb_build_object('c', 'case5', 'k', k, 'secs', 3.5, 'sleep_at', 1), ttr => '5 s'))
  FROM generate_series(1, 12) k;
});
	ok(wait_for($node,
			"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'jobq: rec on tube b_slow%' AND wait_event = 'PgSleep'",
			30),
		'case 5: the first job of the batch sleeps')
	  or diag(sql_ok($node, "SELECT string_agg(coalesce(last_error, '-'), ' | ') FROM jobq.workers"));
	my $held = bs_stats($port, 'stats-tube b_slow')->{'current-jobs-reserved'};
	cmp_ok($held, '>=', 2, "case 5: the batch holds $held jobs");
	bs_signal($bs, 'STOP');
	ok(wait_for($node, "SELECT count(*) >= 1 FROM effects WHERE c = 'case5'", 30),
		'case 5: the batch committed, beanstalkd stopped');
	my $committed = effect_counts($node, 'case5');
	note('case 5: committed ' . sql_ok($node,
			"SELECT string_agg(k || ':' || xid, ' ' ORDER BY k) FROM effects WHERE c = 'case5'")
		  . '; failed: ' . sql_ok($node,
			"SELECT coalesce(string_agg(message, ' | '), 'none') FROM jobq.failed WHERE tube = 'b_slow'"));
	like($committed, qr/^([2-9]|1[0-2])\/\g1$/, "case 5: $committed jobs committed in the batch");
	ok(sql_ok($node, "SELECT count(DISTINCT xid) = 1 FROM effects WHERE c = 'case5'") eq 't',
		'case 5: ... in one transaction');
	my $victim = sql_ok($node, "SELECT pid FROM jobq.workers WHERE kind = 'worker'");
	sleeper_off();
	ok(kill('KILL', $victim), "case 5: SIGKILL sent to worker $victim, beanstalkd stopped");
	ok(wait_log($node, qr/all server processes terminated; reinitializing/, $logpos, 30),
		'case 5: the cluster reinitialized');
	$node->stop('fast');
	bs_signal($bs, 'CONT');
	my $st = bs_stats($port, 'stats-tube b_slow');
	note('case 5: b_slow after CONT: ' . join(', ', map { "$_=$st->{$_}" }
		  grep { /^current-jobs|^cmd-delete/ } sort keys %$st));
	is($st->{'current-jobs-ready'} + $st->{'current-jobs-reserved'}
		  + $st->{'current-jobs-delayed'} + $st->{'current-jobs-buried'}, 12,
		'case 5: all 12 jobs are still in beanstalkd: no delete reached it');
	$node->start;
	ok(wait_workers($node, 60, 1), 'case 5: the worker is back');
	ok(tube_empty('b_slow', 60), 'case 5: every job was settled');
	is(effect_counts($node, 'case5'), '12/12', 'case 5: each effect is there once: the committed jobs were dropped as done');
	is(sql_ok($node, "SELECT count(*) FROM jobq.failed WHERE tube = 'b_slow'"), '0',
		'case 5: nothing failed');
}

###########################################################################
# 6. touches keep a batch's jobs reserved past their ttr: the batch's first
#    job sleeps 2.5 s, and every job of it has a ttr of 2 s
{
	my $before = bs_stats($port, 'stats');
	reset_sleeper();
	put_paused('b_slow', q{
SELECT count(jobq_put_now('b_slow', 'rec',
         jsonb_build_object('c', 'case6', 'k', k, 'secs', 2.5, 'sleep_at', 1), ttr => '2 s'))
  FROM generate_series(1, 12) k;
});
	ok(tube_empty('b_slow', 60), 'case 6: every job was settled');
	my $after = bs_stats($port, 'stats');
	is(effect_counts($node, 'case6'), '12/12', 'case 6: each effect is there once');
	cmp_ok(sql_ok($node, q{
SELECT count(*) FROM effects a JOIN effects b USING (c, xid)
 WHERE c = 'case6' AND a.k = (SELECT min(k) FROM effects WHERE c = 'case6') AND b.k <> a.k
}), '>=', 1, 'case 6: other jobs were held in the sleeping job\'s transaction past their ttr');
	cmp_ok($after->{'cmd-touch'} - $before->{'cmd-touch'}, '>=', 1, 'case 6: they were touched');
	is($after->{'job-timeouts'} - $before->{'job-timeouts'}, 0, 'case 6: no reservation ran out');
}

###########################################################################
# 7. jobq.batch_size = 1, and jobq.touch_jobs = off: a transaction a job
{
	for my $setting ('jobq.batch_size = 1', 'jobq.touch_jobs = off')
	{
		my $c = $setting =~ /batch/ ? 'case7a' : 'case7b';
		sql_ok($node, "ALTER SYSTEM SET $setting");
		sql_ok($node, 'SELECT pg_reload_conf()');
		sleep 2;    # the workers reload at their next loop (reserve waits 1 s)
		put_paused('b_rec', qq{
SELECT count(jobq_put_now('b_rec', 'rec', jsonb_build_object('c', '$c', 'k', k)))
  FROM generate_series(1, 20) k;
});
		ok(tube_empty('b_rec', 60), "$setting: every job was settled");
		is(effect_counts($node, $c), '20/20', "$setting: all committed once");
		is(batched($c), '0', "$setting: each job had a transaction of its own");
		sql_ok($node, 'ALTER SYSTEM RESET ALL');
		sql_ok($node, 'SELECT pg_reload_conf()');
	}
}

$node->stop('fast');
done_testing();

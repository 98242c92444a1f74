# Security (issue 8): no role gets past its rights through jobq, and no
# registrant can crash or wedge the server.  One or a few cases per finding
# of the issue; each attack is made by a real LOGIN role connecting as itself,
# first proves the attack was attempted (the planted object exists, the role
# is not superuser), then checks the outcome.
#
# Three clusters: B (one worker: handler session state, touch overflow),
# C (signed bodies), A (everything else; the relay wedge last).
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256_hex);
use IO::Socket::INET;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use JobqTest;

my $T0 = time;

# ---------------------------------------------------------------- helpers

# psql as $role (undef: the cluster superuser), verbose errors:
# returns ($rc, $stdout, $stderr)
sub as_role
{
	my ($node, $role, $sql, %o) = @_;
	return query_as($node, $role, $sql, %o);
}

sub is_super
{
	my ($node, $role) = @_;
	return su_sql($node, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) '$role'");
}

my @PRODUCE = qw(jobq_put jobq_put_now jobq_enqueue);
my @REGISTER = qw(jobq_register jobq_unregister jobq_retry_failed);
my @GRANT = qw(jobq_grant jobq_revoke);

# nothing ready, reserved or delayed in a tube
sub tube_idle
{
	my ($port, $tube) = @_;
	my $st = bs_stats($port, "stats-tube $tube");
	return 1 unless $st;
	return ($st->{'current-jobs-ready'} + $st->{'current-jobs-reserved'}
		  + $st->{'current-jobs-delayed'}) == 0;
}

# A schema with operators =(text,text) and =(bigint,bigint) that answer
# correctly but first record who called them (current_user, superuser or not,
# backend type) and try to make $victim superuser.  With $bg_only they act
# only inside jobq's background processes (for settings that also reach the
# test's own sessions).
sub plant_eq_sql
{
	my ($schema, $victim, $bg_only) = @_;
	my $cond = $bg_only
	  ? "coalesce((SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()), '') LIKE 'jobq%'"
	  : 'true';
	return qq{
CREATE TABLE $schema.canary (who name, su boolean, backend text, at timestamptz DEFAULT clock_timestamp());
GRANT USAGE ON SCHEMA $schema TO PUBLIC;
GRANT INSERT, SELECT ON $schema.canary TO PUBLIC;
CREATE FUNCTION $schema.evil() RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS \$f\$
BEGIN
  IF $cond THEN
    BEGIN
      INSERT INTO $schema.canary (who, su, backend)
        VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()));
    EXCEPTION WHEN others THEN NULL;
    END;
    BEGIN
      EXECUTE 'ALTER ROLE $victim SUPERUSER';
    EXCEPTION WHEN others THEN NULL;
    END;
  END IF;
END \$f\$;
CREATE FUNCTION $schema.eq_text(a text, b text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
  \$f\$ BEGIN PERFORM $schema.evil(); RETURN a OPERATOR(pg_catalog.=) b; END \$f\$;
CREATE FUNCTION $schema.eq_int8(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
  \$f\$ BEGIN PERFORM $schema.evil(); RETURN a OPERATOR(pg_catalog.=) b; END \$f\$;
CREATE OPERATOR $schema.= (LEFTARG = text, RIGHTARG = text, FUNCTION = $schema.eq_text);
CREATE OPERATOR $schema.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = $schema.eq_int8);
};
}

sub planted_ops
{
	my ($node, $schema) = @_;
	return su_sql($node, "SELECT count(*) FROM pg_catalog.pg_operator WHERE oprnamespace OPERATOR(pg_catalog.=) '$schema'::regnamespace");
}

sub canary_su
{
	my ($node, $schema) = @_;
	return su_sql($node, "SELECT count(*) FROM $schema.canary WHERE su");
}

# the relay and $nworkers workers are up (wait_workers expects 2 workers)
sub wait_n
{
	my ($node, $nworkers, $secs) = @_;
	return wait_for($node,
		"SELECT count(*) = " . ($nworkers + 1)
		  . " AND bool_and(pid IS NOT NULL AND state <> 'starting') FROM jobq.workers", $secs);
}

# a cluster with jobq and $nworkers workers (new_node waits for 2)
sub node_with
{
	my ($name, $bsport, $nworkers, @extra) = @_;
	my $node = init_node($name);
	jobq_conf($node, $bsport, "jobq.workers = $nworkers", @extra);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION jobq');
	$node->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
	wait_n($node, $nworkers, 60) or BAIL_OUT("jobq workers did not start");
	su_sql($node, q{
CREATE TABLE public.effects (tag text, who name DEFAULT current_user, kw jsonb,
                             at timestamptz DEFAULT clock_timestamp());
GRANT INSERT, SELECT ON public.effects TO PUBLIC;
});
	return $node;
}

# =====================================================================
# Cluster B: one worker, so that every job runs in the same session
# =====================================================================
my $portB = bs_port(61);
bs_start($portB);
my $B = node_with('sec_b', $portB, 1);
note(sprintf('cluster B up at %.1f s', time - $T0));

su_sql($B, q{
CREATE ROLE mal2 LOGIN; CREATE ROLE al2 LOGIN; CREATE ROLE adm2 LOGIN; CREATE ROLE dbown2 LOGIN;
GRANT CREATE ON DATABASE postgres TO mal2;
GRANT CREATE ON SCHEMA public TO mal2, al2;
CREATE SCHEMA admin2 AUTHORIZATION adm2;
});
grant_jobq($B, $_, @REGISTER, @PRODUCE) for qw(mal2 al2 adm2 dbown2);

ok_as($B, 'al2', q{
CREATE FUNCTION public.a2(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('a2', kw)$$;
SELECT jobq_register('ta2', 'a2');
}, 'setup: al2 registers a2 on tube ta2');
su_sql($B, q{
CREATE FUNCTION public.su2(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('su2', kw)$$;
SELECT jobq_register('tsu2', 'su2');
});

sub effect_or_failed
{
	my ($node, $tag, $n, $secs) = @_;
	my $nsel = defined $n ? " AND kw->>'n' = '$n'" : '';
	return wait_for($node,
		"SELECT EXISTS (SELECT FROM public.effects WHERE tag = '$tag'$nsel) "
		  . "OR EXISTS (SELECT FROM jobq.failed WHERE func_name = '$tag'"
		  . (defined $n ? " AND kwargs->>'n' = '$n'" : '') . ')', $secs || 20);
}

sub effect_count
{
	my ($node, $tag, $n) = @_;
	my $nsel = defined $n ? " AND kw->>'n' = '$n'" : '';
	return su_sql($node, "SELECT count(*) FROM public.effects WHERE tag = '$tag'$nsel");
}

# --- 2a. a handler's session-level search_path reaches the next lookup
{
	ok_as($B, 'mal2', q{
CREATE SCHEMA ms2;
} . plant_eq_sql('ms2', 'mal2', 1) . q{
CREATE FUNCTION public.m2a(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('search_path', 'ms2, pg_catalog', false);
  INSERT INTO public.effects (tag, kw) VALUES ('m2a', kw);
END $$;
SELECT jobq_register('tm2', 'm2a');
}, 'case 2a: mal2 plants ms2.= and registers a handler setting search_path');
	is(planted_ops($B, 'ms2'), '2', 'case 2a: the planted operators exist');
	is(is_super($B, 'mal2'), 'f', 'case 2a: mal2 is not superuser before');
	ok_as($B, 'mal2', q{SELECT jobq_put('tm2', 'm2a', '{"n": "2a"}')}, 'case 2a: mal2 enqueues her job');
	ok(effect_or_failed($B, 'm2a'), 'case 2a: her handler ran (or was refused)');
	ok_as($B, 'al2', q{SELECT jobq_put('ta2', 'a2', '{"n": "2a"}')}, 'case 2a: al2 enqueues a later job');
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'a2' AND kw->>'n' = '2a')}, 20),
		'case 2a: the later job of another role ran normally');
	is(is_super($B, 'mal2'), 'f', 'case 2a: mal2 is still not superuser');
	is(canary_su($B, 'ms2'), '0', 'case 2a: the planted operator never ran as a superuser');
	# on 1.0 the worker keeps ms2 on its path: remove the plant for the next cases
	su_sql($B, 'ALTER ROLE mal2 NOSUPERUSER; DROP SCHEMA ms2 CASCADE');
}

# --- 2b. a temp table shadows the table another role's handler writes
{
	ok_as($B, 'adm2', q{
CREATE TABLE admin2.t (x text);
CREATE FUNCTION admin2.adm_h(kw jsonb) RETURNS void LANGUAGE plpgsql SET search_path = admin2 AS $$
BEGIN
  INSERT INTO t VALUES ('adm');
END $$;
SELECT jobq_register('tadm', 'adm_h', 'admin2.adm_h(jsonb)'::regprocedure);
}, 'case 2b: adm2 registers a handler writing unqualified t with search_path = admin2');
	ok_as($B, 'mal2', q{
CREATE TABLE public.canary2b (who name, at timestamptz DEFAULT clock_timestamp());
GRANT INSERT, SELECT ON public.canary2b TO PUBLIC;
CREATE FUNCTION public.m2b_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.canary2b (who) VALUES (current_user);
  RETURN NEW;
END $$;
CREATE FUNCTION public.m2b(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE t (x text);
  GRANT ALL ON pg_temp.t TO PUBLIC;
  CREATE TRIGGER t_trg BEFORE INSERT ON pg_temp.t FOR EACH ROW EXECUTE FUNCTION public.m2b_trg();
  INSERT INTO public.effects (tag, kw) VALUES ('m2b', kw);
END $$;
SELECT jobq_register('tm2b', 'm2b');
}, 'case 2b: mal2 registers a handler creating temp table t with a trigger');
	ok_as($B, 'mal2', q{SELECT jobq_put('tm2b', 'm2b', '{"n": "2b"}')}, 'case 2b: mal2 enqueues it');
	ok(effect_or_failed($B, 'm2b'), 'case 2b: mal2\'s handler ran (or failed)');
	note('case 2b: mal2\'s handler '
		  . (effect_count($B, 'm2b') eq '1' ? 'succeeded' : 'failed: '
			. su_sql($B, "SELECT sqlstate || ' ' || message FROM jobq.failed WHERE func_name = 'm2b'")));
	ok_as($B, 'adm2', q{SELECT jobq_put('tadm', 'adm_h', '{}')}, 'case 2b: adm2 enqueues his job');
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM admin2.t) OR EXISTS (SELECT FROM public.canary2b)
	   OR EXISTS (SELECT FROM jobq.failed WHERE func_name = 'adm_h')}, 20),
		'case 2b: adm2\'s job ran');
	is(su_sql($B, q{SELECT count(*) FROM public.canary2b WHERE who = 'adm2'}), '0',
		'case 2b: mal2\'s trigger never ran as adm2');
	is(su_sql($B, 'SELECT count(*) FROM admin2.t'), '1', 'case 2b: adm2\'s job wrote admin2.t');
}

# --- 2e. a session-level advisory lock taken by a handler
{
	ok_as($B, 'mal2', q{
CREATE FUNCTION public.m2l(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_lock(42);
  INSERT INTO public.effects (tag, kw) VALUES ('m2l', kw);
END $$;
SELECT jobq_register('tm2l', 'm2l');
SELECT jobq_put('tm2l', 'm2l', '{}');
}, 'case 2 (advisory lock): mal2 registers and enqueues a handler taking a session lock');
	ok(effect_or_failed($B, 'm2l'), 'case 2 (advisory lock): the handler ran (or failed)');
	# a marker job after it, so the worker is past the job's end
	ok_as($B, 'al2', q{SELECT jobq_put('ta2', 'a2', '{"n": "2l"}')}, 'case 2 (advisory lock): a marker job');
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'a2' AND kw->>'n' = '2l')}, 20),
		'case 2 (advisory lock): the marker job ran');
	is(su_sql($B, q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42 AND granted}), '0',
		'case 2 (advisory lock): no lock 42 is held after the job');
	is(su_sql($B, 'SELECT pg_try_advisory_lock(42)'), 't',
		'case 2 (advisory lock): another session can take lock 42');
}

# --- 7. dispatch cache keys: parameter names with commas (one worker: both
# calls of a function run in the same session, with the same cache)
{
	su_sql($B, q{
CREATE TABLE public.k7log (fn text, ab text, a text, b text);
CREATE FUNCTION public.k7a("a,b" text DEFAULT 'x', a text DEFAULT 'y', b text DEFAULT 'z') RETURNS void
  LANGUAGE sql AS $$INSERT INTO public.k7log VALUES ('k7a', $1, $2, $3)$$;
CREATE FUNCTION public.k7b("a,b" text DEFAULT 'x', a text DEFAULT 'y', b text DEFAULT 'z') RETURNS void
  LANGUAGE sql AS $$INSERT INTO public.k7log VALUES ('k7b', $1, $2, $3)$$;
SELECT jobq_register('t7', 'k7a');
SELECT jobq_register('t7', 'k7b');
});
	my $pids = worker_pids($B);
	my $pos = -s $B->logfile;
	my $crashed = sub { log_since($B, $pos) =~ /terminated by signal|was terminated/ };
	my $step = sub {
		my ($fn, $kw, $n) = @_;
		my ($rc, $out, $err) = query($B, "SELECT jobq_put('t7', '$fn', '$kw')");
		return 0 if $rc != 0;
		return wait_perl(sub {
				$crashed->() || do {
					my ($r, $o) = query($B, "SELECT count(*) FROM public.k7log WHERE fn = '$fn'");
					$r == 0 && $o eq $n;
				  }
			}, 20);
	};
	# k7a: two keys first, then the one whose name has a comma
	$step->('k7a', '{"a": "1", "b": "2"}', 1);
	$step->('k7a', '{"a,b": "X"}', 2);
	wait_n($B, 1, 60) if $crashed->();
	# k7b: the other way round
	$step->('k7b', '{"a,b": "X"}', 1);
	$step->('k7b', '{"a": "1", "b": "2"}', 2);
	ok(!$crashed->(), 'case 7: no server process was terminated by a signal')
	  or diag(join("\n", grep { /terminated/ } split /\n/, log_since($B, $pos)));
	wait_n($B, 1, 60);
	is(worker_pids($B), $pids, 'case 7: the same workers ran both calls');
	is(su_sql($B, q{SELECT string_agg(concat_ws('|', ab, a, b), ',' ORDER BY ab, a) FROM public.k7log WHERE fn = 'k7a'}),
		'X|y|z,x|1|2', 'case 7: k7a got {"a","b"} then {"a,b"} right');
	is(su_sql($B, q{SELECT string_agg(concat_ws('|', ab, a, b), ',' ORDER BY ab, a) FROM public.k7log WHERE fn = 'k7b'}),
		'X|y|z,x|1|2', 'case 7: k7b got {"a,b"} then {"a","b"} right');
}

# --- 9b. the touch interval (int) of ttr/2 overflows into a touch storm
{
	# ttr * 500 ms = 4 ms modulo 2^32: 1.0 touches every 4 ms
	my $ttr = 652835029;
	su_sql($B, q{
CREATE FUNCTION public.h9t(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(2.5);
  INSERT INTO public.effects (tag, kw) VALUES ('h9t', kw);
END $$;
SELECT jobq_register('t9t', 'h9t');
});
	my $before = bs_stats($portB, 'stats')->{'cmd-touch'};
	su_sql($B, "SELECT jobq_put('t9t', 'h9t', '{}', ttr => make_interval(secs => $ttr))");
	ok(effect_or_failed($B, 'h9t'), 'case 9 (touch): the long-ttr job finished');
	is(effect_count($B, 'h9t'), '1', 'case 9 (touch): it succeeded');
	my $touches = bs_stats($portB, 'stats')->{'cmd-touch'} - $before;
	cmp_ok($touches, '<', 10, "case 9 (touch): no storm of touches (ttr $ttr s)");
}

# --- 2c. a non-superuser database owner sets the database's search_path
{
	su_sql($B, 'ALTER DATABASE postgres OWNER TO dbown2');
	ok_as($B, 'dbown2', q{
CREATE SCHEMA dbs2;
} . plant_eq_sql('dbs2', 'dbown2', 1) . q{
ALTER DATABASE postgres SET search_path = dbs2, pg_catalog;
}, 'case 2c: the database owner plants dbs2.= and sets the database search_path');
	is(planted_ops($B, 'dbs2'), '2', 'case 2c: the planted operators exist');
	is(is_super($B, 'dbown2'), 'f', 'case 2c: dbown2 is not superuser before');
	my $old = su_sql($B, q{SELECT string_agg(pid::text, ',') FROM jobq.workers});
	su_sql($B, q{SELECT pg_catalog.pg_terminate_backend(pid) FROM jobq.workers});
	ok(wait_for($B, qq{SELECT count(*) OPERATOR(pg_catalog.=) 2
	     AND bool_and(pid IS NOT NULL AND pid::text <> ALL (pg_catalog.string_to_array('$old', ','))
	                  AND state::text OPERATOR(pg_catalog.<>) 'starting'::text) FROM jobq.workers}, 40),
		'case 2c: the worker and the relay reconnected');
	ok_as($B, 'al2', q{SELECT public.jobq_put('ta2', 'a2', '{"n": "2c"}')}, 'case 2c: al2 enqueues a job');
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag OPERATOR(pg_catalog.=) 'a2'::text
	                 AND (kw->>'n') OPERATOR(pg_catalog.=) '2c'::text)}, 20),
		'case 2c: the job ran');
	is(is_super($B, 'dbown2'), 'f', 'case 2c: dbown2 is still not superuser');
	is(canary_su($B, 'dbs2'), '0', 'case 2c: the planted operator never ran as a superuser');
	su_sql($B, q{ALTER DATABASE postgres SET search_path = public;
ALTER DATABASE postgres OWNER TO CURRENT_USER;
DROP SCHEMA dbs2 CASCADE;});
}

# --- 2d. default_transaction_read_only set by a handler
{
	ok_as($B, 'mal2', q{
CREATE FUNCTION public.m2d(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('default_transaction_read_only', 'on', false);
  INSERT INTO public.effects (tag, kw) VALUES ('m2d', kw);
END $$;
SELECT jobq_register('tm2d', 'm2d');
SELECT jobq_put('tm2d', 'm2d', '{}');
}, 'case 2d: mal2 registers and enqueues a handler setting default_transaction_read_only');
	ok(effect_or_failed($B, 'm2d'), 'case 2d: the handler ran (or failed)');
	su_sql($B, q{SELECT jobq_put('ta2', 'a2', '{"n": "2d"}'); SELECT jobq_put('tsu2', 'su2', '{"n": "2d"}');});
	ok(wait_for($B, q{SELECT (SELECT count(*) FROM public.effects WHERE tag IN ('a2', 'su2') AND kw->>'n' = '2d') = 2}, 20),
		'case 2d: later jobs of other tubes still run and succeed');
}
# --- review of the fix: a job put before its pair was registered is not run
# (a producer could otherwise plant jobs for a handler yet to come)
{
	ok_as($B, 'mal2', q{SELECT jobq_put('tplant', 'a2late', '{"n": "planted"}')},
		'planting: mal2 puts a job for a pair nobody registered yet (free)');
	ok(wait_perl(sub { my $st = bs_stats($portB, 'stats-tube tplant'); $st && $st->{'current-jobs-ready'} == 1 }, 20),
		'planting: the job waits in beanstalkd, in a tube nobody watches');
	usleep(2_100_000);			# beanstalkd counts a job's age in whole seconds
	ok_as($B, 'al2', q{
CREATE FUNCTION public.a2late(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('a2late', kw)$$;
SELECT jobq_register('tplant', 'a2late');
SELECT jobq_put('tplant', 'a2late', '{"n": "after"}');
}, 'planting: al2 registers the pair, then enqueues a job of her own');
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'a2late' AND kw->>'n' = 'after')}, 20),
		'planting: the job put after the registration runs');
	ok(wait_for($B, q{SELECT sqlstate = '42501' FROM jobq.failed WHERE func_name = 'a2late' AND kwargs->>'n' = 'planted'}, 20),
		'planting: the planted job is recorded as failed with 42501');
	is(effect_count($B, 'a2late', 'planted'), '0', 'planting: the planted job never ran');
}

# --- review of the fix: a dropped handler function fails its job once
{
	su_sql($B, q{
CREATE FUNCTION public.gone(kw jsonb) RETURNS void LANGUAGE sql AS $$SELECT$$;
SELECT jobq_register('tgone', 'gone');
DROP FUNCTION public.gone(jsonb);
SELECT jobq_put('tgone', 'gone', '{}');
SELECT jobq_put('ta2', 'a2', '{"n": "after-gone"}');
});
	ok(wait_for($B, q{SELECT sqlstate || ' ' || attempts FROM jobq.failed WHERE tube = 'tgone'}, 20, '42883 1'),
		'dropped function: its job is recorded once, 42883');
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'a2' AND kw->>'n' = 'after-gone')}, 20),
		'dropped function: the worker goes on with other jobs');
}

# --- review of the fix: replacing a registration with another run_as drops its grants
{
	su_sql($B, q{
CREATE ROLE pay2; CREATE ROLE both2 LOGIN IN ROLE al2, pay2;
});
	grant_jobq($B, $_, @GRANT) for qw(al2 both2);
	grant_jobq($B, 'both2', @REGISTER);
	ok_as($B, 'al2', q{SELECT jobq_grant('ta2', 'a2', 'mal2')}, 'grants: al2 grants mal2 on (ta2, a2)');
	su_sql($B, q{GRANT EXECUTE ON FUNCTION public.a2(jsonb) TO pay2; ALTER FUNCTION public.a2(jsonb) OWNER TO both2;});
	ok_as($B, 'both2', q{SELECT jobq_register('ta2', 'a2', run_as => 'pay2')},
		'grants: a member of both al2 and pay2 moves the registration to run as pay2');
	is(su_sql($B, q{SELECT cardinality(producers) FROM jobq.handlers WHERE tube = 'ta2' AND func_name = 'a2'}), '0',
		'grants: al2\'s grant does not carry over to pay2');
	fails_with($B, 'mal2', q{SELECT jobq_put('ta2', 'a2', '{}')}, '42501',
		'grants: mal2 may no longer enqueue for it');
}

# --- review of the fix: a handler that swallows its time limit's cancel
# (cluster B has jobq.max_handler_time at its default: the registration's timeout)
{
	my $pids = worker_pids($B);
	su_sql($B, q{
CREATE FUNCTION public.stubborn(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  LOOP
    BEGIN
      PERFORM pg_sleep(0.2);
    EXCEPTION WHEN query_canceled THEN
      INSERT INTO public.effects (tag) VALUES ('stubborn-cancelled');
    END;
  END LOOP;
END $$;
SELECT jobq_register('tstub', 'stubborn', timeout => '1 s', max_attempts => 1);
SELECT jobq_put('tstub', 'stubborn', '{}');
});
	ok(wait_for($B, q{SELECT sqlstate FROM jobq.failed WHERE tube = 'tstub'}, 180, 'XX000'),
		'stubborn handler: ended with its worker, then buried once it came back too often');
	isnt(worker_pids($B), $pids, 'stubborn handler: the worker was replaced');
	ok(wait_n($B, 1, 30), 'stubborn handler: the worker is back');
}

$B->stop('fast');
note(sprintf('cluster B done at %.1f s', time - $T0));

# =====================================================================
# Cluster C: signed bodies
# =====================================================================
{
	my $portC = bs_port(62);
	bs_start($portC);
	my $C = node_with('sec_c', $portC, 2, "jobq.signing_key = 'k3y'", 'jobq.require_signature = on');
	su_sql($C, q{
CREATE ROLE c10 LOGIN;
CREATE FUNCTION public.h10s(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('h10s', kw)$$;
SELECT jobq_register('t10s', 'h10s');
});
	my ($rc, $out, $err) = as_role($C, 'c10', 'SHOW jobq.signing_key');
	ok($rc != 0 || $out !~ /k3y/, 'case 10 (signing): SHOW jobq.signing_key shows no secret to others');
	($rc, $out, $err) = as_role($C, undef, 'SHOW jobq.signing_key');
	ok($rc == 0 && $out ne '' && $out !~ /k3y/,
		"case 10 (signing): SHOW jobq.signing_key as superuser hides it (got '$out')")
	  or diag($err);

	su_sql($C, q{SELECT jobq_put('t10s', 'h10s', '{"n": "put"}')});
	my $sign = sub {
		my ($b, $key) = @_;
		my $h = hmac_sha256_hex($b, $key);
		(my $s = $b) =~ s/\}$/,"sig":"$h"}/;
		return $s;
	};
	my $body = sub { return qq({"func_name":"h10s","tube":"t10s","kwargs":{"n":"$_[0]"}}) };
	my %ids;
	$ids{unsigned} = raw_put($portC, 't10s', $body->('unsigned'));
	$ids{wrongkey} = raw_put($portC, 't10s', $sign->($body->('wrongkey'), 'not-the-key'));
	(my $altered = $sign->($body->('orig'), 'k3y')) =~ s/"orig"/"altered"/;
	$ids{altered} = raw_put($portC, 't10s', $altered);
	$ids{signed} = raw_put($portC, 't10s', $sign->($body->('signed'), 'k3y'));
	ok(!grep({ !defined } values %ids), 'case 10 (signing): the raw bodies were put');
	my $bad = join(',', map { $ids{$_} // 0 } qw(unsigned wrongkey altered));
	ok(wait_for($C, qq{SELECT (SELECT count(*) FROM jobq.failed WHERE bs_id IN ($bad))
	   + (SELECT count(*) FROM public.effects WHERE kw->>'n' IN ('unsigned', 'wrongkey', 'altered')) = 3
	   AND EXISTS (SELECT FROM public.effects WHERE kw->>'n' = 'signed')
	   AND EXISTS (SELECT FROM public.effects WHERE kw->>'n' = 'put')}, 20),
		'case 10 (signing): every body was handled');
	is(effect_count($C, 'h10s', 'put'), '1', 'case 10 (signing): a jobq_put job runs');
	is(effect_count($C, 'h10s', 'signed'), '1', 'case 10 (signing): a raw body signed in Perl runs');
	for my $k (qw(unsigned wrongkey altered))
	{
		is(effect_count($C, 'h10s', $k), '0', "case 10 (signing): the $k body did not run");
		is(su_sql($C, "SELECT count(*) FROM jobq.failed WHERE bs_id = " . ($ids{$k} // 0)), '1',
			"case 10 (signing): the $k body is in jobq.failed");
	}
	is(su_sql($C, "SELECT raw_body IS NOT NULL FROM jobq.failed WHERE bs_id = " . ($ids{unsigned} // 0)), 't',
		'case 10 (signing): the unsigned body\'s raw_body is kept');
	$C->stop('fast');
	note(sprintf('cluster C done at %.1f s', time - $T0));
}

# =====================================================================
# Cluster A: two workers, beanstalkd taking jobs of up to 2 MB
# =====================================================================
my $portA = bs_port(60);
bs_start($portA, '-z', 2000000);
my $A = node_with('sec_a', $portA, 2, "jobq.max_handler_time = '1s'");
note(sprintf('cluster A up at %.1f s', time - $T0));
like(slurp_file($A->logfile), qr/./, 'cluster A started');

su_sql($A, q{
CREATE ROLE mal1 LOGIN; CREATE ROLE al3 LOGIN; CREATE ROLE mal3 LOGIN;
CREATE ROLE al4 LOGIN; CREATE ROLE bob4 LOGIN; CREATE ROLE grp4 NOLOGIN; GRANT grp4 TO bob4;
CREATE ROLE mal5i LOGIN; CREATE ROLE mal5r LOGIN; CREATE ROLE al6 LOGIN; CREATE ROLE mal6 LOGIN;
GRANT CREATE ON DATABASE postgres TO mal1;
GRANT CREATE ON SCHEMA public TO al3, mal3, al4, bob4, mal5r, al6, mal6;
CREATE FUNCTION public.base_h(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('base_h', kw)$$;
SELECT jobq_register('tbase', 'base_h');
});
grant_jobq($A, 'mal1', @REGISTER, @PRODUCE);
grant_jobq($A, $_, @REGISTER, @PRODUCE, @GRANT) for qw(al3 mal3 al4 bob4 al6);
grant_jobq($A, $_, @PRODUCE) for qw(mal5r mal6);

# --- 10 (retention), set up first: the relay prunes at most once a minute
my $retention_t0 = time;
su_sql($A, q{
INSERT INTO jobq.failed (tube, func_name, kwargs, sqlstate, message, source, failed_at)
VALUES ('t10old', 'x', '{}', 'XX000', 'old row (case 10)', 'worker', now() - interval '100 days'),
       ('t10new', 'x', '{}', 'XX000', 'recent row (case 10)', 'worker', now() - interval '1 day');
});
my $retention_set;
{
	my ($rc, $out, $err) = as_role($A, undef,
		"ALTER SYSTEM SET jobq.failed_retention = '30d';\nSELECT pg_reload_conf();");
	$retention_set = ok($rc == 0, 'case 10 (retention): ALTER SYSTEM SET jobq.failed_retention = 30d') or diag($err);
}

# --- 1. registry SQL with the caller's search_path
{
	ok_as($A, 'mal1', q{
CREATE SCHEMA myschema;
} . plant_eq_sql('myschema', 'mal1', 0) . q{
CREATE FUNCTION myschema.h1(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$BEGIN END$$;
}, 'case 1: mal1 plants myschema.= (text and bigint)');
	is(planted_ops($A, 'myschema'), '2', 'case 1: the planted operators exist');
	my @calls = (
		['jobq_register', q{SELECT public.jobq_register('t1', 'h1', 'myschema.h1(jsonb)'::regprocedure)}],
		['jobq_unregister', q{SELECT public.jobq_unregister('t1', 'h1')}],
		['jobq_retry_failed(text)', q{SELECT public.jobq_retry_failed('zz_none'::text)}],
		['jobq_retry_failed(bigint)', q{SELECT public.jobq_retry_failed(0::bigint)}],);
	for my $c (@calls)
	{
		my ($name, $sql) = @$c;
		is(is_super($A, 'mal1'), 'f', "case 1: mal1 is not superuser before $name");
		my ($rc, $out, $err) = as_role($A, 'mal1', "SET search_path = myschema, pg_catalog;\n$sql");
		note("case 1: $name as mal1: " . ($rc == 0 ? 'ok' : $err));
		is(is_super($A, 'mal1'), 'f', "case 1: $name did not make mal1 superuser");
		is(canary_su($A, 'myschema'), '0', "case 1: $name never ran the planted operator as a superuser");
		su_sql($A, 'ALTER ROLE mal1 NOSUPERUSER; DELETE FROM myschema.canary');
	}
	su_sql($A, q{SELECT jobq_unregister('t1', 'h1'); DROP SCHEMA myschema CASCADE;});
}

# --- 3. replacing or removing another role's registration
{
	ok_as($A, 'al3', q{
CREATE FUNCTION public.f3_alice(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('f3_alice', kw)$$;
SELECT jobq_register('t3', 'f3', 'f3_alice(jsonb)'::regprocedure);
}, 'case 3: al3 registers (t3, f3)');
	ok_as($A, 'mal3', q{
CREATE FUNCTION public.f3_mal(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('f3_mal', kw)$$;
}, 'case 3: mal3 creates her own function');
	my $reg = q{SELECT handler::text || ' ' || run_as::text FROM jobq.handlers WHERE tube = 't3' AND func_name = 'f3'};
	fails_with($A, 'mal3', q{SELECT jobq_register('t3', 'f3', 'f3_mal(jsonb)'::regprocedure)}, '42501',
		'case 3: mal3 may not replace al3\'s registration');
	is(su_sql($A, $reg), 'public.f3_alice(jsonb) al3', 'case 3: the registration is still al3\'s');
	# put it back if it was taken
	as_role($A, 'al3', q{SELECT jobq_register('t3', 'f3', 'f3_alice(jsonb)'::regprocedure)});
	fails_with($A, 'mal3', q{SELECT jobq_unregister('t3', 'f3')}, '42501',
		'case 3: mal3 may not remove al3\'s registration');
	is(su_sql($A, $reg), 'public.f3_alice(jsonb) al3', 'case 3: the registration is still there');
}

# --- 4. a handler's owner and run_as
{
	ok_as($A, 'al4', q{
CREATE FUNCTION public.fa4(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('fa4', kw)$$;
}, 'case 4: al4 owns function fa4');
	my ($rc, $out, $err) = as_role($A, undef, q{SELECT jobq_register('t4', 'fa4', 'fa4(jsonb)'::regprocedure)});
	my $runas = su_sql($A, q{SELECT coalesce((SELECT run_as::text FROM jobq.handlers WHERE tube = 't4' AND func_name = 'fa4'), '')});
	ok(($rc != 0 && sqlstate_of($err) eq '42501') || $runas eq 'al4',
		"case 4: a superuser's registration of al4's function without run_as is refused with 42501 "
		  . '(or runs as al4)')
	  or diag($rc == 0 ? "registered, run_as $runas" : $err);
	# al4 replaces the body; if a registration exists, its job runs
	ok_as($A, 'al4', q{
CREATE OR REPLACE FUNCTION public.fa4(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    ALTER ROLE al4 SUPERUSER;
  EXCEPTION WHEN others THEN NULL;
  END;
  INSERT INTO public.effects (tag, kw) VALUES ('fa4', kw);
END $$;
}, 'case 4: al4 replaces the body of fa4');
	is(is_super($A, 'al4'), 'f', 'case 4: al4 is not superuser before');
	if ($runas ne '')
	{
		su_sql($A, q{SELECT jobq_put('t4', 'fa4', '{"n": "4a"}')});
		effect_or_failed($A, 'fa4', '4a');
	}
	is(is_super($A, 'al4'), 'f', 'case 4: al4\'s body never ran with a superuser\'s rights');
	is(su_sql($A, q{SELECT count(*) FROM public.effects e JOIN pg_roles r ON r.rolname = e.who
	                 WHERE e.tag = 'fa4' AND r.rolsuper}), '0',
		'case 4: fa4 never ran as a superuser');

	# run_as the owner itself is fine
	($rc, $out, $err) = as_role($A, undef, q{SELECT jobq_unregister('t4', 'fa4');
SELECT jobq_register('t4', 'fa4', 'fa4(jsonb)'::regprocedure, run_as => 'al4')});
	ok($rc == 0, 'case 4: a superuser registers al4\'s function with run_as => al4') or diag($err);
	su_sql($A, q{SELECT jobq_put('t4', 'fa4', '{"n": "4b"}')});
	ok(wait_for($A, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'fa4' AND kw->>'n' = '4b' AND who = 'al4')}, 20),
		'case 4: it runs as al4');

	# a revoked membership stops the next job, at once
	ok_as($A, 'bob4', q{
CREATE FUNCTION public.fb4(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('fb4', kw)$$;
SELECT jobq_register('t4b', 'fb4', run_as => 'grp4', max_attempts => 3, backoff => '1 s');
SELECT jobq_put('t4b', 'fb4', '{"n": "before"}');
}, 'case 4: bob4 registers his fb4 to run as grp4 (of which he is a member)');
	ok(wait_for($A, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'fb4' AND kw->>'n' = 'before')}, 20),
		'case 4: fb4 runs while bob4 is a member of grp4');
	su_sql($A, q{REVOKE grp4 FROM bob4; SELECT jobq_put('t4b', 'fb4', '{"n": "after"}');});
	ok(effect_or_failed($A, 'fb4', 'after'), 'case 4: the job after REVOKE grp4 FROM bob4 ended');
	is(effect_count($A, 'fb4', 'after'), '0', 'case 4: it did not run');
	is(su_sql($A, q{SELECT string_agg(sqlstate || '/' || attempts, ',') FROM jobq.failed WHERE func_name = 'fb4'}),
		'42501/1', 'case 4: it failed with 42501 at the first attempt');

	# a revoked EXECUTE too
	ok_as($A, 'al4', q{
CREATE FUNCTION public.fc4(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('fc4', kw)$$;
SELECT jobq_register('t4c', 'fc4', max_attempts => 3, backoff => '1 s');
}, 'case 4: al4 registers fc4');
	su_sql($A, q{REVOKE EXECUTE ON FUNCTION public.fc4(jsonb) FROM PUBLIC, al4;
SELECT jobq_put('t4c', 'fc4', '{"n": "revoked"}');});
	ok(effect_or_failed($A, 'fc4', 'revoked'), 'case 4: the job after REVOKE EXECUTE ended');
	is(effect_count($A, 'fc4'), '0', 'case 4: it did not run');
	is(su_sql($A, q{SELECT string_agg(sqlstate || '/' || attempts, ',') FROM jobq.failed WHERE func_name = 'fc4'}),
		'42501/1', 'case 4: it failed with 42501 at the first attempt, not retried');
}

# --- 6. producer authorisation, and the reserved tube is the truth
{
	ok_as($A, 'al6', q{
CREATE FUNCTION public.f6(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('f6', kw)$$;
SELECT jobq_register('t6', 'f6', 'f6(jsonb)'::regprocedure);
}, 'case 6: al6 registers (t6, f6)');
	su_sql($A, q{
CREATE FUNCTION public.f6b(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('f6b', kw)$$;
SELECT jobq_register('t6b', 'f6b');
});
	is(su_sql($A, q{SELECT pg_has_role('mal6', 'al6', 'MEMBER')}), 'f', 'case 6: mal6 is not a member of al6');
	fails_with($A, 'mal6', q{SELECT jobq_put('t6', 'f6', '{"n": "mal6-put"}')}, '42501',
		'case 6: jobq_put of another role\'s registration is refused');
	fails_with($A, 'mal6', q{SELECT jobq_put_now('t6', 'f6', '{"n": "mal6-now"}')}, '42501',
		'case 6: jobq_put_now of another role\'s registration is refused');
	my ($rc, $out, $err) = as_role($A, 'mal6', q{
CREATE TABLE public.m6 (x int);
CREATE TRIGGER m6_enq AFTER INSERT ON public.m6 FOR EACH ROW EXECUTE FUNCTION jobq_enqueue('t6', 'f6');
});
	if ($rc != 0)
	{
		is(sqlstate_of($err), '42501', 'case 6: the enqueueing trigger is refused at CREATE TRIGGER');
	}
	else
	{
		fails_with($A, 'mal6', q{INSERT INTO public.m6 VALUES (1)}, '42501',
			'case 6: the enqueueing trigger on mal6\'s table is refused');
	}
	# a marker by al6 after them; then the tube must be empty
	ok_as($A, 'al6', q{SELECT jobq_put('t6', 'f6', '{"n": "al6-marker"}')}, 'case 6: al6 enqueues a marker');
	ok(wait_for($A, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'f6' AND kw->>'n' = 'al6-marker')}, 20)
		  && wait_perl(sub { tube_idle($portA, 't6') }, 10),
		'case 6: the marker ran and tube t6 is empty');
	is(su_sql($A, q{SELECT count(*) FROM public.effects WHERE tag = 'f6' AND (kw->>'n' LIKE 'mal6%' OR kw ? 'op')}), '0',
		'case 6: nothing mal6 enqueued ran f6');

	ok_as($A, 'al6', q{SELECT jobq_grant('t6', 'f6', 'mal6')}, 'case 6: al6 grants mal6 (jobq_grant)');
	($rc, $out, $err) = as_role($A, undef,
		q{SELECT 'mal6' = ANY (producers) FROM jobq.handlers WHERE tube = 't6' AND func_name = 'f6'});
	is($rc == 0 ? $out : $err, 't', 'case 6: jobq.handlers.producers shows the grant');
	ok_as($A, 'mal6', q{SELECT jobq_put('t6', 'f6', '{"n": "mal6-granted"}')}, 'case 6: a granted producer may enqueue');
	ok(wait_for($A, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'f6' AND kw->>'n' = 'mal6-granted')}, 20),
		'case 6: and the job runs');
	ok_as($A, 'al6', q{SELECT jobq_revoke('t6', 'f6', 'mal6')}, 'case 6: al6 revokes it (jobq_revoke)');
	fails_with($A, 'mal6', q{SELECT jobq_put('t6', 'f6', '{"n": "mal6-revoked"}')}, '42501',
		'case 6: refused again after jobq_revoke');
	ok_as($A, 'mal6', q{SELECT jobq_put('nobody_tube', 'nofunc', '{}')}, 'case 6: a pair with no registration stays free');

	# a body put into t6b naming tube t6
	my $id = raw_put($portA, 't6b', '{"func_name":"f6","tube":"t6","kwargs":{"n":"raw-t6b"}}');
	ok(defined $id, 'case 6: a body naming tube t6 was put into tube t6b');
	$id //= 0;
	ok(wait_for($A, qq{SELECT EXISTS (SELECT FROM jobq.failed WHERE bs_id = $id)
	   OR EXISTS (SELECT FROM public.effects WHERE kw->>'n' = 'raw-t6b')}, 20), 'case 6: the body was handled');
	is(effect_count($A, 'f6', 'raw-t6b'), '0', 'case 6: f6 did not run for a body reserved from t6b');
	is(su_sql($A, "SELECT string_agg(sqlstate || ' ' || coalesce(func_name, '?'), ',') FROM jobq.failed WHERE bs_id = $id"),
		'42501 f6', 'case 6: it is recorded in jobq.failed with 42501');
}

# --- 10. what jobq_put accepts, and func_name
{
	su_sql($A, q{
CREATE FUNCTION public.h10(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('h10', kw)$$;
SELECT jobq_register('t10', 'h10');
});
	my $big = '123456789012345678901234567890';
	su_sql($A, qq{SELECT jobq_put('t10', 'h10', '{"n": $big}')});
	ok(wait_for($A, q{SELECT EXISTS (SELECT FROM public.effects WHERE tag = 'h10')
	   OR EXISTS (SELECT FROM jobq.failed WHERE func_name = 'h10' OR raw_body LIKE '%"h10"%')}, 20),
		'case 10: the 30-digit number job ended');
	is(su_sql($A, q{SELECT string_agg(kw->>'n', ',') FROM public.effects WHERE tag = 'h10'}), $big,
		'case 10: the worker decoded and ran it with the exact number');
	fails_with($A, undef, q{SELECT jobq_put('t10', E'f\nLOG:  fake', '{}')}, '22023',
		'case 10: jobq_put refuses a func_name with a newline');
	fails_with($A, undef, q{SELECT jobq_put_now('t10', E'f\nLOG:  fake', '{}')}, '22023',
		'case 10: jobq_put_now refuses a func_name with a newline');
	fails_with($A, undef, q{SELECT jobq_register('t10', E'f\nLOG:  fake', 'h10(jsonb)'::regprocedure)}, '22023',
		'case 10: jobq_register refuses a func_name with a newline');
	fails_with($A, undef, q{SELECT jobq_put('t10', E'f\x01g', '{}')}, '22023',
		'case 10: jobq_put refuses a func_name with a control character');
}

# --- 9. the producer's ttr does not set the handler's time
{
	my ($rc, $out, $err) = as_role($A, undef, 'SHOW jobq.max_handler_time');
	is($rc == 0 ? $out : 'error', '1s', 'case 9: jobq.max_handler_time is 1s (from postgresql.conf)')
	  or diag($err);
	su_sql($A, q{
CREATE FUNCTION public.h9(kw jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(3);
  INSERT INTO public.effects (tag, kw) VALUES ('h9', kw);
END $$;
SELECT jobq_register('t9', 'h9', max_attempts => 1);
SELECT jobq_put('t9', 'h9', '{}', ttr => '30 days');
});
	my $t = time;
	ok(effect_or_failed($A, 'h9'), 'case 9: the job ended');
	note(sprintf('case 9: after %.1f s', time - $t));
	is(effect_count($A, 'h9'), '0', 'case 9: the 3 s handler did not complete under a 1 s maximum');
	is(su_sql($A, q{SELECT string_agg(sqlstate, ',') FROM jobq.failed WHERE func_name = 'h9'}), '57014',
		'case 9: it failed with 57014');
}

# --- 5. unqualified names in privileged SQL
{
	# the install script: format(text, regprocedure) planted in public
	su_sql($A, 'CREATE DATABASE db5');
	as_role($A, undef, 'GRANT CREATE ON SCHEMA public TO mal5i', db => 'db5');
	my ($rc, $out, $err) = as_role($A, 'mal5i', q{
CREATE TABLE public.canary5 (who name, su boolean);
GRANT INSERT ON public.canary5 TO PUBLIC;
CREATE FUNCTION public.format(fmt text, f regprocedure) RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
  BEGIN
    INSERT INTO public.canary5 VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
  EXCEPTION WHEN others THEN NULL;
  END;
  BEGIN
    ALTER ROLE mal5i SUPERUSER;
  EXCEPTION WHEN others THEN NULL;
  END;
  RETURN pg_catalog.format(fmt, f);
END $$;
}, db => 'db5');
	ok($rc == 0, 'case 5: mal5i plants public.format(text, regprocedure) in db5') or diag($err);
	is(is_super($A, 'mal5i'), 'f', 'case 5: mal5i is not superuser before');
	($rc, $out, $err) = as_role($A, undef, 'CREATE EXTENSION jobq', db => 'db5');
	ok($rc == 0, 'case 5: CREATE EXTENSION jobq in db5') or diag($err);
	is(is_super($A, 'mal5i'), 'f', 'case 5: the install script did not make mal5i superuser');
	($rc, $out, $err) = as_role($A, undef, 'SELECT count(*) FROM public.canary5', db => 'db5');
	is($out, '0', 'case 5: the planted format() never ran as the installing superuser');

	# the relay: array_agg(bigint) planted in public (on the relay's search_path)
	ok_as($A, 'mal5r', q{
CREATE TABLE public.canary5r (who name, su boolean);
GRANT INSERT ON public.canary5r TO PUBLIC;
CREATE FUNCTION public.evil_sfunc(s bigint[], v bigint) RETURNS bigint[] LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
  BEGIN
    INSERT INTO public.canary5r VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
  EXCEPTION WHEN others THEN NULL;
  END;
  BEGIN
    ALTER ROLE mal5r SUPERUSER;
  EXCEPTION WHEN others THEN NULL;
  END;
  RETURN array_append(s, v);
END $$;
CREATE AGGREGATE public.array_agg(bigint) (SFUNC = public.evil_sfunc, STYPE = bigint[]);
}, 'case 5: mal5r plants public.array_agg(bigint)');
	is(su_sql($A, q{SELECT count(*) FROM pg_proc WHERE proname = 'array_agg' AND pronamespace = 'public'::regnamespace}),
		'1', 'case 5: the planted aggregate exists');
	# the relay prepares its statements once: restart it with the plant in place
	$A->restart;
	ok(wait_workers($A, 60), 'case 5: cluster A restarted');
	is(is_super($A, 'mal5r'), 'f', 'case 5: mal5r is not superuser before');
	ok_as($A, 'mal5r', q{SELECT jobq_put('t5r', 'x5', '{}')}, 'case 5: mal5r enqueues a job (relay path)');
	ok(wait_perl(sub { my $s = bs_stats($portA, 'stats-tube t5r'); $s && $s->{'total-jobs'} >= 1 }, 20),
		'case 5: the relay sent it');
	is(is_super($A, 'mal5r'), 'f', 'case 5: the relay did not make mal5r superuser');
	is(su_sql($A, 'SELECT count(*) FROM public.canary5r WHERE su'), '0',
		'case 5: the planted array_agg never ran as a superuser');
	su_sql($A, 'DROP AGGREGATE public.array_agg(bigint)');
}

# --- 10 (retention), checked now
{
	my $left = 95 - (time - $retention_t0);
	$left = 5 if $left < 5 || !$retention_set;
	ok(wait_for($A, q{SELECT NOT EXISTS (SELECT FROM jobq.failed WHERE tube = 't10old')}, $left),
		'case 10 (retention): a failed row older than jobq.failed_retention is pruned');
	is(su_sql($A, q{SELECT count(*) FROM jobq.failed WHERE tube = 't10new'}), '1',
		'case 10 (retention): a recent one stays');
}
note(sprintf('cluster A, cases before the relay wedge, done at %.1f s', time - $T0));

# --- 8. a backlog of big jobs does not wedge the relay
{
	my $pos = -s $A->logfile;
	su_sql($A, q{
CREATE FUNCTION public.small8(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, kw) VALUES ('small8', kw)$$;
SELECT jobq_register('t8small', 'small8');
});
	my $t = time;
	# 600 jobs of 1.8 MB in one transaction: 1.08 GB, more than 1 GB in one 1.0 batch
	my ($rc, $out, $err) = query($A, q{
BEGIN;
SELECT count(jobq_put('t8big', 'big8', jsonb_build_object('blob', repeat('x', 1800000), 'i', i)))
  FROM generate_series(1, 600) i;
COMMIT;
SELECT count(jobq_put('t8small', 'small8', jsonb_build_object('n', i))) FROM generate_series(1, 20) i;
}, timeout => 180);
	ok($rc == 0, 'case 8: 600 jobs of 1.8 MB then 20 small ones enqueued') or diag($err);
	note(sprintf('case 8: enqueued in %.1f s', time - $t));
	my $delivered = sub {
		my $big = bs_stats($portA, 'stats-tube t8big');
		my $small = bs_stats($portA, 'stats-tube t8small');
		return ($big ? $big->{'total-jobs'} : 0) >= 600 && ($small ? $small->{'total-jobs'} : 0) >= 20;
	};
	ok(wait_perl($delivered, 90), 'case 8: all big and small jobs reached beanstalkd');
	note(sprintf('case 8: %.1f s after enqueueing', time - $t));
	ok(wait_for($A, q{SELECT count(*) = 20 FROM public.effects WHERE tag = 'small8'}, 20),
		'case 8: the small jobs ran');
	my @oom = (log_since($A, $pos) =~ /out of memory/g);
	cmp_ok(scalar @oom, '<', 2, 'case 8: no repeated "out of memory" in the log');
}

$A->stop('immediate');
note(sprintf('total %.1f s', time - $T0));
done_testing();

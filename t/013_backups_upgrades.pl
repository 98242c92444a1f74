# Backups and major-version upgrades (issue 20): pg_dump keeps every row of
# jobq's tables and their sequences, a restore (custom format through
# pg_restore into a cluster with jobq preloaded, plain SQL through psql into
# one without) brings them back and the restored outbox is delivered once
# the database is served; a job that ran before the dump is not run again
# by a second delivery after it; registrations name their function and
# roles, so pg_upgrade takes the cluster, and renames or drops stop a
# registration with a clear error until it is registered again.
#
# Clusters: A (the source), B (custom-format restore, preloaded), C (plain
# restore, preloaded only afterwards), D -> E (pg_upgrade, D starting at
# the 1.3 schema to show what 1.3 could not do).
use strict;
use warnings;
use Cwd;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use JobqTest;

my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my $bindir = '/usr/lib/postgresql/15/bin';

# roles and objects a registration needs, in a cluster
sub make_roles
{
	my ($node) = @_;
	su_sql($node, q{CREATE ROLE runner; CREATE ROLE app LOGIN; CREATE ROLE other LOGIN;});
}

sub make_handlers
{
	my ($node) = @_;
	su_sql($node, q{
CREATE TABLE public.effects (tag text, n text, who name DEFAULT current_user);
GRANT INSERT, SELECT ON public.effects TO runner;
CREATE FUNCTION public.h(kw jsonb) RETURNS void LANGUAGE sql
  AS $$INSERT INTO public.effects (tag, n) VALUES ('h', kw->>'n')$$;
ALTER FUNCTION public.h(jsonb) OWNER TO runner;
SELECT jobq_register('t', 'h', run_as => 'runner');
SELECT jobq_grant('t', 'h', 'app');
CREATE FUNCTION public.hfail(kw jsonb) RETURNS void LANGUAGE plpgsql
  AS $$BEGIN RAISE EXCEPTION 'boom %', kw->>'n'; END$$;
SELECT jobq_register('t', 'hfail', max_attempts => 1);
});
	grant_jobq($node, $_, qw(jobq_put)) for qw(app other);
}

# what the tests compare before and after a move
my $state_sql = q{SELECT concat_ws(' | ',
  (SELECT string_agg(concat_ws(' ', tube, func_name, handler, run_as, registered_by, producers), '; ' ORDER BY func_name)
     FROM jobq.handlers),
  (SELECT string_agg(concat_ws(' ', tube, func_name, sqlstate, message), '; ' ORDER BY id) FROM jobq.failed),
  (SELECT count(*) || ' done' FROM jobq.done),
  (SELECT string_agg(kwargs->>'n', ',' ORDER BY kwargs->>'n') FROM (SELECT convert_from(body, 'UTF8')::jsonb->'kwargs' AS kwargs FROM jobq.outbox) o))};

sub effects
{
	my ($node, $tag) = @_;
	return su_sql($node, "SELECT coalesce(string_agg(n || ':' || who, ',' ORDER BY n), '') FROM public.effects WHERE tag = '$tag'");
}

###########################################################################
# the source: a job that ran (its body kept, as if its delete were lost), a
# failed job, and three committed jobs waiting while beanstalkd is down
my $portA = bs_port(130);
my $bsA = bs_start($portA);
my $A = new_node('source', $portA);
make_roles($A);
make_handlers($A);

# a tube exists once a worker watches it (within a second of the registration)
ok(wait_for($A, q{SELECT jobq_pause_tube('t', '1 hour')}, 20), 'A: tube t paused (beanstalkd answered PAUSED)');
su_sql($A, q{SELECT jobq_put('t', 'h', '{"n": "j1"}')});
ok(wait_for($A, q{SELECT ready = 1 FROM jobq_tubes() WHERE tube = 't'}, 20), 'A: job j1 is in beanstalkd');
my $j1_body = su_sql($A, q{SELECT convert_from(raw, 'UTF8') FROM jobq_peek_ready('t')});
like($j1_body, qr/"n":"j1".*"id":"[0-9a-f-]{36}"/, "A: j1's body, with its id, is kept");
su_sql($A, q{SELECT jobq_pause_tube('t', '0')});
ok(wait_for($A, q{SELECT count(*) = 1 FROM public.effects WHERE n = 'j1'}, 20), 'A: j1 ran');
su_sql($A, q{SELECT jobq_put('t', 'hfail', '{"n": "f1"}')});
ok(wait_for($A, q{SELECT count(*) = 1 FROM jobq.failed}, 20), 'A: the failing job is in jobq.failed');

bs_stop($bsA);
ok(bs_refuses($portA), "A: beanstalkd is down");
ok_as($A, 'app', qq{SELECT jobq_put('t', 'h', '{"n": "$_"}')}, "A: app (a granted producer) puts $_") for qw(p1 p2 p3);
is(su_sql($A, 'SELECT count(*) FROM jobq.outbox'), '3', 'A: three committed jobs wait in the outbox');
my $state = su_sql($A, $state_sql);
like($state, qr/^t h public\.h\(jsonb\) runner \S+ \{app\}; t hfail public\.hfail\(jsonb\) \S+ \S+ \{\} \| t hfail P0001 boom f1 \| [1-9]\d* done \| p1,p2,p3$/,
	"A: registrations by name, the failure, the done ids and the outbox ($state)");

my $dump_c = "$tmp/source.dump";
my $dump_p = "$tmp/source.sql";
command_ok([ 'pg_dump', '-Fc', '-f', $dump_c, '-d', $A->connstr('postgres') ], 'A: pg_dump -Fc');
command_ok([ 'pg_dump', '-Fp', '-f', $dump_p, '-d', $A->connstr('postgres') ], 'A: pg_dump, plain SQL');
my $plain = slurp_file($dump_p);
like($plain, qr/COPY jobq\.outbox_packs .* FROM stdin/, 'the plain dump has the outbox rows');
like($plain, qr/SELECT pg_catalog\.setval\('jobq\.outbox_packs_seq_seq'/, 'and the sequence of their seq');
$A->stop('fast');

###########################################################################
# B: pg_restore of the custom-format dump into a fresh cluster with jobq
# preloaded (its workers wait for the extension), its own beanstalkd
my $portB = bs_port(131);
my $B = init_node('restore_custom');
jobq_conf($B, $portB);
$B->start;
make_roles($B);
# beanstalkd comes after the restore: no job runs before its grants are back
command_ok([ 'pg_restore', '-d', $B->connstr('postgres'), $dump_c ], 'B: pg_restore into a fresh database');
my $bsB = bs_start($portB);
$B->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
ok(wait_for($B, q{SELECT count(*) = 0 FROM jobq.outbox}, 60), "B: the restored outbox was delivered");
ok(wait_for($B, q{SELECT count(*) = 4 FROM public.effects WHERE tag = 'h'}, 30), 'B: and its jobs ran');
is(effects($B, 'h'), 'j1:runner,p1:runner,p2:runner,p3:runner', 'B: each once, as runner');
(my $stateB = su_sql($B, $state_sql)) =~ s/ \| \d+ done//;
(my $expect = $state) =~ s/ \| \d+ done \| p1,p2,p3$//;
is($stateB, $expect, 'B: registrations, grants and the failure came back');
my $j1_id = ($j1_body =~ /"id":"([0-9a-f-]{36})"/)[0] // 'none';
is(su_sql($B, "SELECT count(*) FROM jobq.done WHERE id = '$j1_id'"), '1', "B: and j1's done id");

# the copy of j1 that beanstalkd still had (its delete lost): dropped
my $id = raw_put($portB, 't', $j1_body);
ok(defined $id, 'B: the kept copy of j1 was put into B\'s beanstalkd');
ok(wait_perl(sub { !defined bs_stats($portB, "stats-job $id") }, 20), 'B: a worker took it and deleted it');
is(effects($B, 'h'), 'j1:runner,p1:runner,p2:runner,p3:runner', 'B: j1 did not run again');
is(su_sql($B, 'SELECT count(*) FROM jobq.failed'), '1', 'B: nor was it recorded as failed');

# the sequences came back: new rows do not collide with restored ones
ok_as($B, 'app', q{SELECT jobq_put('t', 'h', '{"n": "b1"}')}, 'B: app may still enqueue (the grant came back)');
fails_with($B, 'other', q{SELECT jobq_put('t', 'h', '{"n": "x"}')}, '42501', 'B: and other may not');
su_sql($B, q{SELECT jobq_put('t', 'hfail', '{"n": "f2"}')});
ok(wait_for($B, q{SELECT count(*) = 2 FROM jobq.failed}, 20)
	  && wait_for($B, q{SELECT count(*) = 1 FROM public.effects WHERE n = 'b1'}, 20),
	'B: new jobs and failures are recorded beside the restored ones');

###########################################################################
# what renames and drops do to a registration (on B)
{
	su_sql($B, q{ALTER FUNCTION public.h(jsonb) RENAME TO h_renamed});
	su_sql($B, q{SELECT jobq_put('t', 'h', '{"n": "ren1"}')});
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM jobq.failed WHERE kwargs->>'n' = 'ren1')}, 20),
		'renamed function: the job fails');
	is(su_sql($B, q{SELECT sqlstate || ' ' || message FROM jobq.failed WHERE kwargs->>'n' = 'ren1'}),
		'42883 handler function public.h(jsonb) does not exist: it was dropped or renamed after registration',
		'renamed function: 42883, naming the function');
	su_sql($B, q{SELECT jobq_register('t', 'h', 'h_renamed(jsonb)'::regprocedure, run_as => 'runner')});
	su_sql($B, q{SELECT jobq_put('t', 'h', '{"n": "ren2"}')});
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM public.effects WHERE n = 'ren2')}, 20),
		'renamed function: registered again, jobs run');

	su_sql($B, q{ALTER ROLE runner RENAME TO runner2});
	su_sql($B, q{SELECT jobq_put('t', 'h', '{"n": "role1"}')});
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM jobq.failed WHERE kwargs->>'n' = 'role1')}, 20),
		'renamed run_as role: the job fails');
	is(su_sql($B, q{SELECT sqlstate || ' ' || message FROM jobq.failed WHERE kwargs->>'n' = 'role1'}),
		'42704 role "runner" that the handler runs as does not exist: it was dropped or renamed after registration',
		'renamed run_as role: 42704, naming the role');
	fails_with($B, 'app', q{SELECT jobq_register('t', 'h', 'h_renamed(jsonb)'::regprocedure)}, '42501',
		'renamed run_as role: only a superuser may take the registration over');
	su_sql($B, q{SELECT jobq_register('t', 'h', 'h_renamed(jsonb)'::regprocedure, run_as => 'runner2')});
	su_sql($B, q{SELECT jobq_put('t', 'h', '{"n": "role2"}')});
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM public.effects WHERE n = 'role2' AND who = 'runner2')}, 20),
		'renamed run_as role: registered again, jobs run as runner2');

	su_sql($B, q{DROP FUNCTION public.h_renamed(jsonb)});
	su_sql($B, q{SELECT jobq_put('t', 'h', '{"n": "drop1"}')});
	ok(wait_for($B, q{SELECT EXISTS (SELECT FROM jobq.failed WHERE kwargs->>'n' = 'drop1')}, 20),
		'dropped function: the job fails');
	is(su_sql($B, q{SELECT sqlstate FROM jobq.failed WHERE kwargs->>'n' = 'drop1'}), '42883',
		'dropped function: 42883');
	is(su_sql($B, q{SELECT count(*) FROM public.effects WHERE n IN ('ren1', 'role1', 'drop1')}), '0',
		'none of the refused jobs ran');
}
$B->stop('fast');

###########################################################################
# C: the plain dump through psql into a cluster without the preload; then
# preloaded, the restored outbox is delivered
my $portC = bs_port(132);
my $C = init_node('restore_plain');
$C->append_conf('postgresql.conf', "jobq.servers = '127.0.0.1:$portC'\n");
$C->start;
make_roles($C);
my ($rc, $out, $err) = query($C, "\\set ON_ERROR_STOP 1\n\\i $dump_p");
is($rc, 0, 'C: psql restores the plain dump without the preload') or diag($err);
is(su_sql($C, $state_sql), $state, 'C: everything is back, the outbox included');
$C->stop('fast');
jobq_conf($C, $portC);
my $bsC = bs_start($portC);
$C->start;
$C->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
ok(wait_for($C, q{SELECT count(*) = 4 FROM public.effects WHERE tag = 'h'}, 60),
	'C: once preloaded, the restored outbox is delivered and runs');
is(effects($C, 'h'), 'j1:runner,p1:runner,p2:runner,p3:runner', 'C: each job once');
$C->stop('fast');

###########################################################################
# D -> E: pg_upgrade.  D starts at the 1.3 schema, which pg_upgrade refuses
# and pg_dump leaves empty; ALTER EXTENSION UPDATE converts it in place
my $portD = bs_port(133);
my $bsD = bs_start($portD);
my $D = init_node('old');
jobq_conf($D, $portD);
$D->start;
$D->safe_psql('postgres', q{CREATE EXTENSION jobq VERSION '1.3'});
$D->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
wait_workers($D, 60) or BAIL_OUT('D: workers did not start');
make_roles($D);
make_handlers($D);
su_sql($D, q{SELECT jobq_put('t', 'hfail', '{"n": "f1"}')});
ok(wait_for($D, q{SELECT count(*) = 1 FROM jobq.failed}, 20), 'D: a failed job');
bs_stop($bsD);
su_sql($D, qq{SELECT jobq_put('t', 'h', '{"n": "$_"}')}) for qw(p1 p2 p3);
is(su_sql($D, 'SELECT count(*) FROM jobq.outbox'), '3', 'D: three jobs wait in the outbox');
is(su_sql($D, q{SELECT concat_ws(' ', pg_typeof(handler), pg_typeof(run_as), pg_typeof(producers)) FROM jobq.handlers LIMIT 1}),
	'regprocedure regrole regrole[]', 'D: at 1.3, jobq.handlers holds reg* values');
command_ok([ 'pg_dump', '-Fp', '-f', "$tmp/old13.sql", '-d', $D->connstr('postgres') ], 'D: pg_dump at 1.3');
unlike(slurp_file("$tmp/old13.sql"), qr/COPY jobq\./, 'D: at 1.3 the dump has none of jobq\'s rows (what 1.3 lost)');

my $E = init_node('new');
jobq_conf($E, $portD);
# pg_upgrade writes its logs and scripts in its working directory
my @upgrade = ('pg_upgrade', '--no-sync', '-d', Cwd::abs_path($D->data_dir),
	'-D', Cwd::abs_path($E->data_dir), '-b', $bindir, '-B', $bindir, '-s', $E->host,
	'-p', $D->port, '-P', $E->port);
sub pg_upgrade
{
	my (@args) = @_;
	my ($stdout, $stderr) = ('', '');
	my $cwd = getcwd();
	chdir($tmp) or die "chdir $tmp: $!";
	my $ok = IPC::Run::run([ @upgrade, @args ], '>', \$stdout, '2>', \$stderr);
	chdir($cwd);
	return ($ok, "$stdout$stderr");
}
$D->stop('fast');
my ($ok, $stdout) = pg_upgrade('--check');
ok(!$ok, 'D at 1.3: pg_upgrade --check fails');
like($stdout, qr/Checking for reg\* data types in user tables\s+fatal/, 'D at 1.3: for the reg* columns');
$D->start;
($rc, $out, $err) = query($D, 'ALTER EXTENSION jobq UPDATE');
is($rc, 0, 'D: ALTER EXTENSION jobq UPDATE to 1.4') or diag($err);
my $stateD = su_sql($D, $state_sql);
like($stateD, qr/^t h public\.h\(jsonb\) runner \S+ \{app\}; t hfail public\.hfail\(jsonb\) \S+ \S+ \{\} \| t hfail P0001 boom f1 \| 0 done \| p1,p2,p3$/,
	"D: the update converted registrations and grants in place ($stateD)");
ok_as($D, 'app', q{SELECT jobq_put('t', 'h', '{"n": "p4"}')}, 'D: the converted grant works');
$D->stop('fast');
($ok, $stdout) = pg_upgrade('--check');
ok($ok, 'D at 1.4: pg_upgrade --check passes') or diag($stdout);
($ok, $stdout) = pg_upgrade();
ok($ok, 'pg_upgrade D -> E') or diag($stdout);

$bsD = bs_start($portD);
$E->start;
ok(wait_for($E, q{SELECT count(*) = 4 FROM public.effects WHERE tag = 'h'}, 60),
	'E: the outbox kept by pg_upgrade is delivered and runs');
is(effects($E, 'h'), 'p1:runner,p2:runner,p3:runner,p4:runner', 'E: each job once, as runner');
is(su_sql($E, q{SELECT count(*) FROM jobq.failed}), '1', 'E: jobq.failed is kept');
ok_as($E, 'app', q{SELECT jobq_put('t', 'h', '{"n": "e1"}')}, 'E: app may enqueue (the grant is kept)');
ok(wait_for($E, q{SELECT EXISTS (SELECT FROM public.effects WHERE n = 'e1')}, 20), 'E: and the job runs');
$E->stop('fast');
done_testing();

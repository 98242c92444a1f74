# Supervision and housekeeping: workers wait quietly for their database and
# for the extension (no crash loop), and the relay prunes expired ids from
# jobq.done while keeping the recent ones.
use strict;
use warnings;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(40);
my $bs = bs_start($port);

# --- a database that does not exist yet, then an extension not created yet
my $node = init_node('supervision');
# later lines win: the workers' database is one that does not exist yet
jobq_conf($node, $port, "jobq.database = 'appdb'", "jobq.done_retention = '60s'");
$node->start;

sub appdb_wait
{
	my ($sql, $secs) = @_;
	my $deadline = time + ($secs || 30);
	while (time < $deadline)
	{
		return 1 if $node->safe_psql('appdb', $sql) eq 't';
		usleep(100_000);
	}
	return 0;
}
sub log_count
{
	my ($re) = @_;
	my $log = slurp_file($node->logfile);
	my @m = ($log =~ /$re/g);
	return scalar @m;
}

ok(wait_for($node, "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'jobq launcher'", 30),
	'the launcher runs');
sleep 3;
is(log_count(qr/database "appdb" does not exist; jobq's workers wait for it/), 1,
	'missing database: logged once');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('jobq worker', 'jobq relay')"),
	'0', 'no worker started without the database');
is(log_count(qr/terminated by signal|exited with exit code 1/), 0, 'nothing exited');

$node->safe_psql('postgres', 'CREATE DATABASE appdb');
$node->safe_psql('appdb', 'ALTER DATABASE appdb SET search_path = public');
ok(wait_for($node,
		"SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type IN ('jobq worker', 'jobq relay') AND datname = 'appdb'",
		30),
	'relay and workers start once the database exists');
my $pids = $node->safe_psql('postgres',
	"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type IN ('jobq worker', 'jobq relay')");
sleep 4;
is(log_count(qr/extension "jobq" is not installed in database "appdb"; waiting/), 3,
	'missing extension: one line per process');
is($node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type IN ('jobq worker', 'jobq relay')"),
	$pids, 'the same processes wait: no crash loop');

$node->safe_psql('appdb', 'CREATE EXTENSION jobq');
ok(appdb_wait("SELECT count(*) = 3 AND bool_and(state <> 'waiting for extension') FROM jobq.workers"),
	'they start working once the extension exists')
  or diag($node->safe_psql('appdb', 'SELECT * FROM jobq.workers'));

# a job runs, proving the workers really work
$node->safe_psql('appdb', q{
CREATE TABLE effects (n int);
CREATE FUNCTION record(n int) RETURNS void LANGUAGE sql AS 'INSERT INTO public.effects VALUES (n)';
SELECT jobq_register('t5', 'record');
SELECT jobq_put('t5', 'record', '{"n": 1}');
});
ok(appdb_wait('SELECT count(*) = 1 FROM effects'), 'a job runs in appdb');

# --- pruning of jobq.done: expired ids go, recent ones stay
$node->safe_psql('appdb', q{
INSERT INTO jobq.done (id, done_at)
SELECT gen_random_uuid(), now() - interval '10 minutes' FROM generate_series(1, 25000);
INSERT INTO jobq.done (id, done_at)
SELECT gen_random_uuid(), now() FROM generate_series(1, 10);
});
is($node->safe_psql('appdb', 'SELECT count(*) FROM jobq.done'), '25011', 'expired ids planted');

# the relay prunes when it starts and then every minute: restart it
my $relay = $node->safe_psql('appdb', "SELECT pid FROM jobq.workers WHERE kind = 'relay'");
$node->safe_psql('appdb', "SELECT pg_terminate_backend($relay)");
ok(wait_pid_gone($relay, 10), "relay $relay is gone");
ok(appdb_wait("SELECT count(*) = 1 FROM jobq.workers WHERE kind = 'relay' AND pid <> $relay", 30),
	'the launcher started a new relay');
ok(appdb_wait('SELECT count(*) = 11 FROM jobq.done', 30), 'expired ids pruned, recent ones kept')
  or diag($node->safe_psql('appdb', 'SELECT count(*) FROM jobq.done'));

$node->stop('fast');
bs_stop($bs);
done_testing();

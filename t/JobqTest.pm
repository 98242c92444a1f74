# t/JobqTest.pm: shared helpers for jobq's fault-injection tests (TAP).
#
# Each test file starts its own PostgreSQL cluster (PostgreSQL::Test::Cluster)
# and its own beanstalkd on 127.0.0.1, on ports derived from
# JOBQ_BSPORT_BASE plus an offset per file.  Every beanstalkd started here is
# stopped by PID at exit, whatever happened.

package JobqTest;

use strict;
use warnings;

use Exporter 'import';
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(usleep time);
use Test::More;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(
  effect_counts
  init_node jobq_conf
  bs_port bs_start bs_stop bs_signal bs_refuses bs_answers bs_command bs_stats
  new_node wait_for query query_as sql_ok wait_workers worker_pids log_since
  pid_gone wait_pid_gone wait_log bg_psql bg_running bg_finish
  sqlstate_of fails_with ok_as su_sql grant_jobq raw_put wait_perl
);

# PostgreSQL::Test::Cluster->init runs $PG_REGRESS --config-auth
$ENV{PG_REGRESS} ||= '/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress';

my %beanstalkds;    # pid => port, everything started here

# port for this file: JOBQ_BSPORT_BASE + offset
sub bs_port
{
	my ($offset) = @_;
	my $base = $ENV{JOBQ_BSPORT_BASE} || 11401;
	return $base + $offset;
}

# beanstalkd on 127.0.0.1:$port, with extra arguments (-b DIR, -z SIZE);
# returns its pid once it accepts connections
sub bs_start
{
	my ($port, @args) = @_;
	my $log = "${PostgreSQL::Test::Utils::tmp_check}/beanstalkd_$port.log";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>>', $log) or POSIX::_exit(126);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
		exec('beanstalkd', '-l', '127.0.0.1', '-p', $port, @args)
		  or POSIX::_exit(127);
	}
	$beanstalkds{$pid} = $port;
	my $deadline = time + 10;
	while (time < $deadline)
	{
		return $pid if bs_answers($port);
		die "beanstalkd on port $port exited at start (see $log)"
		  if waitpid($pid, POSIX::WNOHANG()) == $pid;
		usleep(50_000);
	}
	die "beanstalkd did not start on 127.0.0.1:$port";
}

# send a signal to a beanstalkd we started; for TERM/KILL, reap it
sub bs_signal
{
	my ($pid, $sig) = @_;
	kill($sig, $pid) or die "kill $sig $pid: $!";
	if ($sig eq 'KILL' || $sig eq 'TERM' || $sig eq 'INT')
	{
		waitpid($pid, 0);
		delete $beanstalkds{$pid};
	}
	return;
}

sub bs_stop { my ($pid, $sig) = @_; bs_signal($pid, $sig || 'TERM'); }

sub pid_gone { my ($pid) = @_; return !kill(0, $pid); }

sub wait_pid_gone
{
	my ($pid, $secs) = @_;
	my $deadline = time + ($secs || 10);
	while (time < $deadline)
	{
		return 1 if pid_gone($pid);
		usleep(50_000);
	}
	return 0;
}

# a TCP connect to the port is refused
sub bs_refuses { return !bs_answers(@_); }

sub bs_answers
{
	my ($port) = @_;
	my $s = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $port,
		Proto    => 'tcp',
		Timeout  => 2) or return 0;
	close($s);
	return 1;
}

# one raw command (with optional body lines), returns the whole reply
sub bs_command
{
	my ($port, $cmd) = @_;
	my $s = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $port,
		Proto    => 'tcp',
		Timeout  => 5) or die "connect to beanstalkd on $port: $!";
	print $s "$cmd\r\n";
	my $line = <$s>;
	die "no reply to '$cmd'" unless defined $line;
	my $reply = $line;
	if ($line =~ /^OK (\d+)\r\n$/)
	{
		my $len = $1 + 2;
		my $data = '';
		while (length($data) < $len)
		{
			my $n = read($s, $data, $len - length($data), length($data));
			last unless $n;
		}
		$reply .= $data;
	}
	close($s);
	return $reply;
}

# stats (stats, stats-tube X, stats-job N) as a hash; undef if NOT_FOUND
sub bs_stats
{
	my ($port, $cmd) = @_;
	my $reply = bs_command($port, $cmd);
	return undef if $reply =~ /^NOT_FOUND/;
	my %h;
	for my $l (split /\r?\n/, $reply)
	{
		$h{$1} = $2 if $l =~ /^([\w-]+): (.*)$/;
	}
	return \%h;
}

# a new cluster, UTF-8 with the C locale whatever the environment says
sub init_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => [ '-E', 'UTF8', '--locale=C' ]);
	return $node;
}

# jobq's settings for a cluster, beanstalkd on $bsport, plus extra lines
sub jobq_conf
{
	my ($node, $bsport, @extra) = @_;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'jobq'
jobq.servers = '127.0.0.1:$bsport'
jobq.database = 'postgres'
max_worker_processes = 16
max_prepared_transactions = 10
jobq.workers = 2
restart_after_crash = on
});
	$node->append_conf('postgresql.conf', join("\n", @extra) . "\n") if @extra;
}

# a started cluster with jobq preloaded and the extension created in
# postgres, its workers and relay up
sub new_node
{
	my ($name, $bsport, @extra) = @_;
	my ($workers) = map { /^jobq\.workers = (\d+)$/ ? $1 : () } @extra;
	my $node = init_node($name);
	jobq_conf($node, $bsport, @extra);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION jobq');
	# the OS user, hence the superuser, may be called jobq: keep "$user"
	# (= the extension's schema jobq) out of the way of the tests' objects
	$node->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
	wait_workers($node, 60, $workers) or BAIL_OUT("jobq workers did not start");
	return $node;
}

# ($rc, $stdout, $stderr) of one psql run
sub query
{
	my ($node, $sql, %opt) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql(
		$opt{db} || 'postgres', $sql,
		extra_params => $opt{extra_params} || [],
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		timeout => $opt{timeout} || 120,
		timed_out => \my $timed_out);
	return (-1, $out, "psql timed out\n$err") if $timed_out;
	return ($rc, $out, $err);
}

# ($rc, $stdout, $stderr) of $sql run as $role (undef: the cluster's
# superuser), errors with their SQLSTATE (VERBOSITY verbose)
sub query_as
{
	my ($node, $role, $sql, %opt) = @_;
	return query($node, "\\set VERBOSITY verbose\n$sql",
		%opt, extra_params => defined $role ? [ '-U', $role ] : []);
}

# the query's output, or die with its error
sub sql_ok
{
	my ($node, $sql) = @_;
	my ($rc, $out, $err) = query($node, $sql);
	die "query failed (rc $rc): $sql\n$err" if $rc != 0;
	return $out;
}

# poll until the query prints $expected ('t' by default), at most $secs
sub wait_for
{
	my ($node, $sql, $secs, $expected) = @_;
	$expected = 't' unless defined $expected;
	$secs ||= 30;
	my $deadline = time + $secs;
	my ($rc, $out, $err);
	while (1)
	{
		($rc, $out, $err) = query($node, $sql);
		return 1 if $rc == 0 && $out eq $expected;
		last if time > $deadline;
		usleep(100_000);
	}
	diag("wait_for timed out after ${secs}s: $sql\nexpected: $expected\n"
		  . "got: $out\nstderr: $err");
	return 0;
}

# the relay and every job worker ($workers, 2 by default) are up (not starting)
sub wait_workers
{
	my ($node, $secs, $workers) = @_;
	my $n = ($workers || 2) + 1;
	return wait_for($node,
		"SELECT count(*) = $n AND bool_and(pid IS NOT NULL AND state <> 'starting') "
		  . "FROM jobq.workers", $secs || 60);
}

# psql running a script in the background: returns a handle for
# bg_running and bg_finish (output goes to files in tmp_check)
my $bg_seq = 0;
sub bg_psql
{
	my ($node, $sql) = @_;
	my $base = "${PostgreSQL::Test::Utils::tmp_check}/bg_" . $$ . '_' . ++$bg_seq;
	open(my $f, '>', "$base.sql") or die "$base.sql: $!";
	print $f $sql;
	close($f);
	my $connstr = $node->connstr('postgres');
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>', "$base.out") or POSIX::_exit(126);
		open(STDERR, '>', "$base.err") or POSIX::_exit(126);
		exec('psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
			'-d', $connstr, '-f', "$base.sql")
		  or POSIX::_exit(127);
	}
	return { pid => $pid, base => $base };
}

sub bg_running
{
	my ($h) = @_;
	return 0 if defined $h->{rc};
	my $r = waitpid($h->{pid}, POSIX::WNOHANG());
	return 1 if $r == 0;
	$h->{rc} = $? >> 8;
	return 0;
}

# wait for a background psql (at most $secs); returns (rc, stdout, stderr)
sub bg_finish
{
	my ($h, $secs) = @_;
	my $deadline = time + ($secs || 120);
	usleep(50_000) while bg_running($h) && time < $deadline;
	if (bg_running($h))
	{
		kill('KILL', $h->{pid});
		waitpid($h->{pid}, 0);
		$h->{rc} = -1;
	}
	my $out = PostgreSQL::Test::Utils::slurp_file("$h->{base}.out");
	my $err = PostgreSQL::Test::Utils::slurp_file("$h->{base}.err");
	$err = "timed out\n$err" if $h->{rc} == -1;
	return ($h->{rc}, $out, $err);
}

# "rows/distinct k" of the effects table's rows for case $c (the fault
# tests' handlers write (c, k) there; a doubled effect shows as rows > k)
sub effect_counts
{
	my ($node, $c) = @_;
	return sql_ok($node,
		"SELECT count(*) || '/' || count(DISTINCT k) FROM effects WHERE c = '$c'");
}

# "kind:pid" of the live workers, sorted, as one string
sub worker_pids
{
	my ($node) = @_;
	return sql_ok($node,
		"SELECT string_agg(kind || ':' || pid, ',' ORDER BY kind, pid) FROM jobq.workers");
}

# wait (at most $secs) until the server log, from $offset, matches
sub wait_log
{
	my ($node, $re, $offset, $secs) = @_;
	my $deadline = time + ($secs || 30);
	while (time < $deadline)
	{
		return 1 if log_since($node, $offset) =~ $re;
		usleep(100_000);
	}
	diag("timed out waiting for $re in the server log");
	return 0;
}

# the server log from a byte offset on
sub log_since
{
	my ($node, $offset) = @_;
	return PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset || 0);
}

# ---- roles, errors and raw puts, for the security tests

sub sqlstate_of
{
	my ($err) = @_;
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : '';
}

# $sql as $role must fail with $state
sub fails_with
{
	my ($node, $role, $sql, $state, $name) = @_;
	my ($rc, $out, $err) = query_as($node, $role, $sql);
	my $got = $rc == 0 ? 'success' : (sqlstate_of($err) || "rc $rc");
	is($got, $state, $name) or diag("stderr: $err");
	return $got eq $state;
}

# $sql as $role must succeed; returns its output
sub ok_as
{
	my ($node, $role, $sql, $name) = @_;
	my ($rc, $out, $err) = query_as($node, $role, $sql);
	ok($rc == 0, $name) or diag("stderr: $err");
	return $out;
}

sub su_sql
{
	my ($node, $sql) = @_;
	my ($rc, $out, $err) = query_as($node, undef, $sql);
	die "query failed (rc $rc): $sql\n$err" if $rc != 0;
	return $out;
}

# EXECUTE on every overload of the named functions (signatures may change)
sub grant_jobq
{
	my ($node, $role, @names) = @_;
	my $list = join(', ', map { "'$_'" } @names);
	su_sql($node, qq{
DO \$\$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
            WHERE p.proname::text OPERATOR(pg_catalog.=) ANY (ARRAY[$list])
              AND p.pronamespace OPERATOR(pg_catalog.=) 'public'::regnamespace
  LOOP
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', f, '$role');
  END LOOP;
END
\$\$});
}

# a raw put of $body into $tube, on one connection; returns the job id
sub raw_put
{
	my ($port, $tube, $body, $ttr) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
	  or die "connect: $!";
	binmode($s);
	print $s "use $tube\r\n";
	my $l = <$s>;
	die "use $tube: $l" unless $l eq "USING $tube\r\n";
	print $s 'put 0 0 ' . ($ttr || 60) . ' ' . length($body) . "\r\n$body\r\n";
	my $r = <$s>;
	close($s);
	return ($r // '') =~ /^INSERTED (\d+)\r\n$/ ? $1 : undef;
}

sub wait_perl
{
	my ($cond, $secs) = @_;
	my $deadline = time + $secs;
	while (time < $deadline)
	{
		return 1 if $cond->();
		usleep(100_000);
	}
	return $cond->() ? 1 : 0;
}

END
{
	local $?;
	for my $pid (keys %beanstalkds)
	{
		kill('KILL', $pid);
		waitpid($pid, 0);
	}
}

1;

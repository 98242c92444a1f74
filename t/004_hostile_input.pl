# A storm of hostile job bodies from a raw socket client: every one is
# buried and recorded in jobq.failed, no handler runs, no worker dies.
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(time usleep);
use Test::More;
use PostgreSQL::Test::Utils;
use JobqTest;

my $port = bs_port(30);
my $maxjob = 262144;    # room for 100000 levels of nesting
my $bs = bs_start($port, '-z', $maxjob);
my $node = new_node('hostile_input', $port);

sql_ok($node, q{
CREATE TABLE effects (kw jsonb, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION take_all(kw jsonb) RETURNS void LANGUAGE sql AS
  'INSERT INTO public.effects (kw) VALUES (kw)';
SELECT jobq_register('t8', 'take_all');
});

my $before = worker_pids($node);
my $logpos = -s $node->logfile;
my $t0 = time;

# [category, expected sqlstate, body]
my @bodies;
sub add { push @bodies, [@_]; }

# not JSON at all
for my $i (1 .. 100)
{
	add('not json', '22P02', ("not json $i", '{', '}', '{"func_name":', "{'func_name': 'take_all'}",
		  '{"func_name" "take_all"}', "\x00\x01\x02$i", ' ' x $i, "{\"a\":1}$i", '{"func_name":"take_all",}')[$i % 10]);
}
add('not json', '22P02', '');    # an empty body

# wrong types and missing or invalid fields
my @wrong = (
	'null', 'true', '123', '"a string"', '[1,2,3]', '[]', '{}',
	'{"func_name": 1, "tube": "t8"}',
	'{"func_name": null, "tube": "t8"}',
	'{"func_name": ["take_all"], "tube": "t8"}',
	'{"func_name": {"x": 1}, "tube": "t8"}',
	'{"func_name": true, "tube": "t8"}',
	'{"func_name": "", "tube": "t8"}',
	'{"func_name": "' . ('f' x 300) . '", "tube": "t8"}',
	'{"func_name": "take_all"}',
	'{"func_name": "take_all", "tube": 8}',
	'{"func_name": "take_all", "tube": null}',
	'{"func_name": "take_all", "tube": "bad tube"}',
	'{"func_name": "take_all", "tube": "-t8"}',
	'{"func_name": "take_all", "tube": "' . ('t' x 201) . '"}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": [1]}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": "x"}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": 42}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": true}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {}, "id": "not-a-uuid"}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {}, "id": 12345}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {}, "id": ""}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {}, "id": "00000000-0000-0000-0000-00000000000g"}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {}, "id": ["00000000-0000-0000-0000-000000000001"]}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"n": 1e999999}}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"s": "a\u0000b"}}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"s": "\ud800"}}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"s": "\udc00\ud800"}}',
	qq({"func_name": "take_all", "tube": "t8", "kwargs": {"s": "raw\x00nul"}}),
	qq({"func_name": "take_all", "tube": "t8", "kwargs": {"s": "tab\there"}}),
	qq({"func_name": "take\x00_all", "tube": "t8"}),
);
add('wrong types', '22P02', $_) for (@wrong, @wrong);

# valid jobs naming no registered handler
for my $i (1 .. 60)
{
	my $f = ("nope_$i", "take_all'; DROP TABLE effects; --", 'pg_sleep', 'TAKE_ALL',
		'take_all ', 'public.take_all')[$i % 6];
	my $tube = $i % 7 == 0 ? 't8_elsewhere' : 't8';
	# a body naming another tube than the one it was put into: never run
	add($tube eq 't8' ? 'unknown func' : 'wrong tube', $tube eq 't8' ? '42883' : '42501',
		qq({"func_name": "$f", "tube": "$tube", "kwargs": {"i": $i}, "id": )
		  . ($i % 2 ? 'null' : sprintf('"%08d-0000-4000-8000-000000000000"', $i)) . '}');
}

# huge kwargs, near max-job-size
for my $i (1 .. 6)
{
	my $head = qq({"func_name": "huge_$i", "tube": "t8", "kwargs": {"blob": ");
	my $tail = '"}}';
	add('huge kwargs', '42883', $head . ('x' x ($maxjob - 200 - length($head))) . $tail);
}
for my $i (1 .. 4)
{
	# the same, cut short: not JSON
	my $head = qq({"func_name": "take_all", "tube": "t8", "kwargs": {"blob": ");
	add('huge kwargs', '22P02', $head . ('y' x ($maxjob - 100 - length($head))));
}
add('huge kwargs', '22P02', '{"func_name": "take_all", "tube": "t8", "kwargs": {'
	  . join(',', map { qq("k$_": $_) } 1 .. 14000) . ', "k1": 0}}');

# duplicate keys, at the top and deep down
my @dups = (
	'{"func_name": "take_all", "func_name": "take_all", "tube": "t8"}',
	'{"func_name": "take_all", "tube": "t8", "tube": "t8"}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {}, "kwargs": {}}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"a": 1, "a": 2}}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"a": {"b": [{"c": 1, "c": 1}]}}}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {}, "id": null, "id": null}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"\u0061": 1, "a": 2}}',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"x": 1}, "extra": 1, "extra": 2}',
);
add('duplicate keys', '22P02', $_) for (@dups, @dups, @dups, @dups, @dups);

# invalid UTF-8, everywhere
my @bad_utf8 = ("\xff", "\xfe\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf",
	"\xe2\x82", "\x80", "\xf8\x88\x80\x80\x80", "\xf4\x90\x80\x80");
for my $b (@bad_utf8)
{
	add('invalid utf-8', '22P02', qq({"func_name": "take_all", "tube": "t8", "kwargs": {"s": "a${b}b"}}));
	add('invalid utf-8', '22P02', qq({"func_name": "take_all", "tube": "t8", "kwargs": {"k${b}": 1}}));
	add('invalid utf-8', '22P02', qq({"func_name": "take_all$b", "tube": "t8"}));
	add('invalid utf-8', '22P02', qq({"func_name": "take_all", "tube": "t8", "kwargs": {}}$b));
}

# deep nesting
add('deep nesting', '22P02', '[' x 100000);
add('deep nesting', '22P02', ('[' x 100000) . (']' x 100000));
add('deep nesting', '22P02', '{"a":' x 40000);
add('deep nesting', '22P02', ('{"a":' x 40000) . '1' . ('}' x 40000));
add('deep nesting', '22P02',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"a": ' . ('[' x 100000) . (']' x 100000) . '}}');
add('deep nesting', '22P02',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"a": ' . ('{"b":' x 40000) . '1' . ('}' x 40000) . '}}');
add('deep nesting', '22P02',
	'{"func_name": "take_all", "tube": "t8", "kwargs": {"a": ' . ('[' x 3000) . (']' x 3000) . '}}');
add('deep nesting', '22P02', '{"func_name": "take_all", "tube": "t8", "kwargs": ' . ('[' x 100000));

my $n = scalar @bodies;

# nothing ready or reserved in a tube, within $secs
sub wait_perl_tube_idle
{
	my ($p, $tube, $secs) = @_;
	my $deadline = time + $secs;
	while (time < $deadline)
	{
		my $st = bs_stats($p, "stats-tube $tube");
		return 1 if $st && $st->{'current-jobs-ready'} + $st->{'current-jobs-reserved'} == 0;
		usleep(100_000);
	}
	return 0;
}
my %expect;
$expect{ $_->[1] }++ for @bodies;
my %cat;
$cat{ $_->[0] }++ for @bodies;
note("hostile bodies: $n (" . join(', ', map { "$_: $cat{$_}" } sort keys %cat) . ')');
for my $b (@bodies)
{
	die "body of a '$b->[0]' is over max-job-size" if length($b->[2]) > $maxjob;
}
cmp_ok($n, '>=', 300, 'case 1: a few hundred hostile bodies');

# the storm: one raw connection, one put after the other
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
  or die "connect: $!";
binmode($s);
print $s "use t8\r\n";
my $l = <$s>;
is($l, "USING t8\r\n", 'case 1: raw client uses tube t8');
my ($inserted, @ids) = (0);
for my $b (@bodies)
{
	my $body = $b->[2];
	print $s 'put 0 0 60 ' . length($body) . "\r\n" . $body . "\r\n";
	my $reply = <$s>;
	if (defined $reply && $reply =~ /^INSERTED (\d+)\r\n$/)
	{
		$inserted++;
		push @ids, $1;
	}
	else
	{
		diag("put of a '$b->[0]' body got " . ($reply // 'no reply'));
	}
}
is($inserted, $n, "case 1: beanstalkd took all $n bodies");
note(sprintf('case 1: storm sent in %.1f s', time - $t0));

ok(wait_for($node, "SELECT count(*) >= $n FROM jobq.failed", 120),
	'case 1: every body was recorded in jobq.failed');
# every body was handled (none is ready or reserved): the count is final
ok(wait_perl_tube_idle($port, 't8', 30), 'case 1: nothing left to handle in t8');
is(sql_ok($node, 'SELECT count(*) || \'/\' || count(DISTINCT bs_id) FROM jobq.failed'), "$n/$n",
	'case 1: one row per body, no more');
my $minid = $ids[0];
my $maxid = $ids[-1];
is(sql_ok($node, "SELECT count(*) FROM jobq.failed WHERE bs_id BETWEEN $minid AND $maxid"), $n,
	'case 1: the rows are the bodies put');
for my $state (sort keys %expect)
{
	is(sql_ok($node, "SELECT count(*) FROM jobq.failed WHERE sqlstate = '$state'"), $expect{$state},
		"case 1: $expect{$state} recorded with sqlstate $state");
}
is(sql_ok($node, 'SELECT count(*) FROM jobq.failed WHERE source = \'worker\' AND attempts = 1'), $n,
	'case 1: recorded by the workers at the first attempt');
my $t8 = bs_stats($port, 'stats-tube t8');
my $buried = $t8 ? $t8->{'current-jobs-buried'} : -1;
is($buried, $n, 'case 1: all of them are buried in beanstalkd');
is(sql_ok($node, 'SELECT count(*) FROM effects'), '0', 'case 1: no handler was called');

# the workers still run good jobs
my $good = '{"func_name": "take_all", "tube": "t8", "kwargs": {"good": true}}';
print $s 'put 0 0 60 ' . length($good) . "\r\n$good\r\n";
like(scalar(<$s>), qr/^INSERTED/, 'case 1: a valid job after the storm');
# an integer longer than 64 bits is a valid number, and keeps its digits
my $big = '{"func_name": "take_all", "tube": "t8", "kwargs": {"n": 123456789012345678901234567890}}';
print $s 'put 0 0 60 ' . length($big) . "\r\n$big\r\n";
like(scalar(<$s>), qr/^INSERTED/, 'case 1: a job with a 30-digit integer');
close($s);
ok(wait_for($node, q{SELECT count(*) = 1 FROM effects WHERE kw = '{"good": true}'}, 30),
	'case 1: ... runs');
ok(wait_for($node, q{SELECT count(*) = 1 FROM effects WHERE kw->>'n' = '123456789012345678901234567890'}, 30),
	'case 1: the 30-digit integer reaches the handler exactly');
is(worker_pids($node), $before, 'case 1: the same worker processes live on');
unlike(log_since($node, $logpos), qr/terminated by signal|exited with exit code [1-9]/,
	'case 1: no process crashed or exited');
ok(pid_gone($bs) == 0, 'case 1: beanstalkd is still up');
note(sprintf('case 1 took %.1f s', time - $t0));

$node->stop('fast');
done_testing();

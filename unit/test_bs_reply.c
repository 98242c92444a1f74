/*
 * test_bs_reply.c
 *		beanstalkd's reply lines and YAML documents (src/bs_reply.c).
 */
#include "unit.h"

#include "bs_reply.h"

/* a writable copy of a document, as beanstalk.c hands one over */
static char *
doc(const char *text, size_t *len)
{
	*len = strlen(text);
	return pstrdup(text);
}

static const char *job_doc =
"---\nid: 7\ntube: mail\nstate: reserved\npri: 1024\nage: 3\ndelay: 0\nttr: 60\n"
"time-left: 59\nfile: 0\nreserves: 2\ntimeouts: 1\nreleases: 1\nburies: 0\nkicks: 0\n";

static void
job_stats(void)
{
	BsJobStats js;
	size_t		len;
	char	   *d = doc(job_doc, &len);

	CHECK(bs_parse_job_stats(d, len, &js));
	CHECK(js.id == 7 && strcmp(js.tube, "mail") == 0 && strcmp(js.state, "reserved") == 0);
	CHECK(js.pri == 1024 && js.age == 3 && js.ttr == 60 && js.time_left == 59);
	CHECK(js.reserves == 2 && js.timeouts == 1 && js.releases == 1 && js.buries == 0);

	/* the instant a ttr ends, beanstalkd prints time-left: -1 */
	d = doc("---\nid: 1\ntube: t\nstate: reserved\npri: 0\nage: 0\ndelay: 0\nttr: 1\n"
			"time-left: -1\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n", &len);
	CHECK(bs_parse_job_stats(d, len, &js) && js.time_left == -1);

	/* a missing field, a number that is not one, a sign where none may be */
	d = doc("---\nid: 1\ntube: t\nstate: ready\n", &len);
	CHECK(!bs_parse_job_stats(d, len, &js));
	d = doc("---\nid: 1x\ntube: t\nstate: ready\npri: 0\nage: 0\ndelay: 0\nttr: 1\n"
			"time-left: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n", &len);
	CHECK(!bs_parse_job_stats(d, len, &js));
	d = doc("---\nid: 1\ntube: t\nstate: ready\npri: -5\nage: 0\ndelay: 0\nttr: 1\n"
			"time-left: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n", &len);
	CHECK(!bs_parse_job_stats(d, len, &js));
	/* 2^64 overflows */
	d = doc("---\nid: 18446744073709551616\ntube: t\nstate: ready\npri: 0\nage: 0\ndelay: 0\n"
			"ttr: 1\ntime-left: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n", &len);
	CHECK(!bs_parse_job_stats(d, len, &js));
	/* not a document: no "---", a NUL inside */
	d = doc("id: 1\n", &len);
	CHECK(!bs_parse_job_stats(d, len, &js));
	d = doc(job_doc, &len);
	d[10] = '\0';
	CHECK(!bs_parse_job_stats(d, len, &js));
	/* a tube name longer than any tube */
	{
		StringInfoData s;

		initStringInfo(&s);
		appendStringInfoString(&s, "---\nid: 1\ntube: ");
		for (int i = 0; i < 300; i++)
			appendStringInfoChar(&s, 'a');
		appendStringInfoString(&s, "\nstate: ready\n");
		CHECK(!bs_parse_job_stats(s.data, s.len, &js));
	}
}

static void
tube_stats_and_list(void)
{
	BsTubeStats ts;
	BsTubeList	tl;
	BsStats		st;
	size_t		len;
	char	   *d;

	d = doc("---\nname: mail\ncurrent-jobs-urgent: 1\ncurrent-jobs-ready: 5\n"
			"current-jobs-reserved: 2\ncurrent-jobs-delayed: 3\ncurrent-jobs-buried: 4\n"
			"total-jobs: 99\ncurrent-using: 1\ncurrent-waiting: 0\ncurrent-watching: 2\n"
			"pause: 10\ncmd-delete: 7\ncmd-pause-tube: 1\npause-time-left: 9\n", &len);
	CHECK(bs_parse_tube_stats(d, len, &ts));
	CHECK(strcmp(ts.name, "mail") == 0 && ts.ready == 5 && ts.reserved == 2 &&
		  ts.delayed == 3 && ts.buried == 4 && ts.urgent == 1 && ts.total == 99);
	CHECK(ts.watching == 2 && ts.waiting == 0 && ts.pause == 10 && ts.pause_time_left == 9);

	d = doc("---\n- default\n- mail\n- -bad\n- x y\n", &len);
	CHECK(bs_parse_tube_list(d, len, &tl));
	CHECK(tl.n == 2 && strcmp(tl.names[0], "default") == 0 && strcmp(tl.names[1], "mail") == 0);
	d = doc("---\n", &len);
	CHECK(bs_parse_tube_list(d, len, &tl) && tl.n == 0);
	d = doc("---\ndefault\n", &len);
	CHECK(!bs_parse_tube_list(d, len, &tl));

	d = doc("---\nversion: \"1.12\"\nmax-job-size: 65535\nhostname: \n", &len);
	CHECK(bs_parse_stats(d, len, &st) && st.n == 3);
	CHECK(strcmp(bs_stats_get(&st, "version"), "\"1.12\"") == 0);
	CHECK(strcmp(bs_stats_get(&st, "max-job-size"), "65535") == 0);
	CHECK(strcmp(bs_stats_get(&st, "hostname"), "") == 0);
	CHECK(bs_stats_get(&st, "pid") == NULL);
	d = doc("---\nno separator\n", &len);
	CHECK(!bs_parse_stats(d, len, &st));
}

static void
reply_lines(void)
{
	uint64		a,
				b;

	CHECK(bs_reply_u64("INSERTED 42", "INSERTED", &a) && a == 42);
	CHECK(!bs_reply_u64("INSERTED 42 ", "INSERTED", &a));
	CHECK(!bs_reply_u64("INSERTED -1", "INSERTED", &a));
	CHECK(!bs_reply_u64("INSERTED", "INSERTED", &a));
	CHECK(!bs_reply_u64("INSERTEDX 1", "INSERTED", &a));
	CHECK(bs_reply_u64("OK 18446744073709551615", "OK", &a) && a == PG_UINT64_MAX);
	CHECK(!bs_reply_u64("OK 18446744073709551616", "OK", &a));
	CHECK(bs_reply_u64_u64("RESERVED 5 12", "RESERVED", &a, &b) && a == 5 && b == 12);
	CHECK(!bs_reply_u64_u64("RESERVED 5", "RESERVED", &a, &b));
	CHECK(!bs_reply_u64_u64("RESERVED 5  12", "RESERVED", &a, &b));
	CHECK(!bs_reply_u64_u64("RESERVED 5 12x", "RESERVED", &a, &b));
	CHECK(bs_tube_name_ok("a-b+c/d;e.f$g_h(i)"));
	CHECK(!bs_tube_name_ok("-a") && !bs_tube_name_ok("") && !bs_tube_name_ok("a b"));
}

void
test_bs_reply(void)
{
	job_stats();
	tube_stats_and_list();
	reply_lines();
}

/*
 * lat.c -- commit-to-ready latency of jobq's outbox relay.
 *
 * For each job, one committed single-statement transaction
 *     SELECT jobq_put(TUBE, 'f', jsonb_build_object('i', k))
 * is sent over libpq (autocommit), while a "reserve-with-timeout" is
 * already pending on a separate beanstalkd connection that watches only
 * TUBE.  Both sockets are polled together, so each event is timestamped
 * when it arrives (CLOCK_MONOTONIC):
 *     t0  the statement is sent
 *     t1  its result (and ReadyForQuery, i.e. the commit) has arrived
 *     t2  beanstalkd's RESERVED reply has arrived: the job was ready
 * The reserved job's body must carry the uuid jobq_put returned; it is
 * then deleted before the next job.  No worker watches TUBE (it has no
 * handler), so this client is the only consumer.
 *
 * commit-to-ready = t2 - t1.  It can be slightly negative: the relay is
 * woken at commit, before the server has sent the client its reply.
 *
 * Build:  make -C bench lat      (needs libpq-dev)
 * Usage:  lat CONNINFO BSHOST BSPORT N WARMUP TUBE
 * Output: one line on stdout,
 *   lat N P50 P90 P99 MAX E2E_P50 E2E_P99 STMT_P50
 * in milliseconds: P* and MAX of t2-t1, E2E_* of t2-t0, STMT_P50 of t1-t0.
 * Any error prints a message on stderr and exits with status 1.
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define RESERVE_TIMEOUT_S	10
#define BUF_SIZE			65536

static void
die(const char *fmt, ...)
{
	va_list		ap;

	fputs("lat: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

/* ---- a minimal blocking beanstalkd connection ---- */

static int	bs_fd = -1;
static char bs_buf[BUF_SIZE];
static size_t bs_start,
			bs_end;

static void
bs_connect(const char *host, const char *port)
{
	struct addrinfo hints,
			   *res,
			   *ai;
	int			one = 1;
	int			rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		die("cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next)
	{
		bs_fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (bs_fd < 0)
			continue;
		if (connect(bs_fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(bs_fd);
		bs_fd = -1;
	}
	freeaddrinfo(res);
	if (bs_fd < 0)
		die("cannot connect to beanstalkd at %s:%s", host, port);
	setsockopt(bs_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
bs_send(const char *s)
{
	size_t		len = strlen(s);

	while (len > 0)
	{
		ssize_t		n = send(bs_fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("send: %s", strerror(errno));
		s += n;
		len -= (size_t) n;
	}
}

static void
bs_fill(void)
{
	ssize_t		n;

	if (bs_start == bs_end)
		bs_start = bs_end = 0;
	else if (bs_start > 0)
	{
		memmove(bs_buf, bs_buf + bs_start, bs_end - bs_start);
		bs_end -= bs_start;
		bs_start = 0;
	}
	if (bs_end == sizeof(bs_buf))
		die("reply too long");
	do
		n = recv(bs_fd, bs_buf + bs_end, sizeof(bs_buf) - bs_end, 0);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		die("beanstalkd closed the connection");
	if (n < 0)
		die("recv: %s", strerror(errno));
	bs_end += (size_t) n;
}

/* the next reply line without "\r\n"; valid until the next read */
static char *
bs_line(void)
{
	for (;;)
	{
		char	   *nl = memchr(bs_buf + bs_start, '\n', bs_end - bs_start);

		if (nl != NULL)
		{
			char	   *line = bs_buf + bs_start;

			if (nl == line || nl[-1] != '\r')
				die("reply line not terminated by \\r\\n");
			nl[-1] = '\0';
			bs_start = (size_t) (nl - bs_buf) + 1;
			return line;
		}
		bs_fill();
	}
}

/* len bytes of job body plus "\r\n", copied NUL-terminated into out */
static void
bs_body(size_t len, char *out, size_t outsize)
{
	if (len + 2 > sizeof(bs_buf) || len + 1 > outsize)
		die("job body too long (%zu bytes)", len);
	while (bs_end - bs_start < len + 2)
		bs_fill();
	if (bs_buf[bs_start + len] != '\r' || bs_buf[bs_start + len + 1] != '\n')
		die("job body not terminated by \\r\\n");
	memcpy(out, bs_buf + bs_start, len);
	out[len] = '\0';
	bs_start += len + 2;
}

static void
bs_expect(const char *cmd, const char *want)
{
	char	   *line;

	bs_send(cmd);
	line = bs_line();
	if (strcmp(line, want) != 0)
		die("\"%.*s\": unexpected reply \"%s\" (wanted \"%s\")",
			(int) strcspn(cmd, "\r"), cmd, line, want);
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/* nearest-rank percentile of a sorted array */
static double
pct(const double *v, int n, double p)
{
	int			k = (int) (p / 100.0 * n + 0.999999) - 1;

	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

int
main(int argc, char **argv)
{
	const char *conninfo;
	const char *tube;
	int			n,
				warm;
	PGconn	   *pg;
	PGresult   *res;
	double	   *lat,
			   *e2e,
			   *stmt;
	char		cmd[512];
	char		want[512];
	char		body[4096];

	if (argc != 7)
	{
		fputs("usage: lat CONNINFO BSHOST BSPORT N WARMUP TUBE\n", stderr);
		return 2;
	}
	conninfo = argv[1];
	n = atoi(argv[4]);
	warm = atoi(argv[5]);
	tube = argv[6];
	if (n < 1 || warm < 0 || strlen(tube) > 200)
		die("bad N, WARMUP or TUBE");

	bs_connect(argv[2], argv[3]);
	snprintf(cmd, sizeof(cmd), "watch %s\r\n", tube);
	bs_expect(cmd, "WATCHING 2");
	bs_expect("ignore default\r\n", "WATCHING 1");

	pg = PQconnectdb(conninfo);
	if (PQstatus(pg) != CONNECTION_OK)
		die("connecting to PostgreSQL: %s", PQerrorMessage(pg));
	res = PQprepare(pg, "put",
					"SELECT jobq_put($1, 'f', jsonb_build_object('i', $2::int))", 2, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die("prepare: %s", PQerrorMessage(pg));
	PQclear(res);
	if (PQsetnonblocking(pg, 1) != 0)
		die("PQsetnonblocking failed");

	lat = malloc(sizeof(double) * (size_t) n);
	e2e = malloc(sizeof(double) * (size_t) n);
	stmt = malloc(sizeof(double) * (size_t) n);
	if (!lat || !e2e || !stmt)
		die("out of memory");

	for (int k = 0; k < warm + n; k++)
	{
		char		kbuf[16];
		const char *params[2] = {tube, kbuf};
		char		uuid[64] = "";
		double		t0,
					t1 = -1,
					t2 = -1;
		unsigned long long id = 0;
		size_t		bytes = 0;
		int			pg_done = 0,
					bs_done = 0;

		snprintf(kbuf, sizeof(kbuf), "%d", k);
		/* the reserve is waiting in beanstalkd before the job exists */
		snprintf(cmd, sizeof(cmd), "reserve-with-timeout %d\r\n", RESERVE_TIMEOUT_S);
		bs_send(cmd);

		t0 = now_ms();
		if (!PQsendQueryPrepared(pg, "put", 2, params, NULL, NULL, 0))
			die("send: %s", PQerrorMessage(pg));
		while (PQflush(pg) == 1)
		{
			struct pollfd w = {PQsocket(pg), POLLOUT, 0};

			poll(&w, 1, 1000);
		}

		while (!pg_done || !bs_done)
		{
			struct pollfd fds[2] = {{PQsocket(pg), POLLIN, 0}, {bs_fd, POLLIN, 0}};
			int			nfd = 0;

			/* data already buffered on the beanstalkd side needs no poll */
			if (!bs_done && bs_end > bs_start && memchr(bs_buf + bs_start, '\n', bs_end - bs_start))
				fds[1].revents = POLLIN;
			else
			{
				fds[0].events = pg_done ? 0 : POLLIN;
				fds[1].events = bs_done ? 0 : POLLIN;
				nfd = poll(fds, 2, (RESERVE_TIMEOUT_S + 5) * 1000);
				if (nfd < 0 && errno == EINTR)
					continue;
				if (nfd <= 0)
					die("timed out waiting (job %d)", k);
			}
			if (!pg_done && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)))
			{
				if (!PQconsumeInput(pg))
					die("PQconsumeInput: %s", PQerrorMessage(pg));
				while (!PQisBusy(pg))
				{
					res = PQgetResult(pg);
					if (res == NULL)
					{
						t1 = now_ms();
						pg_done = 1;
						break;
					}
					if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
						die("jobq_put: %s", PQerrorMessage(pg));
					snprintf(uuid, sizeof(uuid), "%s", PQgetvalue(res, 0, 0));
					PQclear(res);
				}
			}
			if (!bs_done && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)))
			{
				char	   *line;

				t2 = now_ms();
				line = bs_line();
				if (strcmp(line, "TIMED_OUT") == 0)
					die("job %d did not become ready within %d s", k, RESERVE_TIMEOUT_S);
				if (sscanf(line, "RESERVED %llu %zu", &id, &bytes) != 2 || id == 0)
					die("unexpected reply \"%s\"", line);
				bs_body(bytes, body, sizeof(body));
				bs_done = 1;
			}
		}

		if (uuid[0] == '\0' || strstr(body, uuid) == NULL)
			die("job %d: reserved body does not carry uuid %s: %s", k, uuid, body);
		snprintf(cmd, sizeof(cmd), "delete %llu\r\n", id);
		snprintf(want, sizeof(want), "DELETED");
		bs_expect(cmd, want);

		if (k >= warm)
		{
			lat[k - warm] = t2 - t1;
			e2e[k - warm] = t2 - t0;
			stmt[k - warm] = t1 - t0;
		}
	}

	qsort(lat, (size_t) n, sizeof(double), cmp_double);
	qsort(e2e, (size_t) n, sizeof(double), cmp_double);
	qsort(stmt, (size_t) n, sizeof(double), cmp_double);
	printf("lat %d %.3f %.3f %.3f %.3f %.3f %.3f %.3f\n", n,
		   pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 99), lat[n - 1],
		   pct(e2e, n, 50), pct(e2e, n, 99), pct(stmt, n, 50));
	PQfinish(pg);
	close(bs_fd);
	return 0;
}

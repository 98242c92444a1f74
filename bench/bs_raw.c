/*
 * bs_raw.c -- raw beanstalkd throughput baseline for the jobq benchmarks.
 *
 * A minimal standalone client (plain libc sockets, no PostgreSQL headers)
 * that measures how fast a beanstalkd server can accept and hand out jobs
 * over a single TCP connection, with nothing in between.  jobq's own
 * benchmark figures are compared against these numbers.
 *
 * Build:  make -C bench bs_raw
 *    or:  cc -O2 -Wall -Wextra -Werror -o bench/bs_raw bench/bs_raw.c
 *
 * Usage:  bs_raw HOST PORT MODE N [TUBE]
 *
 *   put      N sequential puts: one write per job, then wait for and parse
 *            the "INSERTED <id>" reply before sending the next one.
 *   pput     N pipelined puts: batches of up to 1000 puts are sent in one
 *            write, then the batch's replies are read.
 *   reserve  N sequential "reserve-with-timeout 1" + "delete <id>" round
 *            trips on jobs already in the tube; fails on TIMED_OUT.
 *   preserve N pipelined reserves and deletes on jobs already in the tube:
 *            up to 1000 "reserve-with-timeout 0" in one write, their
 *            replies, then their deletes in one write and those replies;
 *            fails on TIMED_OUT.
 *
 *   TUBE defaults to "bench-raw".  put/pput "use" it; reserve "watch"es it
 *   and ignores "default".
 *
 * Output: exactly one line on stdout, "MODE N SECONDS RATE", e.g.
 *   put 100000 1.234 81037
 * where RATE is jobs per second (integer).  Only the job loop is timed
 * (CLOCK_MONOTONIC); connecting and the use/watch/ignore commands are not.
 * Any I/O error, protocol error or unexpected reply prints a message on
 * stderr and exits with status 1 (usage errors exit with status 2).
 */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TUBE	"bench-raw"
#define PUT_PRI			1024	/* priority */
#define PUT_DELAY		0		/* seconds */
#define PUT_TTR			60		/* seconds */
#define PIPE_BATCH		1000	/* puts per pipelined batch */
#define RBUF_SIZE		65536	/* reply buffer; longest reply line is ~60 bytes */
#define MAX_LINE		256		/* no beanstalkd reply line we expect is longer */

/* A realistic jobq-style payload of fixed size (~100 bytes). */
static const char JOB_BODY[] =
	"{\"func_name\":\"bench\",\"tube\":\"bench\",\"kwargs\":{\"i\":123},"
	"\"id\":\"00000000-0000-0000-0000-000000000000\"}";

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

static void
die(const char *fmt, ...)
{
	va_list		ap;

	fputs("bs_raw: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
usage(void)
{
	fputs("usage: bs_raw HOST PORT MODE N [TUBE]\n"
		  "  MODE: put | pput | reserve | preserve\n"
		  "  N:    number of jobs (>= 1)\n"
		  "  TUBE: tube name (default \"" DEFAULT_TUBE "\")\n", stderr);
	exit(2);
}

/* ------------------------------------------------------------------ */
/* Connection and buffered reply reader                                */
/* ------------------------------------------------------------------ */

typedef struct Conn
{
	int			fd;
	size_t		start;			/* first unconsumed byte in buf */
	size_t		end;			/* one past the last received byte */
	char		buf[RBUF_SIZE];
} Conn;

static void
conn_open(Conn *c, const char *host, const char *port)
{
	struct addrinfo hints;
	struct addrinfo *res;
	struct addrinfo *ai;
	int			rc;
	int			one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		die("cannot resolve %s:%s: %s", host, port, gai_strerror(rc));

	c->fd = -1;
	for (ai = res; ai != NULL; ai = ai->ai_next)
	{
		c->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (c->fd < 0)
			continue;
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	if (c->fd < 0)
		die("cannot connect to %s:%s: %s", host, port, strerror(errno));

	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		die("setsockopt(TCP_NODELAY): %s", strerror(errno));

	c->start = c->end = 0;
}

/* Send all of buf, retrying on short writes and EINTR. */
static void
send_all(Conn *c, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = send(c->fd, buf, len, MSG_NOSIGNAL);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			die("send: %s", strerror(errno));
		}
		buf += n;
		len -= (size_t) n;
	}
}

/* Receive more data into the buffer, compacting it first if needed. */
static void
conn_fill(Conn *c)
{
	ssize_t		n;

	if (c->start == c->end)
		c->start = c->end = 0;
	else if (c->end == sizeof(c->buf) && c->start > 0)
	{
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->end == sizeof(c->buf))
		die("internal error: reply buffer full");

	for (;;)
	{
		n = recv(c->fd, c->buf + c->end, sizeof(c->buf) - c->end, 0);
		if (n > 0)
			break;
		if (n == 0)
			die("server closed the connection");
		if (errno != EINTR)
			die("recv: %s", strerror(errno));
	}
	c->end += (size_t) n;
}

/*
 * Return the next reply line, without its "\r\n", NUL-terminated in place.
 * The pointer is valid until the next read from the connection.  A bare
 * "\n", a stray "\r" or a NUL byte inside the line is a protocol error.
 */
static char *
read_line(Conn *c)
{
	size_t		scanned = 0;	/* bytes after start already checked */

	for (;;)
	{
		char	   *line = c->buf + c->start;
		size_t		avail = c->end - c->start;
		char	   *nl = memchr(line + scanned, '\n', avail - scanned);

		if (nl != NULL)
		{
			size_t		len = (size_t) (nl - line);

			if (len > MAX_LINE)
				die("protocol error: reply line longer than %d bytes", MAX_LINE);
			if (len == 0 || line[len - 1] != '\r')
				die("protocol error: reply line not terminated by \\r\\n");
			line[len - 1] = '\0';
			if (strlen(line) != len - 1 || memchr(line, '\r', len - 1) != NULL)
				die("protocol error: stray control byte in reply line");
			c->start += len + 1;
			return line;
		}
		scanned = avail;
		if (avail > MAX_LINE)
			die("protocol error: reply line longer than %d bytes", MAX_LINE);
		conn_fill(c);
	}
}

/* Consume exactly len bytes of job data followed by "\r\n". */
static void
skip_body(Conn *c, size_t len)
{
	while (len > 0)
	{
		size_t		take;

		if (c->start == c->end)
			conn_fill(c);
		take = c->end - c->start;
		if (take > len)
			take = len;
		c->start += take;
		len -= take;
	}
	while (c->end - c->start < 2)
		conn_fill(c);
	if (c->buf[c->start] != '\r' || c->buf[c->start + 1] != '\n')
		die("protocol error: job body not terminated by \\r\\n");
	c->start += 2;
}

/* ------------------------------------------------------------------ */
/* Strict reply parsing                                                */
/* ------------------------------------------------------------------ */

/*
 * Parse an unsigned decimal number at *p: at least one digit, no sign, no
 * leading whitespace, no overflow.  Advances *p past the digits.
 */
static unsigned long long
parse_u64(const char **p, const char *what, const char *line)
{
	const char *s = *p;
	unsigned long long v = 0;

	if (*s < '0' || *s > '9')
		die("protocol error: bad %s in reply \"%s\"", what, line);
	while (*s >= '0' && *s <= '9')
	{
		unsigned	d = (unsigned) (*s - '0');

		if (v > (~0ULL - d) / 10)
			die("protocol error: %s overflows in reply \"%s\"", what, line);
		v = v * 10 + d;
		s++;
	}
	*p = s;
	return v;
}

/* Expect exactly "<prefix><id>"; return the id. */
static unsigned long long
expect_id(const char *line, const char *prefix)
{
	size_t		plen = strlen(prefix);
	const char *p;
	unsigned long long id;

	if (strncmp(line, prefix, plen) != 0)
		die("unexpected reply \"%s\" (wanted \"%s<id>\")", line, prefix);
	p = line + plen;
	id = parse_u64(&p, "job id", line);
	if (*p != '\0' || id == 0)
		die("protocol error: malformed reply \"%s\"", line);
	return id;
}

/* Expect a reply line equal to want. */
static void
expect_line(Conn *c, const char *want)
{
	const char *line = read_line(c);

	if (strcmp(line, want) != 0)
		die("unexpected reply \"%s\" (wanted \"%s\")", line, want);
}

/* Send a command line (without "\r\n") and expect the exact reply want. */
static void
command(Conn *c, const char *cmd, const char *want)
{
	char		buf[MAX_LINE + 3];
	int			n = snprintf(buf, sizeof(buf), "%s\r\n", cmd);

	if (n < 0 || (size_t) n >= sizeof(buf))
		die("internal error: command too long");
	send_all(c, buf, (size_t) n);
	expect_line(c, want);
}

/* ------------------------------------------------------------------ */
/* Benchmark modes                                                     */
/* ------------------------------------------------------------------ */

/* Format one complete put command (header + body) into buf; return length. */
static size_t
format_put(char *buf, size_t size)
{
	int			n = snprintf(buf, size, "put %d %d %d %zu\r\n%s\r\n",
							 PUT_PRI, PUT_DELAY, PUT_TTR,
							 sizeof(JOB_BODY) - 1, JOB_BODY);

	if (n < 0 || (size_t) n >= size)
		die("internal error: put command too long");
	return (size_t) n;
}

/* Sequential puts: one write, one reply, per job. */
static void
run_put(Conn *c, unsigned long n)
{
	char		cmd[512];
	size_t		len = format_put(cmd, sizeof(cmd));
	unsigned long i;

	for (i = 0; i < n; i++)
	{
		send_all(c, cmd, len);
		(void) expect_id(read_line(c), "INSERTED ");
	}
}

/* Pipelined puts: up to PIPE_BATCH puts per write, then their replies. */
static void
run_pput(Conn *c, unsigned long n)
{
	char		one[512];
	size_t		len = format_put(one, sizeof(one));
	char	   *batch = malloc(len * PIPE_BATCH);
	unsigned long done = 0;
	unsigned long i;

	if (batch == NULL)
		die("out of memory");
	/* Every put is identical, so build the largest batch once. */
	for (i = 0; i < PIPE_BATCH; i++)
		memcpy(batch + i * len, one, len);

	while (done < n)
	{
		unsigned long k = n - done < PIPE_BATCH ? n - done : PIPE_BATCH;

		send_all(c, batch, k * len);
		for (i = 0; i < k; i++)
			(void) expect_id(read_line(c), "INSERTED ");
		done += k;
	}
	free(batch);
}

static unsigned long long reserved_job(Conn *c, const char *line,
									   unsigned long done, unsigned long n);

/* Sequential reserve-with-timeout + delete round trips. */
static void
run_reserve(Conn *c, unsigned long n)
{
	static const char reserve_cmd[] = "reserve-with-timeout 1\r\n";
	unsigned long i;

	for (i = 0; i < n; i++)
	{
		unsigned long long id;
		char		del[64];
		int			dlen;

		send_all(c, reserve_cmd, sizeof(reserve_cmd) - 1);
		id = reserved_job(c, read_line(c), i, n);
		dlen = snprintf(del, sizeof(del), "delete %llu\r\n", id);
		send_all(c, del, (size_t) dlen);
		expect_line(c, "DELETED");
	}
}

/* Parse "RESERVED <id> <bytes>", skip the body; returns the id. */
static unsigned long long
reserved_job(Conn *c, const char *line, unsigned long done, unsigned long n)
{
	const char *p;
	unsigned long long id;
	unsigned long long bytes;

	if (strcmp(line, "TIMED_OUT") == 0)
		die("reserve timed out after %lu of %lu jobs (tube empty?)", done, n);
	if (strncmp(line, "RESERVED ", 9) != 0)
		die("unexpected reply \"%s\" (wanted \"RESERVED <id> <bytes>\")", line);
	p = line + 9;
	id = parse_u64(&p, "job id", line);
	if (*p++ != ' ')
		die("protocol error: malformed reply \"%s\"", line);
	bytes = parse_u64(&p, "byte count", line);
	if (*p != '\0' || id == 0)
		die("protocol error: malformed reply \"%s\"", line);
	skip_body(c, (size_t) bytes);
	return id;
}

/* Pipelined reserves, then pipelined deletes, PIPE_BATCH at a time. */
static void
run_preserve(Conn *c, unsigned long n)
{
	static const char reserve_cmd[] = "reserve-with-timeout 0\r\n";
	size_t		rlen = sizeof(reserve_cmd) - 1;
	char	   *reserves = malloc(rlen * PIPE_BATCH);
	char	   *deletes = malloc(32 * PIPE_BATCH);
	unsigned long done = 0;
	unsigned long i;

	if (reserves == NULL || deletes == NULL)
		die("out of memory");
	for (i = 0; i < PIPE_BATCH; i++)
		memcpy(reserves + i * rlen, reserve_cmd, rlen);
	while (done < n)
	{
		unsigned long k = n - done < PIPE_BATCH ? n - done : PIPE_BATCH;
		size_t		dlen = 0;

		send_all(c, reserves, k * rlen);
		for (i = 0; i < k; i++)
		{
			unsigned long long id = reserved_job(c, read_line(c), done + i, n);

			dlen += (size_t) snprintf(deletes + dlen, 32, "delete %llu\r\n", id);
		}
		send_all(c, deletes, dlen);
		for (i = 0; i < k; i++)
			expect_line(c, "DELETED");
		done += k;
	}
	free(reserves);
	free(deletes);
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
	const char *host;
	const char *port;
	const char *mode;
	const char *tube = DEFAULT_TUBE;
	const char *p;
	char	   *endp;
	unsigned long n;
	char		cmd[MAX_LINE];
	char		want[MAX_LINE];
	static Conn conn;			/* static: the reply buffer is 64 kB */
	struct timespec t0;
	struct timespec t1;
	double		secs;
	double		rate;

	if (argc != 5 && argc != 6)
		usage();
	host = argv[1];
	port = argv[2];
	mode = argv[3];
	if (argc == 6)
		tube = argv[5];

	if (strcmp(mode, "put") != 0 && strcmp(mode, "pput") != 0 &&
		strcmp(mode, "reserve") != 0 && strcmp(mode, "preserve") != 0)
	{
		fprintf(stderr, "bs_raw: unknown MODE \"%s\"\n", mode);
		usage();
	}

	errno = 0;
	n = strtoul(argv[4], &endp, 10);
	if (argv[4][0] < '0' || argv[4][0] > '9' || *endp != '\0' ||
		errno != 0 || n == 0)
	{
		fprintf(stderr, "bs_raw: N must be a positive integer\n");
		usage();
	}

	/* beanstalkd tube names: 1..200 bytes, no whitespace or control bytes */
	if (tube[0] == '\0' || strlen(tube) > 200)
	{
		fprintf(stderr, "bs_raw: TUBE must be 1 to 200 bytes long\n");
		usage();
	}
	for (p = tube; *p != '\0'; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
		{
			fprintf(stderr, "bs_raw: TUBE contains whitespace or control bytes\n");
			usage();
		}

	conn_open(&conn, host, port);

	/* Untimed setup: select the tube to put into / reserve from. */
	if (strcmp(mode, "reserve") == 0 || strcmp(mode, "preserve") == 0)
	{
		snprintf(cmd, sizeof(cmd), "watch %s", tube);
		if (strcmp(tube, "default") == 0)
			command(&conn, cmd, "WATCHING 1");
		else
		{
			command(&conn, cmd, "WATCHING 2");
			command(&conn, "ignore default", "WATCHING 1");
		}
	}
	else
	{
		snprintf(cmd, sizeof(cmd), "use %s", tube);
		snprintf(want, sizeof(want), "USING %s", tube);
		command(&conn, cmd, want);
	}

	if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0)
		die("clock_gettime: %s", strerror(errno));

	if (strcmp(mode, "put") == 0)
		run_put(&conn, n);
	else if (strcmp(mode, "pput") == 0)
		run_pput(&conn, n);
	else if (strcmp(mode, "reserve") == 0)
		run_reserve(&conn, n);
	else
		run_preserve(&conn, n);

	if (clock_gettime(CLOCK_MONOTONIC, &t1) != 0)
		die("clock_gettime: %s", strerror(errno));

	close(conn.fd);

	secs = (double) (t1.tv_sec - t0.tv_sec) +
		(double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
	rate = secs > 0 ? (double) n / secs : 0.0;
	printf("%s %lu %.3f %.0f\n", mode, n, secs, rate);
	return 0;
}

/*
 * beanstalk.c
 *		The beanstalkd protocol client.
 *
 * One BeanstalkConn is one TCP connection to one server.  Requests are
 * written with a single send() (command line and body together) on a socket
 * with TCP_NODELAY; replies are read into a buffer and parsed strictly.
 * Waiting is done on a WaitEventSet that also holds the process latch, so an
 * interrupt (cancel, statement_timeout, SIGTERM) ends the wait through
 * CHECK_FOR_INTERRUPTS.  Such an error leaves in_flight set, and the next
 * request closes the connection and opens a fresh one rather than trying to
 * resynchronise with replies it no longer expects.
 *
 * Protocol reference: beanstalkd's doc/protocol.txt.
 */
#include "postgres.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "jobq.h"
#include "settings.h"

int			jobq_connect_timeout = 2000;
int			jobq_io_timeout = 5000;

/* positions in a connection's WaitEventSet */
#define WES_SOCKET	0

#define RBUF_INITIAL	8192
#define RBUF_KEEP		(64 * 1024)	/* a bigger read buffer is given back when empty */

/* every command and reply word of the protocol jobq speaks, named once */
#define CMD_USE			"use"
#define CMD_PUT			"put"
#define CMD_RESERVE		"reserve-with-timeout"
#define CMD_DELETE		"delete"
#define CMD_RELEASE		"release"
#define CMD_BURY		"bury"
#define CMD_TOUCH		"touch"
#define CMD_WATCH		"watch"
#define CMD_IGNORE		"ignore"
#define CMD_KICK		"kick"
#define CMD_KICK_JOB	"kick-job"
#define CMD_PEEK		"peek"
#define CMD_PEEK_READY	"peek-ready"
#define CMD_PEEK_DELAYED "peek-delayed"
#define CMD_PEEK_BURIED "peek-buried"
#define CMD_STATS		"stats"
#define CMD_STATS_TUBE	"stats-tube"
#define CMD_STATS_JOB	"stats-job"
#define CMD_LIST_TUBES	"list-tubes"
#define CMD_PAUSE_TUBE	"pause-tube"

#define MSG_USING		"USING"
#define MSG_INSERTED	"INSERTED"
#define MSG_BURIED		"BURIED"
#define MSG_RESERVED	"RESERVED"
#define MSG_DELETED		"DELETED"
#define MSG_RELEASED	"RELEASED"
#define MSG_TOUCHED		"TOUCHED"
#define MSG_WATCHING	"WATCHING"
#define MSG_NOT_IGNORED "NOT_IGNORED"
#define MSG_KICKED		"KICKED"
#define MSG_FOUND		"FOUND"
#define MSG_NOT_FOUND	"NOT_FOUND"
#define MSG_OK			"OK"
#define MSG_PAUSED		"PAUSED"
#define MSG_TIMED_OUT	"TIMED_OUT"
#define MSG_DEADLINE_SOON "DEADLINE_SOON"
#define MSG_JOB_TOO_BIG "JOB_TOO_BIG"
#define MSG_DRAINING	"DRAINING"

/* the server's error replies, and the SQLSTATE each is reported with */
static const struct
{
	const char *reply;
	int			sqlstate;
}			error_replies[] =
{
	{"OUT_OF_MEMORY", ERRCODE_INSUFFICIENT_RESOURCES},
	{"INTERNAL_ERROR", ERRCODE_SYSTEM_ERROR},
	/* jobq's own request was malformed: a bug, not the server's trouble */
	{"BAD_FORMAT", ERRCODE_INTERNAL_ERROR},
	{"UNKNOWN_COMMAND", ERRCODE_INTERNAL_ERROR},
	{"EXPECTED_CRLF", ERRCODE_INTERNAL_ERROR},
	{MSG_JOB_TOO_BIG, ERRCODE_PROGRAM_LIMIT_EXCEEDED},
	{MSG_DRAINING, ERRCODE_CANNOT_CONNECT_NOW},
};

void
beanstalk_init_gucs(void)
{
	DefineCustomIntVariable("jobq.connect_timeout",
							"Time allowed to connect to beanstalkd.",
							NULL,
							&jobq_connect_timeout,
							2000, 1, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							jobq_check_int_setting, NULL, NULL);
	DefineCustomIntVariable("jobq.io_timeout",
							"Time allowed for beanstalkd to answer a request.",
							NULL,
							&jobq_io_timeout,
							5000, 1, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							jobq_check_int_setting, NULL, NULL);
}

/*
 * Split "host:port" (or "[v6addr]:port") and check it.  On error *detail is
 * set to a palloc'd sentence and host is left empty.
 */
void
bs_check_server(const char *server, char *host, size_t hostlen,
				char *port, size_t portlen, char **detail)
{
	const char *colon;
	const char *hstart = server;
	size_t		hlen;
	char	   *end;
	unsigned long p;

	*detail = NULL;
	host[0] = '\0';
	colon = strrchr(server, ':');
	if (colon == NULL || colon == server || colon[1] == '\0')
	{
		*detail = psprintf("Expected host:port, got \"%s\".", server);
		return;
	}
	hlen = colon - server;
	if (server[0] == '[' && colon[-1] == ']')
	{
		hstart++;
		hlen -= 2;
	}
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p == 0 || p > 65535)
	{
		*detail = psprintf("Port \"%s\" is not a number between 1 and 65535.", colon + 1);
		return;
	}
	if (hlen == 0 || hlen >= hostlen)
	{
		*detail = psprintf("Host name in \"%s\" is empty or too long.", server);
		return;
	}
	memcpy(host, hstart, hlen);
	host[hlen] = '\0';
	snprintf(port, portlen, "%lu", p);
}

/*
 * Split a jobq.servers value into its servers ("host:port", blanks around
 * the commas ignored) and check each: at most BS_MAX_SERVERS, none twice.
 * Returns the number of servers, or -1 with *detail set.
 */
int
bs_split_servers(const char *list, char names[][BS_MAX_SERVER], char **detail)
{
	int			n = 0;
	const char *p = list;

	*detail = NULL;
	for (;;)
	{
		const char *start;
		const char *end;
		char		host[BS_MAX_SERVER];
		char		port[16];

		while (*p == ' ' || *p == '\t')
			p++;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end == start)
		{
			*detail = psprintf("jobq.servers \"%s\" has an empty entry.", list);
			return -1;
		}
		if (n == BS_MAX_SERVERS)
		{
			*detail = psprintf("jobq.servers lists more than %d servers.", BS_MAX_SERVERS);
			return -1;
		}
		if (end - start >= BS_MAX_SERVER)
		{
			*detail = psprintf("A server name in jobq.servers is longer than %d bytes.",
							   BS_MAX_SERVER - 1);
			return -1;
		}
		memcpy(names[n], start, end - start);
		names[n][end - start] = '\0';
		bs_check_server(names[n], host, sizeof(host), port, sizeof(port), detail);
		if (*detail != NULL)
			return -1;
		for (int i = 0; i < n; i++)
			if (strcmp(names[i], names[n]) == 0)
			{
				*detail = psprintf("Server \"%s\" is listed twice.", names[n]);
				return -1;
			}
		n++;
		if (*p == '\0')
			return n;
		p++;					/* the comma */
	}
}

/*
 * Whether an error of a request says the server is unusable for now (down,
 * unreachable, broken, draining, out of memory), as opposed to a problem of
 * the request or of this process (a cancel): a pool tries another server.
 */
bool
bs_server_trouble(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_CONNECTION_EXCEPTION ||
		sqlerrcode == ERRCODE_CANNOT_CONNECT_NOW ||
		sqlerrcode == ERRCODE_INSUFFICIENT_RESOURCES ||
		sqlerrcode == ERRCODE_SYSTEM_ERROR;	/* INTERNAL_ERROR */
}

void
bs_init(BeanstalkConn *conn, const char *server, MemoryContext mcxt)
{
	MemoryContext old;

	memset(conn, 0, sizeof(*conn));
	conn->mcxt = mcxt;
	conn->fd = PGINVALID_SOCKET;
	conn->max_job_size = -1;
	old = MemoryContextSwitchTo(mcxt);
	conn->rcap = RBUF_INITIAL;
	conn->rbuf = palloc(conn->rcap);
	initStringInfo(&conn->wbuf);
	MemoryContextSwitchTo(old);
	bs_set_server(conn, server);
}

/* Point the connection at another server; closes any open connection. */
void
bs_set_server(BeanstalkConn *conn, const char *server)
{
	char	   *detail;

	bs_close(conn);
	strlcpy(conn->server, server, sizeof(conn->server));
	bs_check_server(server, conn->host, sizeof(conn->host),
					conn->port, sizeof(conn->port), &detail);
}

/*
 * Give back a read buffer that a big reply (or a hostile server announcing
 * one) grew, once nothing in it is left to consume.
 */
static void
bs_shrink_rbuf(BeanstalkConn *conn)
{
	if (conn->rcap <= RBUF_KEEP || conn->rstart != conn->rend)
		return;
	pfree(conn->rbuf);
	conn->rbuf = MemoryContextAlloc(conn->mcxt, RBUF_INITIAL);
	conn->rcap = RBUF_INITIAL;
	conn->rstart = conn->rend = 0;
}

void
bs_close(BeanstalkConn *conn)
{
	if (conn->wes != NULL)
	{
		FreeWaitEventSet(conn->wes);
		conn->wes = NULL;
	}
	if (conn->fd != PGINVALID_SOCKET)
	{
		closesocket(conn->fd);
		conn->fd = PGINVALID_SOCKET;
	}
	conn->in_flight = false;
	conn->reused = false;
	conn->just_sent = false;
	conn->rstart = conn->rend = 0;
	if (conn->wbuf.data != NULL)
		resetStringInfo(&conn->wbuf);
	conn->pending = 0;
	conn->touch_armed = false;
	conn->touch_rem = 0;
	strcpy(conn->used_tube, "default");
	conn->max_job_size = -1;
	bs_shrink_rbuf(conn);
}

/* Close the connection and free what bs_init allocated (not conn itself). */
void
bs_free(BeanstalkConn *conn)
{
	bs_close(conn);
	pfree(conn->rbuf);
	pfree(conn->wbuf.data);
	if (conn->touch_cmd != NULL)
		pfree(conn->touch_cmd);
	conn->rbuf = NULL;
	conn->wbuf.data = NULL;
	conn->touch_cmd = NULL;
}

bool
bs_connected(BeanstalkConn *conn)
{
	return conn->fd != PGINVALID_SOCKET;
}

/* Close the connection, then report a connection-level error. */
#define bs_fail(conn, code, ...) \
	do { \
		bs_close(conn); \
		ereport(ERROR, (errcode(code), __VA_ARGS__)); \
	} while (0)

/*
 * Wait until the socket is ready for 'event' or the deadline passes.
 * Interrupts are serviced here; if one throws, the caller's request stays
 * in flight and the connection is discarded by the next request.
 */
static void
bs_wait(BeanstalkConn *conn, uint32 event, TimestampTz deadline, const char *what)
{
	WaitEvent	ev;

	ModifyWaitEvent(conn->wes, WES_SOCKET, event, NULL);
	for (;;)
	{
		long		timeout = -1;
		int			n;

		if (deadline != 0)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= deadline)
			{
				/* a connect that times out is an unreachable server, see pool_call */
				conn->reply_timed_out = (event != WL_SOCKET_CONNECTED);
				bs_fail(conn, ERRCODE_CONNECTION_FAILURE,
						errmsg("beanstalkd at %s did not answer in time", conn->server),
						errdetail("No reply to %s within the time allowed.", what),
						errhint("Check the server, or raise jobq.io_timeout or jobq.connect_timeout."));
			}
			timeout = TimestampDifferenceMilliseconds(now, deadline);
			if (timeout == 0)
				timeout = 1;
		}
		n = WaitEventSetWait(conn->wes, timeout, &ev, 1, PG_WAIT_EXTENSION);
		if (n == 0)
			continue;			/* loop re-checks the deadline */
		if (ev.events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (ev.events & event)
			return;
	}
}

static TimestampTz
io_deadline(int extra_ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									   jobq_io_timeout + extra_ms);
}

static void
bs_connect(BeanstalkConn *conn)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int			rc;
	int			fd;
	int			on = 1;
	int			err = 0;
	socklen_t	errlen = sizeof(err);
	MemoryContext old;

	Assert(conn->fd == PGINVALID_SOCKET);
	conn->generation++;
	if (conn->host[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid beanstalkd server \"%s\"", conn->server)));

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(conn->host, conn->port, &hints, &res);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not resolve beanstalkd host \"%s\": %s",
						conn->host, gai_strerror(rc)),
				 errhint("Check jobq.servers.")));

	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
	{
		freeaddrinfo(res);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not create socket for beanstalkd at %s: %m",
						conn->server)));
	}
	conn->fd = fd;
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	rc = connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (rc < 0 && errno != EINPROGRESS)
	{
		int			save = errno;

		errno = save;
		bs_fail(conn, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
				errmsg("could not connect to beanstalkd at %s: %m", conn->server),
				errhint("Is beanstalkd running there? The server is set by jobq.servers."));
	}

	old = MemoryContextSwitchTo(conn->mcxt);
	conn->wes = CreateWaitEventSet(conn->mcxt, 3);
	MemoryContextSwitchTo(old);
	AddWaitEventToSet(conn->wes, WL_SOCKET_CONNECTED, fd, NULL, NULL);
	AddWaitEventToSet(conn->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(conn->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);

	if (rc < 0)
	{
		conn->in_flight = true;
		bs_wait(conn, WL_SOCKET_CONNECTED,
				TimestampTzPlusMilliseconds(GetCurrentTimestamp(), jobq_connect_timeout),
				"connect");
		conn->in_flight = false;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
			err = errno;
		if (err != 0)
		{
			errno = err;
			bs_fail(conn, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					errmsg("could not connect to beanstalkd at %s: %m", conn->server),
					errhint("Is beanstalkd running there? The server is set by jobq.servers."));
		}
	}
	conn->reused = false;
	strcpy(conn->used_tube, "default");
	conn->max_job_size = -1;
}

/*
 * Make sure there is a usable connection: open one if there is none, and
 * drop one that an interrupted request left in an unknown state.
 */
static void
bs_ensure(BeanstalkConn *conn)
{
	if (conn->fd != PGINVALID_SOCKET && conn->in_flight)
		bs_close(conn);
	if (conn->fd == PGINVALID_SOCKET)
		bs_connect(conn);
	else
		conn->reused = true;
}

/* Open the connection now if it is not (a caller that tracks its generation). */
void
bs_connect_now(BeanstalkConn *conn)
{
	bs_ensure(conn);
}

/* Send everything in wbuf.  Returns false if the peer has gone away. */
static bool
bs_send_all(BeanstalkConn *conn)
{
	size_t		off = 0;
	TimestampTz deadline = 0;

	conn->in_flight = true;
	while (off < conn->wbuf.len)
	{
		ssize_t		n = send(conn->fd, conn->wbuf.data + off,
							 conn->wbuf.len - off, MSG_NOSIGNAL);

		if (n > 0)
		{
			off += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			if (deadline == 0)
				deadline = io_deadline(0);
			bs_wait(conn, WL_SOCKET_WRITEABLE, deadline, "a request");
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET) && off == 0)
			return false;
		bs_fail(conn, ERRCODE_CONNECTION_FAILURE,
				errmsg("could not send to beanstalkd at %s: %m", conn->server));
	}
	resetStringInfo(&conn->wbuf);
	conn->just_sent = true;
	return true;
}

/*
 * Read more bytes into rbuf.  Returns false on EOF or reset before any byte
 * of the current reply arrived (the caller may retry on a new connection).
 */
static bool
bs_fill(BeanstalkConn *conn, TimestampTz deadline, const char *what)
{
	if (conn->rstart > 0 && conn->rstart == conn->rend)
		conn->rstart = conn->rend = 0;
	if (conn->rend == conn->rcap)
	{
		if (conn->rstart > 0)
		{
			memmove(conn->rbuf, conn->rbuf + conn->rstart, conn->rend - conn->rstart);
			conn->rend -= conn->rstart;
			conn->rstart = 0;
		}
		else
		{
			conn->rcap *= 2;
			conn->rbuf = repalloc(conn->rbuf, conn->rcap);
		}
	}
	/* right after a send, a recv would only say EAGAIN: wait first */
	if (conn->just_sent)
	{
		conn->just_sent = false;
		bs_wait(conn, WL_SOCKET_READABLE, deadline, what);
	}
	for (;;)
	{
		ssize_t		n = recv(conn->fd, conn->rbuf + conn->rend,
							 conn->rcap - conn->rend, 0);

		if (n > 0)
		{
			conn->rend += n;
			return true;
		}
		if (n == 0 || errno == ECONNRESET)
			return false;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			bs_fail(conn, ERRCODE_CONNECTION_FAILURE,
					errmsg("could not receive from beanstalkd at %s: %m", conn->server));
		bs_wait(conn, WL_SOCKET_READABLE, deadline, what);
	}
}

static void
bs_lost(BeanstalkConn *conn, const char *what)
{
	bs_fail(conn, ERRCODE_CONNECTION_FAILURE,
			errmsg("beanstalkd at %s closed the connection", conn->server),
			errdetail("The connection was lost while waiting for the reply to %s.", what),
			errhint("Is beanstalkd running there? The server is set by jobq.servers."));
}

/*
 * Read one reply line, without its CRLF.  The returned string lives in rbuf
 * until the next read.  *eof_ok tells the caller whether the connection was
 * lost before any byte of the reply arrived (it is then safe to retry).
 */
static char *
bs_read_line_ex(BeanstalkConn *conn, TimestampTz deadline, const char *what, bool *lost)
{
	size_t		scanned = 0;

	*lost = false;
	for (;;)
	{
		char	   *start = conn->rbuf + conn->rstart;
		size_t		avail = conn->rend - conn->rstart;
		char	   *nl = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;

		if (nl != NULL)
		{
			if (nl == start || nl[-1] != '\r')
				bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION,
						errmsg("beanstalkd at %s sent a malformed reply to %s", conn->server, what));
			nl[-1] = '\0';
			conn->rstart += (nl - start) + 1;
			return start;
		}
		scanned = avail;
		if (avail > 1024)
			bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION,
					errmsg("beanstalkd at %s sent an over-long reply line to %s", conn->server, what));
		if (!bs_fill(conn, deadline, what))
		{
			if (avail == 0)
			{
				*lost = true;
				return NULL;
			}
			bs_lost(conn, what);
		}
	}
}

static char *
bs_read_line(BeanstalkConn *conn, TimestampTz deadline, const char *what)
{
	bool		lost;
	char	   *line = bs_read_line_ex(conn, deadline, what, &lost);

	if (lost)
		bs_lost(conn, what);
	return line;
}

/* Read a data chunk of len bytes and its CRLF; returns a palloc'd copy. */
static char *
bs_read_data(BeanstalkConn *conn, size_t len, TimestampTz deadline, const char *what)
{
	char	   *data;

	while (conn->rend - conn->rstart < len + 2)
	{
		/* make room for the whole chunk at once */
		if (conn->rcap - conn->rstart < len + 2)
		{
			memmove(conn->rbuf, conn->rbuf + conn->rstart, conn->rend - conn->rstart);
			conn->rend -= conn->rstart;
			conn->rstart = 0;
			if (conn->rcap < len + 2)
			{
				conn->rcap = len + 2;
				conn->rbuf = repalloc(conn->rbuf, conn->rcap);
			}
		}
		if (!bs_fill(conn, deadline, what))
			bs_lost(conn, what);
	}
	if (conn->rbuf[conn->rstart + len] != '\r' || conn->rbuf[conn->rstart + len + 1] != '\n')
		bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION,
				errmsg("beanstalkd at %s sent a data chunk without CRLF in reply to %s",
					   conn->server, what));
	data = palloc(len + 1);
	memcpy(data, conn->rbuf + conn->rstart, len);
	data[len] = '\0';
	conn->rstart += len + 2;
	return data;
}

/* Parse an unsigned decimal that must end at 'end' (strictly, no sign). */
static bool
parse_u64(const char *s, const char **endp, uint64 *out)
{
	char	   *end;
	uintmax_t	v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoumax(s, &end, 10);
	if (errno != 0)
		return false;
	*out = (uint64) v;
	*endp = end;
	return true;
}

/* "WORD <n>" with nothing after n */
static bool
reply_u64(const char *line, const char *word, uint64 *out)
{
	size_t		wl = strlen(word);
	const char *end;

	if (strncmp(line, word, wl) != 0 || line[wl] != ' ')
		return false;
	return parse_u64(line + wl + 1, &end, out) && *end == '\0';
}

/* "WORD <n> <m>" with nothing after m */
static bool
reply_u64_u64(const char *line, const char *word, uint64 *a, uint64 *b)
{
	size_t		wl = strlen(word);
	const char *end;

	if (strncmp(line, word, wl) != 0 || line[wl] != ' ')
		return false;
	if (!parse_u64(line + wl + 1, &end, a) || *end != ' ')
		return false;
	return parse_u64(end + 1, &end, b) && *end == '\0';
}

/*
 * An error reply, or a reply the command does not expect: the connection's
 * state is unknown, so close it, and report with the most specific SQLSTATE.
 */
static void
pg_attribute_noreturn()
bs_unexpected(BeanstalkConn *conn, const char *what, const char *line)
{
	char	   *reply = pstrdup(line);

	for (int i = 0; i < lengthof(error_replies); i++)
	{
		if (strcmp(reply, error_replies[i].reply) == 0)
			bs_fail(conn, error_replies[i].sqlstate,
					errmsg("beanstalkd at %s refused %s: %s", conn->server, what, reply));
	}
	bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION,
			errmsg("unexpected reply from beanstalkd at %s to %s: \"%.64s\"",
				   conn->server, what, reply));
}

/*
 * Send what is queued in wbuf (one request) and read the reply line.  A
 * connection that an earlier request opened may have been closed by the
 * server meanwhile (a restart); in that case reconnect once and resend.
 * 'what' names the command for messages.
 */
static char *
bs_request(BeanstalkConn *conn, const char *what, TimestampTz deadline)
{
	char	   *line;
	bool		lost;

	for (int attempt = 0;; attempt++)
	{
		bool		retry = conn->reused && attempt == 0;

		if (bs_send_all(conn))
		{
			line = bs_read_line_ex(conn, deadline ? deadline : io_deadline(0), what, &lost);
			if (!lost)
			{
				conn->in_flight = false;
				return line;
			}
		}
		if (!retry)
			bs_lost(conn, what);

		/* reconnect, restore the tube in use, resend the same request */
		{
			StringInfoData saved;
			char		tube[BS_MAX_NAME + 1];

			initStringInfo(&saved);
			appendBinaryStringInfo(&saved, conn->wbuf.data, conn->wbuf.len);
			strlcpy(tube, conn->used_tube, sizeof(tube));
			bs_close(conn);
			bs_connect(conn);
			if (strcmp(tube, "default") != 0)
				bs_use(conn, tube);
			appendBinaryStringInfo(&conn->wbuf, saved.data, saved.len);
			pfree(saved.data);
		}
	}
}

/* Begin a request: ensure a connection and an empty write buffer. */
static void
bs_begin(BeanstalkConn *conn)
{
	bs_shrink_rbuf(conn);
	bs_ensure(conn);
	if (conn->pending != 0)
		elog(ERROR, "jobq: beanstalkd request started with %d replies pending",
			 (int) conn->pending);
	resetStringInfo(&conn->wbuf);
}

/* Tube names: 1-200 bytes of A-Za-z0-9-+/;.$_(), not starting with '-' */
bool
bs_tube_name_ok(const char *tube)
{
	size_t		len = strlen(tube);

	if (len == 0 || len > BS_MAX_NAME || tube[0] == '-')
		return false;
	return strspn(tube, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				  "0123456789-+/;.$_()") == len;
}

void
bs_use(BeanstalkConn *conn, const char *tube)
{
	char	   *line;

	Assert(bs_tube_name_ok(tube));
	bs_ensure(conn);
	if (strcmp(conn->used_tube, tube) == 0)
		return;
	bs_begin(conn);
	appendStringInfo(&conn->wbuf, CMD_USE " %s\r\n", tube);
	line = bs_request(conn, CMD_USE, 0);
	if (strncmp(line, MSG_USING " ", 6) != 0 || strcmp(line + 6, tube) != 0)
		bs_unexpected(conn, CMD_USE, line);
	strlcpy(conn->used_tube, tube, sizeof(conn->used_tube));
}

/* The server's max-job-size, read once per connection from "stats". */
int64
bs_max_job_size(BeanstalkConn *conn)
{
	bs_ensure(conn);
	if (conn->max_job_size < 0)
	{
		size_t		len;
		char	   *yaml = bs_stats_server(conn, &len);
		char	   *v = yaml ? bs_yaml_get(yaml, "max-job-size") : NULL;
		uint64		n;
		const char *end;

		if (v == NULL || !parse_u64(v, &end, &n) || *end != '\0')
			bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION,
					errmsg("beanstalkd at %s did not report max-job-size", conn->server));
		conn->max_job_size = (int64) n;
		pfree(yaml);
	}
	return conn->max_job_size;
}

static void
append_put(StringInfo buf, uint64 pri, uint64 delay, uint64 ttr,
		   const char *body, size_t len)
{
	appendStringInfo(buf, CMD_PUT " " UINT64_FORMAT " " UINT64_FORMAT " " UINT64_FORMAT " %zu\r\n",
					 pri, delay, ttr, len);
	appendBinaryStringInfo(buf, body, len);
	appendBinaryStringInfo(buf, "\r\n", 2);
}

static BsStatus
parse_put_reply(BeanstalkConn *conn, const char *line, uint64 *id)
{
	if (reply_u64(line, MSG_INSERTED, id))
		return BS_OK;
	if (reply_u64(line, MSG_BURIED, id))
		return BS_BURIED;
	if (strcmp(line, MSG_JOB_TOO_BIG) == 0)
		return BS_JOB_TOO_BIG;
	if (strcmp(line, MSG_DRAINING) == 0)
		return BS_DRAINING;
	bs_unexpected(conn, CMD_PUT, line);
}

/* put into the tube in use; returns the new job's id */
uint64
bs_put(BeanstalkConn *conn, uint64 pri, uint64 delay, uint64 ttr,
	   const char *body, size_t len)
{
	uint64		id = 0;
	char	   *line;

	bs_begin(conn);
	append_put(&conn->wbuf, pri, delay, ttr, body, len);
	line = bs_request(conn, CMD_PUT, 0);
	switch (parse_put_reply(conn, line, &id))
	{
		case BS_OK:
			return id;
		case BS_BURIED:
			/* not a server to fail over from: the job is in it, buried */
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("beanstalkd at %s is out of memory and buried job " UINT64_FORMAT,
							conn->server, id)));
			break;
		case BS_JOB_TOO_BIG:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("job body of %zu bytes is too big for beanstalkd at %s", len, conn->server),
					 errhint("Raise beanstalkd's -z limit or send smaller kwargs.")));
			break;
		case BS_DRAINING:
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("beanstalkd at %s is draining and accepts no new jobs", conn->server)));
			break;
		default:
			break;
	}
	pg_unreachable();
}

/*
 * Pipelining: bs_queue_* append requests to wbuf, bs_flush sends them in one
 * write, and bs_read_*_reply consume the replies in order.
 */
void
bs_pipeline_begin(BeanstalkConn *conn)
{
	bs_begin(conn);
}

/* whether anything was queued since bs_pipeline_begin */
bool
bs_pipeline_pending(BeanstalkConn *conn)
{
	return conn->wbuf.len > 0;
}

void
bs_queue_use(BeanstalkConn *conn, const char *tube)
{
	appendStringInfo(&conn->wbuf, CMD_USE " %s\r\n", tube);
	strlcpy(conn->used_tube, tube, sizeof(conn->used_tube));
	conn->pending++;
}

void
bs_queue_put(BeanstalkConn *conn, uint64 pri, uint64 delay, uint64 ttr,
			 const char *body, size_t len)
{
	append_put(&conn->wbuf, pri, delay, ttr, body, len);
	conn->pending++;
}

void
bs_flush(BeanstalkConn *conn)
{
	if (!bs_send_all(conn))
		bs_lost(conn, "pipelined requests");
}

/*
 * The first line of the next pipelined reply.  Until bs_reply_done says the
 * whole reply was consumed, the connection stays in flight: an error while
 * reading the rest of it (a job's body, a stats document) drops it.
 */
static char *
bs_read_pending(BeanstalkConn *conn, const char *what)
{
	char	   *line;

	if (conn->pending <= 0)
		elog(ERROR, "jobq: no beanstalkd reply pending");
	line = bs_read_line(conn, io_deadline(0), what);
	conn->pending--;
	return line;
}

/* A pipelined reply was read whole: idle again once none is pending. */
static void
bs_reply_done(BeanstalkConn *conn)
{
	if (conn->pending == 0 && conn->rstart == conn->rend)
		conn->in_flight = false;
}

void
bs_read_use_reply(BeanstalkConn *conn)
{
	char	   *line = bs_read_pending(conn, CMD_USE);

	if (strncmp(line, MSG_USING " ", 6) != 0)
		bs_unexpected(conn, CMD_USE, line);
	bs_reply_done(conn);
}

BsStatus
bs_read_put_reply(BeanstalkConn *conn, uint64 *id)
{
	BsStatus	st = parse_put_reply(conn, bs_read_pending(conn, CMD_PUT), id);

	bs_reply_done(conn);
	return st;
}

/*
 * Consume the replies to touches that a signal handler sent (see
 * bs_send_raw_touch).  TOUCHED and NOT_FOUND are both fine: the job may
 * have been released by the server meanwhile.
 */
void
bs_drain_pending(BeanstalkConn *conn)
{
	Assert(!conn->touch_armed);
	if (conn->touch_rem > 0 && conn->fd != PGINVALID_SOCKET)
	{
		resetStringInfo(&conn->wbuf);
		appendBinaryStringInfo(&conn->wbuf, conn->touch_cmd + conn->touch_size - conn->touch_rem,
							   conn->touch_rem);
		conn->touch_rem = 0;
		if (!bs_send_all(conn))
			bs_lost(conn, CMD_TOUCH);
	}
	while (conn->pending > 0)
	{
		char	   *line = bs_read_pending(conn, CMD_TOUCH);

		if (strcmp(line, MSG_TOUCHED) != 0 && strcmp(line, MSG_NOT_FOUND) != 0)
			bs_unexpected(conn, CMD_TOUCH, line);
		bs_reply_done(conn);
	}
}

/* watch / ignore: return the number of tubes now watched */
static int
watch_or_ignore(BeanstalkConn *conn, const char *cmd, const char *tube)
{
	char	   *line;
	uint64		n;

	bs_begin(conn);
	appendStringInfo(&conn->wbuf, "%s %s\r\n", cmd, tube);
	line = bs_request(conn, cmd, 0);
	if (strcmp(line, MSG_NOT_IGNORED) == 0)
		return -1;
	if (!reply_u64(line, MSG_WATCHING, &n))
		bs_unexpected(conn, cmd, line);
	return (int) n;
}

int
bs_watch(BeanstalkConn *conn, const char *tube)
{
	return watch_or_ignore(conn, CMD_WATCH, tube);
}

/* returns -1 if the tube is the last one watched (NOT_IGNORED) */
int
bs_ignore(BeanstalkConn *conn, const char *tube)
{
	return watch_or_ignore(conn, CMD_IGNORE, tube);
}

/* Read the "<id> <bytes>\r\n<data>\r\n" part of RESERVED and FOUND. */
static bool
read_job_reply(BeanstalkConn *conn, const char *line, const char *word,
			   TimestampTz deadline, const char *what, BsJob *job)
{
	uint64		id;
	uint64		bytes;

	if (!reply_u64_u64(line, word, &id, &bytes))
		return false;
	if (bytes > (uint64) MaxAllocSize - 3)
		bs_fail(conn, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
				errmsg("job " UINT64_FORMAT " from beanstalkd at %s is too large (" UINT64_FORMAT " bytes)",
					   id, conn->server, bytes));
	job->id = id;
	job->len = bytes;
	job->body = bs_read_data(conn, bytes, deadline, what);
	return true;
}

/*
 * TIMED_OUT, DEADLINE_SOON, or RESERVED and the job's body, read here; the
 * connection stays in flight for the caller to settle.
 */
static BsStatus
parse_reserve_reply(BeanstalkConn *conn, const char *line, TimestampTz deadline, BsJob *job)
{
	if (strcmp(line, MSG_TIMED_OUT) == 0)
		return BS_TIMED_OUT;
	if (strcmp(line, MSG_DEADLINE_SOON) == 0)
		return BS_DEADLINE_SOON;
	conn->in_flight = true;
	if (!read_job_reply(conn, line, MSG_RESERVED, deadline, CMD_RESERVE, job))
		bs_unexpected(conn, CMD_RESERVE, line);
	return BS_OK;
}

BsStatus
bs_reserve(BeanstalkConn *conn, int timeout_s, BsJob *job)
{
	char	   *line;
	TimestampTz deadline = io_deadline(timeout_s * 1000);

	BsStatus	st;

	bs_begin(conn);
	appendStringInfo(&conn->wbuf, CMD_RESERVE " %d\r\n", timeout_s);
	line = bs_request(conn, CMD_RESERVE, deadline);
	st = parse_reserve_reply(conn, line, deadline, job);
	conn->in_flight = false;
	return st;
}

/*
 * Wait until one of the connections in 'mask' (indexes into conns, each
 * with a request sent) has its reply, or bytes of it, to read; returns its
 * index, or -1 once the deadline passes (a deadline already past: only a
 * reply that is there).  Interrupts are serviced.
 */
int
bs_wait_any(BeanstalkConn **conns, int n, uint32 mask, TimestampTz deadline)
{
	WaitEventSet *volatile wes = NULL;
	volatile int ready = -1;

	for (int i = 0; i < n; i++)
		if ((mask & (1U << i)) && conns[i]->rstart < conns[i]->rend)
			return i;
	PG_TRY();
	{
		wes = CreateWaitEventSet(CurrentMemoryContext, n + 2);
		AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < n; i++)
			if (mask & (1U << i))
				AddWaitEventToSet(wes, WL_SOCKET_READABLE, conns[i]->fd, NULL,
								  (void *) (intptr_t) i);
		while (ready < 0)
		{
			WaitEvent	ev;
			TimestampTz now = GetCurrentTimestamp();
			long		timeout = 0;	/* past the deadline: only what is there */

			if (now < deadline)
				timeout = Max(TimestampDifferenceMilliseconds(now, deadline), 1);
			if (WaitEventSetWait(wes, timeout, &ev, 1, PG_WAIT_EXTENSION) == 0)
			{
				if (timeout == 0)
					break;
				continue;
			}
			if (ev.events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
				continue;
			}
			if (ev.events & WL_SOCKET_READABLE)
			{
				ready = (int) (intptr_t) ev.user_data;
				conns[ready]->just_sent = false;	/* its reply is there to recv */
			}
		}
	}
	PG_CATCH();
	{
		if (wes != NULL)
			FreeWaitEventSet(wes);
		PG_RE_THROW();
	}
	PG_END_TRY();
	FreeWaitEventSet(wes);
	return ready;
}

/*
 * Pipelined reserves: "reserve-with-timeout 0" answers at once, with a job
 * or TIMED_OUT (DEADLINE_SOON if a job this connection holds is about to
 * run out of time and none is ready).
 */
void
bs_queue_reserve(BeanstalkConn *conn, int timeout_s)
{
	appendStringInfo(&conn->wbuf, CMD_RESERVE " %d\r\n", timeout_s);
	conn->pending++;
}

BsStatus
bs_read_reserve_reply(BeanstalkConn *conn, BsJob *job)
{
	BsStatus	st;

	st = parse_reserve_reply(conn, bs_read_pending(conn, CMD_RESERVE), io_deadline(0), job);
	bs_reply_done(conn);
	return st;
}

/* "<cmd> <id>[ <a> <b>]" into wbuf */
static void
append_id_command(BeanstalkConn *conn, const char *cmd, const char *fmt_args,
				  uint64 id, uint64 a, uint64 b)
{
	appendStringInfo(&conn->wbuf, "%s " UINT64_FORMAT, cmd, id);
	if (fmt_args != NULL)
		appendStringInfo(&conn->wbuf, fmt_args, a, b);
	appendBinaryStringInfo(&conn->wbuf, "\r\n", 2);
}

/* The reply to delete, release, bury, kick-job, touch: 'ok' or NOT_FOUND. */
static BsStatus
parse_id_reply(BeanstalkConn *conn, const char *cmd, const char *ok, const char *line)
{
	if (strcmp(line, ok) == 0)
		return BS_OK;
	if (strcmp(line, MSG_NOT_FOUND) == 0)
		return BS_NOT_FOUND;
	if (strcmp(line, MSG_BURIED) == 0 && strcmp(cmd, CMD_RELEASE) == 0)
		return BS_BURIED;
	bs_unexpected(conn, cmd, line);
}

/* A command "<cmd> <id>[ args]" whose answers are 'ok' or NOT_FOUND. */
static BsStatus
id_command(BeanstalkConn *conn, const char *cmd, const char *ok, const char *fmt_args,
		   uint64 id, uint64 a, uint64 b)
{
	bs_begin(conn);
	append_id_command(conn, cmd, fmt_args, id, a, b);
	return parse_id_reply(conn, cmd, ok, bs_request(conn, cmd, 0));
}


bool
bs_delete(BeanstalkConn *conn, uint64 id)
{
	return id_command(conn, CMD_DELETE, MSG_DELETED, NULL, id, 0, 0) == BS_OK;
}

/*
 * Pipelined delete, release and bury (a batch's outcomes in one write):
 * queue them, bs_flush, then read each reply in order with
 * bs_read_settle_reply, naming the command that was queued.
 */
void
bs_queue_delete(BeanstalkConn *conn, uint64 id)
{
	append_id_command(conn, CMD_DELETE, NULL, id, 0, 0);
	conn->pending++;
}

void
bs_queue_release(BeanstalkConn *conn, uint64 id, uint64 pri, uint64 delay)
{
	append_id_command(conn, CMD_RELEASE, " " UINT64_FORMAT " " UINT64_FORMAT, id, pri, delay);
	conn->pending++;
}

void
bs_queue_bury(BeanstalkConn *conn, uint64 id, uint64 pri)
{
	append_id_command(conn, CMD_BURY, " " UINT64_FORMAT, id, pri, 0);
	conn->pending++;
}

BsStatus
bs_read_settle_reply(BeanstalkConn *conn, BsSettle what)
{
	static const char *const cmds[] = {CMD_DELETE, CMD_RELEASE, CMD_BURY};
	static const char *const oks[] = {MSG_DELETED, MSG_RELEASED, MSG_BURIED};
	BsStatus	st;

	st = parse_id_reply(conn, cmds[what], oks[what], bs_read_pending(conn, cmds[what]));
	bs_reply_done(conn);
	return st;
}

bool
bs_kick_job(BeanstalkConn *conn, uint64 id)
{
	return id_command(conn, CMD_KICK_JOB, MSG_KICKED, NULL, id, 0, 0) == BS_OK;
}

/* kick up to 'bound' jobs in the tube in use; returns how many were kicked */
uint64
bs_kick(BeanstalkConn *conn, uint64 bound)
{
	char	   *line;
	uint64		n;

	bs_begin(conn);
	appendStringInfo(&conn->wbuf, CMD_KICK " " UINT64_FORMAT "\r\n", bound);
	line = bs_request(conn, CMD_KICK, 0);
	if (!reply_u64(line, MSG_KICKED, &n))
		bs_unexpected(conn, CMD_KICK, line);
	return n;
}

/* cmd is a full command line without CRLF: "peek 5", "peek-ready", ... */
static bool
peek_request(BeanstalkConn *conn, const char *cmd, BsJob *job)
{
	char	   *line;
	TimestampTz deadline = io_deadline(0);

	bs_begin(conn);
	appendStringInfo(&conn->wbuf, "%s\r\n", cmd);
	line = bs_request(conn, CMD_PEEK, deadline);
	if (strcmp(line, MSG_NOT_FOUND) == 0)
		return false;
	conn->in_flight = true;
	if (!read_job_reply(conn, line, MSG_FOUND, deadline, CMD_PEEK, job))
		bs_unexpected(conn, CMD_PEEK, line);
	conn->in_flight = false;
	return true;
}

/* peek: the job with this id, whatever its tube; false if there is none */
bool
bs_peek_job(BeanstalkConn *conn, uint64 id, BsJob *job)
{
	return peek_request(conn, psprintf(CMD_PEEK " " UINT64_FORMAT, id), job);
}

/* peek-ready/-delayed/-buried: the next such job of the tube in use */
bool
bs_peek_state(BeanstalkConn *conn, BsPeekState state, BsJob *job)
{
	static const char *const cmds[] = {
		[BS_PEEK_READY] = CMD_PEEK_READY,
		[BS_PEEK_DELAYED] = CMD_PEEK_DELAYED,
		[BS_PEEK_BURIED] = CMD_PEEK_BURIED,
	};

	return peek_request(conn, cmds[state], job);
}

/*
 * cmd is a full command line without CRLF ("stats", "stats-tube x",
 * "stats-job 5", "list-tubes").  Returns the YAML, or NULL on NOT_FOUND.
 */
/* The YAML after "OK <bytes>", or NULL on NOT_FOUND; the connection stays in flight. */
static char *
read_yaml_reply(BeanstalkConn *conn, const char *line, TimestampTz deadline, size_t *len)
{
	uint64		bytes;
	char	   *data;

	if (strcmp(line, MSG_NOT_FOUND) == 0)
		return NULL;
	if (!reply_u64(line, MSG_OK, &bytes) || bytes > (uint64) MaxAllocSize - 3)
		bs_unexpected(conn, CMD_STATS, line);
	conn->in_flight = true;
	data = bs_read_data(conn, bytes, deadline, CMD_STATS);
	*len = bytes;
	return data;
}

static char *
yaml_request(BeanstalkConn *conn, const char *cmd, size_t *len)
{
	char	   *data;
	TimestampTz deadline = io_deadline(0);

	bs_begin(conn);
	appendStringInfo(&conn->wbuf, "%s\r\n", cmd);
	data = read_yaml_reply(conn, bs_request(conn, CMD_STATS, deadline), deadline, len);
	conn->in_flight = false;
	return data;
}

char *
bs_stats_server(BeanstalkConn *conn, size_t *len)
{
	return yaml_request(conn, CMD_STATS, len);
}

char *
bs_stats_tube(BeanstalkConn *conn, const char *tube, size_t *len)
{
	Assert(bs_tube_name_ok(tube));
	return yaml_request(conn, psprintf(CMD_STATS_TUBE " %s", tube), len);
}

char *
bs_stats_job(BeanstalkConn *conn, uint64 id, size_t *len)
{
	return yaml_request(conn, psprintf(CMD_STATS_JOB " " UINT64_FORMAT, id), len);
}

/* pipelined stats-job: the YAML, or NULL if the job is gone */
void
bs_queue_stats_job(BeanstalkConn *conn, uint64 id)
{
	appendStringInfo(&conn->wbuf, CMD_STATS_JOB " " UINT64_FORMAT "\r\n", id);
	conn->pending++;
}

char *
bs_read_stats_job_reply(BeanstalkConn *conn, size_t *len)
{
	char	   *data;

	data = read_yaml_reply(conn, bs_read_pending(conn, CMD_STATS_JOB), io_deadline(0), len);
	bs_reply_done(conn);
	return data;
}

char *
bs_list_tubes(BeanstalkConn *conn, size_t *len)
{
	return yaml_request(conn, CMD_LIST_TUBES, len);
}

bool
bs_pause_tube(BeanstalkConn *conn, const char *tube, uint64 delay)
{
	char	   *line;

	bs_begin(conn);
	appendStringInfo(&conn->wbuf, CMD_PAUSE_TUBE " %s " UINT64_FORMAT "\r\n", tube, delay);
	line = bs_request(conn, CMD_PAUSE_TUBE, 0);
	if (strcmp(line, MSG_PAUSED) == 0)
		return true;
	if (strcmp(line, MSG_NOT_FOUND) == 0)
		return false;
	bs_unexpected(conn, CMD_PAUSE_TUBE, line);
}

/*
 * Touching reserved jobs while handlers run: bs_touch_arm prepares one
 * "touch <id>" per job of a batch, and a timer's signal handler calls
 * bs_send_raw_touch, which only uses send(2).  The replies are consumed by
 * the main code through conn->pending once the timer is off
 * (bs_drain_pending).  A send that writes part of the commands (a full
 * socket buffer) leaves the rest in touch_rem: later ticks finish those
 * before starting again, and bs_drain_pending sends what is still left
 * before it reads a reply, so the server never sees a torn command followed
 * by another one.
 */
void
bs_touch_arm(BeanstalkConn *conn, const uint64 *ids, int n)
{
	StringInfoData cmds;

	Assert(conn->touch_rem == 0 && !conn->touch_armed);
	initStringInfo(&cmds);
	for (int i = 0; i < n; i++)
		appendStringInfo(&cmds, CMD_TOUCH " " UINT64_FORMAT "\r\n", ids[i]);
	if (conn->touch_cmd != NULL)
		pfree(conn->touch_cmd);
	conn->touch_cmd = MemoryContextStrdup(conn->mcxt, cmds.data);
	conn->touch_size = cmds.len;
	conn->touch_n = n;
	pfree(cmds.data);
	conn->touch_armed = n > 0;
}

/* no more touches; commands partly sent are completed by bs_drain_pending */
void
bs_touch_disarm(BeanstalkConn *conn)
{
	conn->touch_armed = false;
}

/* the same touches again, after bs_drain_pending */
void
bs_touch_rearm(BeanstalkConn *conn)
{
	Assert(conn->touch_rem == 0);
	conn->touch_armed = conn->touch_n > 0 && conn->touch_cmd != NULL;
}

void
bs_send_raw_touch(BeanstalkConn *conn)
{
	int			save_errno = errno;
	ssize_t		n;

	if (conn->fd == PGINVALID_SOCKET || !conn->touch_armed)
		return;
	if (conn->touch_rem > 0)
	{
		n = send(conn->fd, conn->touch_cmd + conn->touch_size - conn->touch_rem, conn->touch_rem,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			conn->touch_rem -= n;
	}
	else
	{
		n = send(conn->fd, conn->touch_cmd, conn->touch_size, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
		{
			conn->pending += conn->touch_n;
			conn->touch_rem = conn->touch_size - n;
		}
	}
	errno = save_errno;
}

/*
 * The value of "key" in a stats YAML document ("---\nkey: value\n..."), as a
 * palloc'd string, or NULL.
 */
char *
bs_yaml_get(const char *yaml, const char *key)
{
	size_t		kl = strlen(key);
	const char *p = yaml;

	while (p != NULL && *p != '\0')
	{
		if (strncmp(p, key, kl) == 0 && p[kl] == ':' && p[kl + 1] == ' ')
		{
			const char *v = p + kl + 2;
			const char *e = strchr(v, '\n');

			return pnstrdup(v, e ? e - v : strlen(v));
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

/*
 * bs_conn.c
 *		Connections to beanstalkd: the socket, waiting the PostgreSQL way,
 *		sending, reading reply lines and data chunks, and what went wrong.
 *
 * One BeanstalkConn is one TCP connection to one server.  Requests are
 * written with a single send() (command line and body together) on a socket
 * with TCP_NODELAY; replies are read into a buffer.  Waiting is done on a
 * WaitEventSet that also holds the process latch, so an interrupt (cancel,
 * statement_timeout, SIGTERM) ends the wait through CHECK_FOR_INTERRUPTS.
 * Such an error leaves in_flight set, and the next request closes the
 * connection and opens a fresh one rather than trying to resynchronise with
 * replies it no longer expects.  Every other failure is a value (BS_LOST,
 * with the reason in conn->error; see beanstalk.h); the protocol, commands
 * and replies, is beanstalk.c's.
 */
#include "postgres.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "bs_conn.h"
#include "jobq.h"
#include "settings.h"

int			jobq_connect_timeout = 2000;
int			jobq_io_timeout = 5000;

/* positions in a connection's WaitEventSet */
#define WES_SOCKET	0

#define RBUF_INITIAL	8192
#define RBUF_KEEP		(64 * 1024)	/* a bigger read buffer is given back when empty */

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
void
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
	conn->rbuf = NULL;
	conn->wbuf.data = NULL;
}

bool
bs_connected(BeanstalkConn *conn)
{
	return conn->fd != PGINVALID_SOCKET;
}

/* what went wrong, kept in the connection for bs_report */
static void
pg_attribute_printf(5, 0)
bs_keep_error(BeanstalkConn *conn, int sqlerrcode, const char *detail, const char *hint,
			  const char *fmt, va_list ap)
{
	conn->error.sqlerrcode = sqlerrcode;
	conn->error.reply_timed_out = false;
	vsnprintf(conn->error.message, sizeof(conn->error.message), fmt, ap);
	strlcpy(conn->error.detail, detail ? detail : "", sizeof(conn->error.detail));
	strlcpy(conn->error.hint, hint ? hint : "", sizeof(conn->error.hint));
}

/*
 * A request failed at the connection level: remember why (the caller
 * reports it, see bs_report), close the connection, and return BS_LOST.
 */
BsStatus
pg_attribute_printf(5, 6)
bs_fail(BeanstalkConn *conn, int sqlerrcode, const char *detail, const char *hint,
		const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	bs_keep_error(conn, sqlerrcode, detail, hint, fmt, ap);
	va_end(ap);
	bs_close(conn);
	return BS_LOST;
}

/*
 * A typed answer that is the caller's to judge (DRAINING, JOB_TOO_BIG):
 * keep what it means, as bs_fail does, but leave the connection open.
 */
BsStatus
pg_attribute_printf(4, 5)
bs_note(BeanstalkConn *conn, BsStatus st, int sqlerrcode, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	bs_keep_error(conn, sqlerrcode, NULL, NULL, fmt, ap);
	va_end(ap);
	return st;
}

/* The error of the request that failed on conn, as the caller's ERROR. */
void
bs_report(BeanstalkConn *conn)
{
	ereport(ERROR,
			(errcode(conn->error.sqlerrcode ? conn->error.sqlerrcode : ERRCODE_CONNECTION_FAILURE),
			 errmsg_internal("%s", conn->error.message[0] ? conn->error.message
							 : "beanstalkd request failed"),
			 conn->error.detail[0] ? errdetail_internal("%s", conn->error.detail) : 0,
			 conn->error.hint[0] ? errhint("%s", conn->error.hint) : 0));
	pg_unreachable();
}

/*
 * Whether a status says the server is unusable for now (down, unreachable,
 * broken, draining, out of memory), as opposed to an answer about the
 * request: a pool tries another server.
 */
bool
bs_status_trouble(BsStatus st)
{
	return st == BS_LOST || st == BS_DRAINING || st == BS_OUT_OF_MEMORY ||
		st == BS_INTERNAL_ERROR;
}

/*
 * A latch set while a wait here ran is reset to service interrupts, but it
 * may also be a wake-up for the process's main loop (the relay's: a commit
 * put jobs in the outbox).  It is set again once the wait returns, so that
 * the main loop's own wait sees it.
 */
static bool latch_owed = false;

static void
latch_repay(void)
{
	if (latch_owed)
	{
		latch_owed = false;
		SetLatch(MyLatch);
	}
}

static BsStatus bs_wait_socket(BeanstalkConn *conn, uint32 event, TimestampTz deadline,
							   const char *what);

/*
 * Wait until the socket is ready for 'event' or the deadline passes.
 * Interrupts are serviced here; if one throws, the caller's request stays
 * in flight and the connection is discarded by the next request.
 */
static BsStatus
bs_wait(BeanstalkConn *conn, uint32 event, TimestampTz deadline, const char *what)
{
	BsStatus	st = bs_wait_socket(conn, event, deadline, what);

	latch_repay();
	return st;
}

static BsStatus
bs_wait_socket(BeanstalkConn *conn, uint32 event, TimestampTz deadline, const char *what)
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
				bool		reply = (event != WL_SOCKET_CONNECTED);
				BsStatus	st = bs_fail(conn, ERRCODE_CONNECTION_FAILURE,
										 psprintf("No reply to %s within the time allowed.", what),
										 "Check the server, or raise jobq.io_timeout or jobq.connect_timeout.",
										 "beanstalkd at %s did not answer in time", conn->server);

				conn->error.reply_timed_out = reply;
				return st;
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
			latch_owed = true;
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (ev.events & event)
			return BS_OK;
	}
}

TimestampTz
io_deadline(int extra_ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									   jobq_io_timeout + extra_ms);
}

#define CONNECT_HINT "Is beanstalkd running there? The server is set by jobq.servers."

BsStatus
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
		return bs_fail(conn, ERRCODE_INVALID_PARAMETER_VALUE, NULL, NULL,
					   "invalid beanstalkd server \"%s\"", conn->server);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(conn->host, conn->port, &hints, &res);
	if (rc != 0)
		return bs_fail(conn, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, NULL,
					   "Check jobq.servers.", "could not resolve beanstalkd host \"%s\": %s",
					   conn->host, gai_strerror(rc));

	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
	{
		freeaddrinfo(res);
		return bs_fail(conn, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, NULL, NULL,
					   "could not create socket for beanstalkd at %s: %m", conn->server);
	}
	conn->fd = fd;
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	rc = connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (rc < 0 && errno != EINPROGRESS)
		return bs_fail(conn, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, NULL,
					   CONNECT_HINT, "could not connect to beanstalkd at %s: %m", conn->server);

	old = MemoryContextSwitchTo(conn->mcxt);
	conn->wes = CreateWaitEventSet(conn->mcxt, 3);
	MemoryContextSwitchTo(old);
	AddWaitEventToSet(conn->wes, WL_SOCKET_CONNECTED, fd, NULL, NULL);
	AddWaitEventToSet(conn->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(conn->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);

	if (rc < 0)
	{
		BsStatus	st;

		conn->in_flight = true;
		st = bs_wait(conn, WL_SOCKET_CONNECTED,
					 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), jobq_connect_timeout),
					 "connect");
		if (st != BS_OK)
			return st;
		conn->in_flight = false;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
			err = errno;
		if (err != 0)
		{
			errno = err;
			return bs_fail(conn, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, NULL,
						   CONNECT_HINT, "could not connect to beanstalkd at %s: %m", conn->server);
		}
	}
	conn->reused = false;
	strcpy(conn->used_tube, "default");
	conn->max_job_size = -1;
	return BS_OK;
}

/*
 * Make sure there is a usable connection: open one if there is none, and
 * drop one that an interrupted request left in an unknown state.
 */
BsStatus
bs_ensure(BeanstalkConn *conn)
{
	if (conn->fd != PGINVALID_SOCKET && conn->in_flight)
		bs_close(conn);
	if (conn->fd == PGINVALID_SOCKET)
		return bs_connect(conn);
	conn->reused = true;
	return BS_OK;
}

/* Open the connection now if it is not (a caller that tracks its generation). */
BsStatus
bs_connect_now(BeanstalkConn *conn)
{
	return bs_ensure(conn);
}

/*
 * Send what of data[0..len) the socket takes now, without waiting: the
 * bytes sent, or -1.  Safe in a signal handler (it only calls send(2) and
 * keeps errno); the caller counts the replies it owes in conn->pending.
 */
ssize_t
bs_send_nowait(BeanstalkConn *conn, const char *data, size_t len)
{
	int			save_errno = errno;
	ssize_t		n;

	if (conn->fd == PGINVALID_SOCKET)
		return -1;
	n = send(conn->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	errno = save_errno;
	return n;
}

/*
 * Send everything in wbuf.  *gone says that the peer had gone away before
 * a byte went (the caller may retry on a new connection); the status is
 * then BS_LOST too.
 */
BsStatus
bs_send_all(BeanstalkConn *conn, bool *gone)
{
	size_t		off = 0;
	TimestampTz deadline = 0;

	*gone = false;
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
			BsStatus	st;

			if (deadline == 0)
				deadline = io_deadline(0);
			if ((st = bs_wait(conn, WL_SOCKET_WRITEABLE, deadline, "a request")) != BS_OK)
				return st;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET) && off == 0)
		{
			*gone = true;
			return BS_LOST;
		}
		return bs_fail(conn, ERRCODE_CONNECTION_FAILURE, NULL, NULL,
					   "could not send to beanstalkd at %s: %m", conn->server);
	}
	resetStringInfo(&conn->wbuf);
	conn->just_sent = true;
	return BS_OK;
}

/*
 * Read more bytes into rbuf.  *eof says that the connection ended (EOF or
 * reset) before anything more came; the status is still BS_OK then, and
 * the caller decides (an empty reply may be retried on a new connection).
 */
static BsStatus
bs_fill(BeanstalkConn *conn, TimestampTz deadline, const char *what, bool *eof)
{
	*eof = false;
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
		BsStatus	st;

		conn->just_sent = false;
		if ((st = bs_wait(conn, WL_SOCKET_READABLE, deadline, what)) != BS_OK)
			return st;
	}
	for (;;)
	{
		ssize_t		n = recv(conn->fd, conn->rbuf + conn->rend,
							 conn->rcap - conn->rend, 0);
		BsStatus	st;

		if (n > 0)
		{
			conn->rend += n;
			return BS_OK;
		}
		if (n == 0 || errno == ECONNRESET)
		{
			*eof = true;
			return BS_OK;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return bs_fail(conn, ERRCODE_CONNECTION_FAILURE, NULL, NULL,
						   "could not receive from beanstalkd at %s: %m", conn->server);
		if ((st = bs_wait(conn, WL_SOCKET_READABLE, deadline, what)) != BS_OK)
			return st;
	}
}

BsStatus
bs_lost(BeanstalkConn *conn, const char *what)
{
	return bs_fail(conn, ERRCODE_CONNECTION_FAILURE,
				   psprintf("The connection was lost while waiting for the reply to %s.", what),
				   CONNECT_HINT, "beanstalkd at %s closed the connection", conn->server);
}

/*
 * Read one reply line, without its CRLF, into *line (it lives in rbuf until
 * the next read).  *empty says that the connection was lost before any
 * byte of the reply arrived (it is then safe to retry); the status is then
 * BS_OK and *line NULL.
 */
BsStatus
bs_read_line_ex(BeanstalkConn *conn, TimestampTz deadline, const char *what,
				bool *empty, char **line)
{
	size_t		scanned = 0;

	*empty = false;
	*line = NULL;
	for (;;)
	{
		char	   *start = conn->rbuf + conn->rstart;
		size_t		avail = conn->rend - conn->rstart;
		char	   *nl = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;
		bool		eof;
		BsStatus	st;

		if (nl != NULL)
		{
			if (nl == start || nl[-1] != '\r')
				return bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION, NULL, NULL,
							   "beanstalkd at %s sent a malformed reply to %s", conn->server, what);
			nl[-1] = '\0';
			conn->rstart += (nl - start) + 1;
			*line = start;
			return BS_OK;
		}
		scanned = avail;
		if (avail > 1024)
			return bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION, NULL, NULL,
						   "beanstalkd at %s sent an over-long reply line to %s", conn->server, what);
		if ((st = bs_fill(conn, deadline, what, &eof)) != BS_OK)
			return st;
		if (eof)
		{
			if (avail == 0)
			{
				*empty = true;
				return BS_OK;
			}
			return bs_lost(conn, what);
		}
	}
}

BsStatus
bs_read_line(BeanstalkConn *conn, TimestampTz deadline, const char *what, char **line)
{
	bool		empty;
	BsStatus	st = bs_read_line_ex(conn, deadline, what, &empty, line);

	if (st == BS_OK && empty)
		return bs_lost(conn, what);
	return st;
}

/* Read a data chunk of len bytes and its CRLF into *data (palloc'd). */
BsStatus
bs_read_data(BeanstalkConn *conn, size_t len, TimestampTz deadline, const char *what,
			 char **data)
{
	while (conn->rend - conn->rstart < len + 2)
	{
		bool		eof;
		BsStatus	st;

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
		if ((st = bs_fill(conn, deadline, what, &eof)) != BS_OK)
			return st;
		if (eof)
			return bs_lost(conn, what);
	}
	if (conn->rbuf[conn->rstart + len] != '\r' || conn->rbuf[conn->rstart + len + 1] != '\n')
		return bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION, NULL, NULL,
					   "beanstalkd at %s sent a data chunk without CRLF in reply to %s",
					   conn->server, what);
	*data = palloc(len + 1);
	memcpy(*data, conn->rbuf + conn->rstart, len);
	(*data)[len] = '\0';
	conn->rstart += len + 2;
	return BS_OK;
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
				latch_owed = true;
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
		/* an interrupt: the wait set goes, the error goes on */
		if (wes != NULL)
			FreeWaitEventSet(wes);
		latch_repay();
		PG_RE_THROW();
	}
	PG_END_TRY();
	FreeWaitEventSet(wes);
	latch_repay();
	return ready;
}

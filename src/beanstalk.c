/*
 * beanstalk.c
 *		The beanstalkd protocol: every command and reply word named once,
 *		requests (with one reconnect after a server restart), pipelining,
 *		and replies parsed strictly into statuses and results.
 *
 * The connection itself (sockets, waits, reading) is bs_conn.c's.
 * Protocol reference: beanstalkd's doc/protocol.txt.
 */
#include "postgres.h"


#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "beanstalk.h"
#include "bs_conn.h"

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

/* the server's error replies, the status and the SQLSTATE of each */
static const struct
{
	const char *reply;
	BsStatus	status;
	int			sqlstate;
}			error_replies[] =
{
	{"OUT_OF_MEMORY", BS_OUT_OF_MEMORY, ERRCODE_INSUFFICIENT_RESOURCES},
	{"INTERNAL_ERROR", BS_INTERNAL_ERROR, ERRCODE_SYSTEM_ERROR},
	/* jobq's own request was malformed: a bug, not the server's trouble */
	{"BAD_FORMAT", BS_BAD_REQUEST, ERRCODE_INTERNAL_ERROR},
	{"UNKNOWN_COMMAND", BS_BAD_REQUEST, ERRCODE_INTERNAL_ERROR},
	{"EXPECTED_CRLF", BS_BAD_REQUEST, ERRCODE_INTERNAL_ERROR},
	{MSG_JOB_TOO_BIG, BS_JOB_TOO_BIG, ERRCODE_PROGRAM_LIMIT_EXCEEDED},
	{MSG_DRAINING, BS_DRAINING, ERRCODE_CANNOT_CONNECT_NOW},
};

/*
 * An error reply, or a reply the command does not expect: the connection's
 * state is unknown, so close it; the status (and the error kept for
 * bs_report) says which refusal it was.
 */
static BsStatus
bs_unexpected(BeanstalkConn *conn, const char *what, const char *line)
{
	char	   *reply = pstrdup(line);

	for (int i = 0; i < lengthof(error_replies); i++)
	{
		if (strcmp(reply, error_replies[i].reply) == 0)
		{
			(void) bs_fail(conn, error_replies[i].sqlstate, NULL, NULL,
						   "beanstalkd at %s refused %s: %s", conn->server, what, reply);
			return error_replies[i].status;
		}
	}
	return bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION, NULL, NULL,
				   "unexpected reply from beanstalkd at %s to %s: \"%.64s\"",
				   conn->server, what, reply);
}

static BsStatus bs_use_now(BeanstalkConn *conn, const char *tube);

/*
 * Send what is queued in wbuf (one request) and read the reply line into
 * *line.  A connection that an earlier request opened may have been closed
 * by the server meanwhile (a restart); in that case reconnect once and
 * resend.  'what' names the command for messages.
 */
static BsStatus
bs_request(BeanstalkConn *conn, const char *what, TimestampTz deadline, char **line)
{
	for (int attempt = 0;; attempt++)
	{
		bool		retry = conn->reused && attempt == 0;
		bool		gone;
		bool		empty = false;
		BsStatus	st = bs_send_all(conn, &gone);

		if (st == BS_OK)
		{
			st = bs_read_line_ex(conn, deadline ? deadline : io_deadline(0), what, &empty, line);
			if (st != BS_OK)
				return st;
			if (!empty)
			{
				conn->in_flight = false;
				return BS_OK;
			}
		}
		else if (!gone)
			return st;
		if (!retry)
			return bs_lost(conn, what);

		/* reconnect, restore the tube in use, resend the same request */
		{
			StringInfoData saved;
			char		tube[BS_MAX_NAME + 1];

			initStringInfo(&saved);
			appendBinaryStringInfo(&saved, conn->wbuf.data, conn->wbuf.len);
			strlcpy(tube, conn->used_tube, sizeof(tube));
			bs_close(conn);
			if ((st = bs_connect(conn)) != BS_OK)
				return st;
			if (strcmp(tube, "default") != 0 && (st = bs_use_now(conn, tube)) != BS_OK)
				return st;
			appendBinaryStringInfo(&conn->wbuf, saved.data, saved.len);
			pfree(saved.data);
		}
	}
}

/* Begin a request: ensure a connection and an empty write buffer. */
static BsStatus
bs_begin(BeanstalkConn *conn)
{
	BsStatus	st;

	bs_shrink_rbuf(conn);
	if ((st = bs_ensure(conn)) != BS_OK)
		return st;
	if (conn->pending != 0)
		elog(ERROR, "jobq: beanstalkd request started with %d replies pending",
			 (int) conn->pending);
	resetStringInfo(&conn->wbuf);
	return BS_OK;
}

/* "use tube" on the open connection */
static BsStatus
bs_use_now(BeanstalkConn *conn, const char *tube)
{
	char	   *line;
	BsStatus	st;

	resetStringInfo(&conn->wbuf);
	appendStringInfo(&conn->wbuf, CMD_USE " %s\r\n", tube);
	if ((st = bs_request(conn, CMD_USE, 0, &line)) != BS_OK)
		return st;
	if (strncmp(line, MSG_USING " ", 6) != 0 || strcmp(line + 6, tube) != 0)
		return bs_unexpected(conn, CMD_USE, line);
	strlcpy(conn->used_tube, tube, sizeof(conn->used_tube));
	return BS_OK;
}

BsStatus
bs_use(BeanstalkConn *conn, const char *tube)
{
	BsStatus	st;

	Assert(bs_tube_name_ok(tube));
	if ((st = bs_ensure(conn)) != BS_OK)
		return st;
	if (strcmp(conn->used_tube, tube) == 0)
		return BS_OK;
	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	return bs_use_now(conn, tube);
}

/* The server's max-job-size, read once per connection from "stats". */
BsStatus
bs_max_job_size(BeanstalkConn *conn, int64 *size)
{
	BsStatus	st;

	if ((st = bs_ensure(conn)) != BS_OK)
		return st;
	if (conn->max_job_size < 0)
	{
		BsStats		stats;
		const char *v;
		uint64		n;
		const char *end;

		if ((st = bs_stats_server(conn, &stats)) != BS_OK)
			return st;
		v = bs_stats_get(&stats, "max-job-size");
		if (v == NULL || !bs_parse_u64(v, &end, &n) || *end != '\0' || n > PG_INT64_MAX)
			return bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION, NULL, NULL,
						   "beanstalkd at %s did not report max-job-size", conn->server);
		conn->max_job_size = (int64) n;
	}
	*size = conn->max_job_size;
	return BS_OK;
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

/*
 * INSERTED, BURIED, JOB_TOO_BIG and DRAINING answer a put and leave the
 * connection as it was (the error kept says what the last two mean, for
 * a caller that reports them or fails over); anything else is unexpected.
 */
static BsStatus
parse_put_reply(BeanstalkConn *conn, const char *line, uint64 *id)
{
	if (bs_reply_u64(line, MSG_INSERTED, id))
		return BS_OK;
	if (bs_reply_u64(line, MSG_BURIED, id))
		return BS_BURIED;
	if (strcmp(line, MSG_JOB_TOO_BIG) == 0)
		return bs_note(conn, BS_JOB_TOO_BIG, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
					   "beanstalkd at %s refused the job: it is larger than its max-job-size",
					   conn->server);
	if (strcmp(line, MSG_DRAINING) == 0)
		return bs_note(conn, BS_DRAINING, ERRCODE_CANNOT_CONNECT_NOW,
					   "beanstalkd at %s is draining and accepts no new jobs", conn->server);
	return bs_unexpected(conn, CMD_PUT, line);
}

/*
 * put into the tube in use: BS_OK with the new job's id, BS_BURIED (in the
 * server, buried: it is out of memory), BS_JOB_TOO_BIG, BS_DRAINING, or a
 * failure.
 */
BsStatus
bs_put(BeanstalkConn *conn, uint64 pri, uint64 delay, uint64 ttr,
	   const char *body, size_t len, uint64 *id)
{
	char	   *line;
	BsStatus	st;

	*id = 0;
	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	append_put(&conn->wbuf, pri, delay, ttr, body, len);
	if ((st = bs_request(conn, CMD_PUT, 0, &line)) != BS_OK)
		return st;
	return parse_put_reply(conn, line, id);
}

/*
 * Pipelining: bs_queue_* append requests to wbuf, bs_flush sends them in one
 * write, and bs_read_*_reply consume the replies in order.
 */
BsStatus
bs_pipeline_begin(BeanstalkConn *conn)
{
	return bs_begin(conn);
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

BsStatus
bs_flush(BeanstalkConn *conn)
{
	bool		gone;
	BsStatus	st = bs_send_all(conn, &gone);

	if (st != BS_OK && gone)
		return bs_lost(conn, "pipelined requests");
	return st;
}

/*
 * The first line of the next pipelined reply.  Until bs_reply_done says the
 * whole reply was consumed, the connection stays in flight: a failure while
 * reading the rest of it (a job's body, a stats document) drops it.
 */
static BsStatus
bs_read_pending(BeanstalkConn *conn, const char *what, char **line)
{
	BsStatus	st;

	if (conn->pending <= 0)
		elog(ERROR, "jobq: no beanstalkd reply pending");
	if ((st = bs_read_line(conn, io_deadline(0), what, line)) != BS_OK)
		return st;
	conn->pending--;
	return BS_OK;
}

/* A pipelined reply was read whole: idle again once none is pending. */
static void
bs_reply_done(BeanstalkConn *conn)
{
	if (conn->pending == 0 && conn->rstart == conn->rend)
		conn->in_flight = false;
}

BsStatus
bs_read_use_reply(BeanstalkConn *conn)
{
	char	   *line;
	BsStatus	st;

	if ((st = bs_read_pending(conn, CMD_USE, &line)) != BS_OK)
		return st;
	if (strncmp(line, MSG_USING " ", 6) != 0)
		return bs_unexpected(conn, CMD_USE, line);
	bs_reply_done(conn);
	return BS_OK;
}

BsStatus
bs_read_put_reply(BeanstalkConn *conn, uint64 *id)
{
	char	   *line;
	BsStatus	st;

	if ((st = bs_read_pending(conn, CMD_PUT, &line)) != BS_OK)
		return st;
	st = parse_put_reply(conn, line, id);
	if (st != BS_LOST && bs_connected(conn))
		bs_reply_done(conn);
	return st;
}

/* one touch command, for worker/touch.c's rounds */
void
bs_append_touch(StringInfo cmds, uint64 id)
{
	appendStringInfo(cmds, CMD_TOUCH " " UINT64_FORMAT "\r\n", id);
}

/* the rest of a round of touches that bs_send_nowait sent in part */
BsStatus
bs_send_touch_rest(BeanstalkConn *conn, const char *data, size_t len)
{
	bool		gone;
	BsStatus	st;

	resetStringInfo(&conn->wbuf);
	appendBinaryStringInfo(&conn->wbuf, data, len);
	if ((st = bs_send_all(conn, &gone)) != BS_OK)
		return gone ? bs_lost(conn, CMD_TOUCH) : st;
	return BS_OK;
}

/*
 * Consume the replies owed for touches (conn->pending, counted by the
 * sender).  TOUCHED and NOT_FOUND are both fine: the job may have been
 * released by the server meanwhile.
 */
BsStatus
bs_read_touch_replies(BeanstalkConn *conn)
{
	while (conn->pending > 0)
	{
		char	   *line;
		BsStatus	st;

		if ((st = bs_read_pending(conn, CMD_TOUCH, &line)) != BS_OK)
			return st;
		if (strcmp(line, MSG_TOUCHED) != 0 && strcmp(line, MSG_NOT_FOUND) != 0)
			return bs_unexpected(conn, CMD_TOUCH, line);
		bs_reply_done(conn);
	}
	return BS_OK;
}

/* watch / ignore: *n is the number of tubes now watched (-1: NOT_IGNORED) */
static BsStatus
watch_or_ignore(BeanstalkConn *conn, const char *cmd, const char *tube, int *n)
{
	char	   *line;
	uint64		count;
	BsStatus	st;

	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	appendStringInfo(&conn->wbuf, "%s %s\r\n", cmd, tube);
	if ((st = bs_request(conn, cmd, 0, &line)) != BS_OK)
		return st;
	if (strcmp(line, MSG_NOT_IGNORED) == 0)
	{
		*n = -1;
		return BS_OK;
	}
	if (!bs_reply_u64(line, MSG_WATCHING, &count))
		return bs_unexpected(conn, cmd, line);
	*n = (int) count;
	return BS_OK;
}

BsStatus
bs_watch(BeanstalkConn *conn, const char *tube, int *n)
{
	return watch_or_ignore(conn, CMD_WATCH, tube, n);
}

/* *n is -1 if the tube is the last one watched (NOT_IGNORED) */
BsStatus
bs_ignore(BeanstalkConn *conn, const char *tube, int *n)
{
	return watch_or_ignore(conn, CMD_IGNORE, tube, n);
}

/*
 * Read the "<id> <bytes>\r\n<data>\r\n" part of RESERVED and FOUND; a line
 * that is not 'word' is the caller's unexpected reply (*matched false).
 */
static BsStatus
read_job_reply(BeanstalkConn *conn, const char *line, const char *word,
			   TimestampTz deadline, const char *what, BsJob *job, bool *matched)
{
	uint64		id;
	uint64		bytes;

	*matched = bs_reply_u64_u64(line, word, &id, &bytes);
	if (!*matched)
		return BS_OK;
	if (bytes > (uint64) MaxAllocSize - 3)
		return bs_fail(conn, ERRCODE_PROGRAM_LIMIT_EXCEEDED, NULL, NULL,
					   "job " UINT64_FORMAT " from beanstalkd at %s is too large (" UINT64_FORMAT " bytes)",
					   id, conn->server, bytes);
	job->id = id;
	job->len = bytes;
	return bs_read_data(conn, bytes, deadline, what, &job->body);
}

/*
 * TIMED_OUT, DEADLINE_SOON, or RESERVED and the job's body, read here; the
 * connection stays in flight for the caller to settle.
 */
static BsStatus
parse_reserve_reply(BeanstalkConn *conn, const char *line, TimestampTz deadline, BsJob *job)
{
	bool		matched;
	BsStatus	st;

	if (strcmp(line, MSG_TIMED_OUT) == 0)
		return BS_TIMED_OUT;
	if (strcmp(line, MSG_DEADLINE_SOON) == 0)
		return BS_DEADLINE_SOON;
	conn->in_flight = true;
	st = read_job_reply(conn, line, MSG_RESERVED, deadline, CMD_RESERVE, job, &matched);
	if (st == BS_OK && !matched)
		return bs_unexpected(conn, CMD_RESERVE, line);
	return st;
}

BsStatus
bs_reserve(BeanstalkConn *conn, int timeout_s, BsJob *job)
{
	char	   *line;
	TimestampTz deadline = io_deadline(timeout_s * 1000);
	BsStatus	st;

	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	appendStringInfo(&conn->wbuf, CMD_RESERVE " %d\r\n", timeout_s);
	if ((st = bs_request(conn, CMD_RESERVE, deadline, &line)) != BS_OK)
		return st;
	st = parse_reserve_reply(conn, line, deadline, job);
	if (!bs_status_trouble(st))
		conn->in_flight = false;
	return st;
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
	char	   *line;
	BsStatus	st;

	if ((st = bs_read_pending(conn, CMD_RESERVE, &line)) != BS_OK)
		return st;
	st = parse_reserve_reply(conn, line, io_deadline(0), job);
	if (!bs_status_trouble(st))
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
	return bs_unexpected(conn, cmd, line);
}

/* A command "<cmd> <id>[ args]" whose answers are 'ok' or NOT_FOUND. */
static BsStatus
id_command(BeanstalkConn *conn, const char *cmd, const char *ok, const char *fmt_args,
		   uint64 id, uint64 a, uint64 b)
{
	char	   *line;
	BsStatus	st;

	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	append_id_command(conn, cmd, fmt_args, id, a, b);
	if ((st = bs_request(conn, cmd, 0, &line)) != BS_OK)
		return st;
	return parse_id_reply(conn, cmd, ok, line);
}

/* BS_OK, or BS_NOT_FOUND when there is no such job */
BsStatus
bs_delete(BeanstalkConn *conn, uint64 id)
{
	return id_command(conn, CMD_DELETE, MSG_DELETED, NULL, id, 0, 0);
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
	char	   *line;
	BsStatus	st;

	if ((st = bs_read_pending(conn, cmds[what], &line)) != BS_OK)
		return st;
	st = parse_id_reply(conn, cmds[what], oks[what], line);
	if (!bs_status_trouble(st) && st != BS_BAD_REQUEST)
		bs_reply_done(conn);
	return st;
}

/* BS_OK, or BS_NOT_FOUND when there is no such job to kick */
BsStatus
bs_kick_job(BeanstalkConn *conn, uint64 id)
{
	return id_command(conn, CMD_KICK_JOB, MSG_KICKED, NULL, id, 0, 0);
}

/* kick up to 'bound' jobs in the tube in use; *kicked says how many were */
BsStatus
bs_kick(BeanstalkConn *conn, uint64 bound, uint64 *kicked)
{
	char	   *line;
	BsStatus	st;

	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	appendStringInfo(&conn->wbuf, CMD_KICK " " UINT64_FORMAT "\r\n", bound);
	if ((st = bs_request(conn, CMD_KICK, 0, &line)) != BS_OK)
		return st;
	if (!bs_reply_u64(line, MSG_KICKED, kicked))
		return bs_unexpected(conn, CMD_KICK, line);
	return BS_OK;
}

/* cmd is a full command line without CRLF: "peek 5", "peek-ready", ... */
static BsStatus
peek_request(BeanstalkConn *conn, const char *cmd, BsJob *job)
{
	char	   *line;
	TimestampTz deadline = io_deadline(0);
	bool		matched;
	BsStatus	st;

	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	appendStringInfo(&conn->wbuf, "%s\r\n", cmd);
	if ((st = bs_request(conn, CMD_PEEK, deadline, &line)) != BS_OK)
		return st;
	if (strcmp(line, MSG_NOT_FOUND) == 0)
		return BS_NOT_FOUND;
	conn->in_flight = true;
	if ((st = read_job_reply(conn, line, MSG_FOUND, deadline, CMD_PEEK, job, &matched)) != BS_OK)
		return st;
	if (!matched)
		return bs_unexpected(conn, CMD_PEEK, line);
	conn->in_flight = false;
	return BS_OK;
}

/* peek: the job with this id, whatever its tube; BS_NOT_FOUND if there is none */
BsStatus
bs_peek_job(BeanstalkConn *conn, uint64 id, BsJob *job)
{
	return peek_request(conn, psprintf(CMD_PEEK " " UINT64_FORMAT, id), job);
}

/* peek-ready/-delayed/-buried: the next such job of the tube in use */
BsStatus
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
 * The YAML after "OK <bytes>" into *yaml, or BS_NOT_FOUND (*yaml NULL);
 * the connection stays in flight.
 */
static BsStatus
read_yaml_reply(BeanstalkConn *conn, const char *line, TimestampTz deadline,
				char **yaml, size_t *len)
{
	uint64		bytes;
	BsStatus	st;

	*yaml = NULL;
	if (strcmp(line, MSG_NOT_FOUND) == 0)
		return BS_NOT_FOUND;
	if (!bs_reply_u64(line, MSG_OK, &bytes) || bytes > (uint64) MaxAllocSize - 3)
		return bs_unexpected(conn, CMD_STATS, line);
	conn->in_flight = true;
	if ((st = bs_read_data(conn, bytes, deadline, CMD_STATS, yaml)) != BS_OK)
		return st;
	*len = bytes;
	return BS_OK;
}

/*
 * cmd is a full command line without CRLF ("stats", "stats-tube x",
 * "stats-job 5", "list-tubes"): its YAML, or BS_NOT_FOUND.
 */
static BsStatus
yaml_request(BeanstalkConn *conn, const char *cmd, char **yaml, size_t *len)
{
	char	   *line;
	TimestampTz deadline = io_deadline(0);
	BsStatus	st;

	*yaml = NULL;
	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	appendStringInfo(&conn->wbuf, "%s\r\n", cmd);
	if ((st = bs_request(conn, CMD_STATS, deadline, &line)) != BS_OK)
		return st;
	st = read_yaml_reply(conn, line, deadline, yaml, len);
	if (st == BS_OK || st == BS_NOT_FOUND)
		conn->in_flight = false;
	return st;
}

/* a document that is not what beanstalkd sends: the connection is not to be trusted */
static BsStatus
malformed(BeanstalkConn *conn, const char *cmd)
{
	return bs_fail(conn, ERRCODE_PROTOCOL_VIOLATION, NULL, NULL,
				   "malformed reply from beanstalkd at %s to %s", conn->server, cmd);
}

BsStatus
bs_stats_server(BeanstalkConn *conn, BsStats *stats)
{
	char	   *doc;
	size_t		len;
	BsStatus	st = yaml_request(conn, CMD_STATS, &doc, &len);

	if (st == BS_NOT_FOUND)
		return malformed(conn, CMD_STATS);
	if (st != BS_OK)
		return st;
	return bs_parse_stats(doc, len, stats) ? BS_OK : malformed(conn, CMD_STATS);
}

/* BS_OK, or BS_NOT_FOUND when the tube does not exist */
BsStatus
bs_stats_tube(BeanstalkConn *conn, const char *tube, BsTubeStats *stats)
{
	char	   *doc;
	size_t		len;
	BsStatus	st;

	Assert(bs_tube_name_ok(tube));
	st = yaml_request(conn, psprintf(CMD_STATS_TUBE " %s", tube), &doc, &len);
	if (st != BS_OK)
		return st;
	return bs_parse_tube_stats(doc, len, stats) ? BS_OK : malformed(conn, CMD_STATS_TUBE);
}

/* BS_OK, or BS_NOT_FOUND when there is no such job */
BsStatus
bs_stats_job(BeanstalkConn *conn, uint64 id, BsJobStats *stats)
{
	char	   *doc;
	size_t		len;
	BsStatus	st = yaml_request(conn, psprintf(CMD_STATS_JOB " " UINT64_FORMAT, id), &doc, &len);

	if (st != BS_OK)
		return st;
	return bs_parse_job_stats(doc, len, stats) ? BS_OK : malformed(conn, CMD_STATS_JOB);
}

/* pipelined stats-job: BS_OK, or BS_NOT_FOUND if the job is gone */
void
bs_queue_stats_job(BeanstalkConn *conn, uint64 id)
{
	appendStringInfo(&conn->wbuf, CMD_STATS_JOB " " UINT64_FORMAT "\r\n", id);
	conn->pending++;
}

BsStatus
bs_read_stats_job_reply(BeanstalkConn *conn, BsJobStats *stats)
{
	char	   *line;
	char	   *doc;
	size_t		len;
	BsStatus	st;

	if ((st = bs_read_pending(conn, CMD_STATS_JOB, &line)) != BS_OK)
		return st;
	st = read_yaml_reply(conn, line, io_deadline(0), &doc, &len);
	if (st != BS_OK && st != BS_NOT_FOUND)
		return st;
	bs_reply_done(conn);
	if (st == BS_OK && !bs_parse_job_stats(doc, len, stats))
		return malformed(conn, CMD_STATS_JOB);
	return st;
}

BsStatus
bs_list_tubes(BeanstalkConn *conn, BsTubeList *tubes)
{
	char	   *doc;
	size_t		len;
	BsStatus	st = yaml_request(conn, CMD_LIST_TUBES, &doc, &len);

	if (st == BS_NOT_FOUND)
		return malformed(conn, CMD_LIST_TUBES);
	if (st != BS_OK)
		return st;
	return bs_parse_tube_list(doc, len, tubes) ? BS_OK : malformed(conn, CMD_LIST_TUBES);
}

/* BS_OK, or BS_NOT_FOUND when the tube does not exist */
BsStatus
bs_pause_tube(BeanstalkConn *conn, const char *tube, uint64 delay)
{
	char	   *line;
	BsStatus	st;

	if ((st = bs_begin(conn)) != BS_OK)
		return st;
	appendStringInfo(&conn->wbuf, CMD_PAUSE_TUBE " %s " UINT64_FORMAT "\r\n", tube, delay);
	if ((st = bs_request(conn, CMD_PAUSE_TUBE, 0, &line)) != BS_OK)
		return st;
	if (strcmp(line, MSG_PAUSED) == 0)
		return BS_OK;
	if (strcmp(line, MSG_NOT_FOUND) == 0)
		return BS_NOT_FOUND;
	return bs_unexpected(conn, CMD_PAUSE_TUBE, line);
}

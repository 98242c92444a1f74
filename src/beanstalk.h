/*
 * beanstalk.h
 *		A beanstalkd protocol client that waits the PostgreSQL way.
 *
 * Every wait goes through a WaitEventSet on the process latch, so query
 * cancel, statement_timeout, SIGTERM and postmaster death interrupt it (an
 * interrupt is the one ERROR that comes out of here).  A request that is
 * interrupted or gets an unexpected reply leaves the connection in an
 * unknown state; it is closed and the next request opens a new one.
 *
 * Errors are values, as libpq's are: every request returns a BsStatus,
 * BS_OK, an answer the command expects (NOT_FOUND, TIMED_OUT, ...), a typed
 * refusal, or BS_LOST for a connection that failed, and keeps what went
 * wrong in conn->error.  The caller decides what a status means (pool.c
 * fails over or marks a server down); bs_report turns the kept error into
 * the caller's ERROR, at the SQL function's or the process loop's edge.
 */
#ifndef JOBQ_BEANSTALK_H
#define JOBQ_BEANSTALK_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "datatype/timestamp.h"
#include "storage/latch.h"

#include "bs_reply.h"

/* what went wrong with the last request that failed, for bs_report */
typedef struct BsError
{
	int			sqlerrcode;
	bool		reply_timed_out;	/* a reply came late (not a connect) */
	char		message[512];
	char		detail[256];
	char		hint[256];
} BsError;

typedef struct BeanstalkConn
{
	MemoryContext mcxt;			/* owns buffers; lives as long as the conn */
	char		server[BS_MAX_SERVER];	/* "host:port", for messages */
	char		host[BS_MAX_SERVER];
	char		port[16];
	pgsocket	fd;
	uint64		generation;		/* bumped by every connect: reservations are per connection */
	WaitEventSet *wes;			/* latch, postmaster death, socket */
	bool		in_flight;		/* sent a request whose reply was not consumed */
	bool		reused;			/* opened by an earlier request */
	bool		just_sent;		/* a request went out: its reply cannot be here yet */
	char	   *rbuf;			/* bytes received, not yet consumed */
	size_t		rstart;
	size_t		rend;
	size_t		rcap;
	StringInfoData wbuf;		/* requests not yet sent (pipelining) */
	volatile int pending;		/* replies expected for requests in wbuf/sent
								 * (and for touches, see worker/touch.c) */
	char		used_tube[BS_MAX_NAME + 1];
	int64		max_job_size;	/* from "stats", -1 until read */
	BsError		error;			/* of the last request that failed */
} BeanstalkConn;

/* what a request came to (see the header comment) */
typedef enum BsStatus
{
	BS_OK,
	BS_NOT_FOUND,
	BS_TIMED_OUT,
	BS_DEADLINE_SOON,
	BS_BURIED,					/* put or release: server out of memory */
	BS_JOB_TOO_BIG,
	BS_DRAINING,				/* trouble: the server takes no new jobs */
	BS_OUT_OF_MEMORY,			/* trouble */
	BS_INTERNAL_ERROR,			/* trouble */
	BS_BAD_REQUEST,				/* BAD_FORMAT and the like: jobq's own bug */
	BS_LOST						/* trouble: the connection failed and is closed */
} BsStatus;

/* what a worker tells beanstalkd about a job it ran (bs_read_settle_reply) */
typedef enum BsSettle
{
	BS_SETTLE_DELETE,
	BS_SETTLE_RELEASE,
	BS_SETTLE_BURY
} BsSettle;

/* which kind of job peek-ready/-delayed/-buried looks for */
typedef enum BsPeekState
{
	BS_PEEK_READY,
	BS_PEEK_DELAYED,
	BS_PEEK_BURIED
} BsPeekState;

/* a job as returned by reserve and peek; body is palloc'd and NUL-terminated */
typedef struct BsJob
{
	uint64		id;
	char	   *body;
	size_t		len;
} BsJob;

extern void bs_check_server(const char *server, char *host, size_t hostlen,
							char *port, size_t portlen, char **detail);
extern int	bs_split_servers(const char *list, char names[][BS_MAX_SERVER], char **detail);
extern void bs_init(BeanstalkConn *conn, const char *server, MemoryContext mcxt);
extern void bs_free(BeanstalkConn *conn);
extern void bs_close(BeanstalkConn *conn);
extern void bs_set_server(BeanstalkConn *conn, const char *server);
extern bool bs_connected(BeanstalkConn *conn);
extern pg_nodiscard BsStatus bs_connect_now(BeanstalkConn *conn);
extern void bs_report(BeanstalkConn *conn) pg_attribute_noreturn();
extern bool bs_status_trouble(BsStatus st);

/* producers */
extern pg_nodiscard BsStatus bs_use(BeanstalkConn *conn, const char *tube);
extern pg_nodiscard BsStatus bs_max_job_size(BeanstalkConn *conn, int64 *size);
extern pg_nodiscard BsStatus bs_put(BeanstalkConn *conn, uint64 pri, uint64 delay, uint64 ttr,
					   const char *body, size_t len, uint64 *id);


/* pipelining: begin, queue several requests, flush once, read each reply in order */
extern pg_nodiscard BsStatus bs_pipeline_begin(BeanstalkConn *conn);
extern bool bs_pipeline_pending(BeanstalkConn *conn);
extern void bs_queue_use(BeanstalkConn *conn, const char *tube);
extern void bs_queue_put(BeanstalkConn *conn, uint64 pri, uint64 delay,
						 uint64 ttr, const char *body, size_t len);
extern pg_nodiscard BsStatus bs_flush(BeanstalkConn *conn);
extern pg_nodiscard BsStatus bs_read_use_reply(BeanstalkConn *conn);
extern pg_nodiscard BsStatus bs_read_put_reply(BeanstalkConn *conn, uint64 *id);

/* consumers */
extern pg_nodiscard BsStatus bs_watch(BeanstalkConn *conn, const char *tube, int *n);
extern pg_nodiscard BsStatus bs_ignore(BeanstalkConn *conn, const char *tube, int *n);
extern pg_nodiscard BsStatus bs_reserve(BeanstalkConn *conn, int timeout_s, BsJob *job);
extern pg_nodiscard BsStatus bs_delete(BeanstalkConn *conn, uint64 id);
/* a worker's batch: pipelined reserves, stats-job, delete/release/bury */
extern void bs_queue_reserve(BeanstalkConn *conn, int timeout_s);
extern pg_nodiscard BsStatus bs_read_reserve_reply(BeanstalkConn *conn, BsJob *job);
extern int	bs_wait_any(BeanstalkConn **conns, int n, uint32 mask, TimestampTz deadline);
extern void bs_queue_stats_job(BeanstalkConn *conn, uint64 id);
extern pg_nodiscard BsStatus bs_read_stats_job_reply(BeanstalkConn *conn, BsJobStats *stats);
extern void bs_queue_delete(BeanstalkConn *conn, uint64 id);
extern void bs_queue_release(BeanstalkConn *conn, uint64 id, uint64 pri, uint64 delay);
extern void bs_queue_bury(BeanstalkConn *conn, uint64 id, uint64 pri);
extern pg_nodiscard BsStatus bs_read_settle_reply(BeanstalkConn *conn, BsSettle what);
/* touches, sent by a timer's signal handler (worker/touch.c) */
extern void bs_append_touch(StringInfo cmds, uint64 id);
extern ssize_t bs_send_nowait(BeanstalkConn *conn, const char *data, size_t len);
extern pg_nodiscard BsStatus bs_send_touch_rest(BeanstalkConn *conn, const char *data, size_t len);
extern pg_nodiscard BsStatus bs_read_touch_replies(BeanstalkConn *conn);

/* administration */
extern pg_nodiscard BsStatus bs_kick(BeanstalkConn *conn, uint64 bound, uint64 *kicked);
extern pg_nodiscard BsStatus bs_kick_job(BeanstalkConn *conn, uint64 id);
extern pg_nodiscard BsStatus bs_peek_job(BeanstalkConn *conn, uint64 id, BsJob *job);
extern pg_nodiscard BsStatus bs_peek_state(BeanstalkConn *conn, BsPeekState state, BsJob *job);
extern pg_nodiscard BsStatus bs_stats_server(BeanstalkConn *conn, BsStats *stats);
extern pg_nodiscard BsStatus bs_stats_tube(BeanstalkConn *conn, const char *tube, BsTubeStats *stats);
extern pg_nodiscard BsStatus bs_stats_job(BeanstalkConn *conn, uint64 id, BsJobStats *stats);
extern pg_nodiscard BsStatus bs_list_tubes(BeanstalkConn *conn, BsTubeList *tubes);
extern pg_nodiscard BsStatus bs_pause_tube(BeanstalkConn *conn, const char *tube, uint64 delay);


#endif							/* JOBQ_BEANSTALK_H */

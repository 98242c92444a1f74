/*
 * beanstalk.h
 *		A beanstalkd protocol client that waits the PostgreSQL way.
 *
 * Every wait goes through a WaitEventSet on the process latch, so query
 * cancel, statement_timeout, SIGTERM and postmaster death interrupt it.  A
 * request that is interrupted or gets an unexpected reply leaves the
 * connection in an unknown state; it is closed and the next request opens a
 * new one.  Errors are reported with ereport(ERROR) and a specific SQLSTATE.
 */
#ifndef JOBQ_BEANSTALK_H
#define JOBQ_BEANSTALK_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "datatype/timestamp.h"
#include "storage/latch.h"

/* limits of the protocol */
#define BS_MAX_NAME			200		/* tube name, bytes */
#define BS_MAX_SERVER		256		/* "host:port" as jobq.servers gives it */
#define BS_MAX_UINT32		UINT64CONST(4294967295)
#define BS_MAX_SERVERS		16		/* in jobq.servers */

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
	volatile int pending;		/* replies expected for requests in wbuf/sent */
	/* the touches that a timer sends from a signal handler (bs_touch_arm) */
	char	   *touch_cmd;		/* "touch <id>\r\n" for each job */
	size_t		touch_size;		/* bytes of touch_cmd */
	int			touch_n;		/* commands in it */
	volatile bool touch_armed;
	volatile size_t touch_rem;	/* bytes of partly sent touches still to send */
	char		used_tube[BS_MAX_NAME + 1];
	int64		max_job_size;	/* from "stats", -1 until read */
	bool		reply_timed_out;	/* the last error was a reply's time-out */
} BeanstalkConn;

/* outcomes that callers handle themselves; everything else is an ERROR */
typedef enum BsStatus
{
	BS_OK,
	BS_NOT_FOUND,
	BS_TIMED_OUT,
	BS_DEADLINE_SOON,
	BS_BURIED,					/* put or release: server out of memory */
	BS_JOB_TOO_BIG,
	BS_DRAINING
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
extern void bs_connect_now(BeanstalkConn *conn);

/* producers */
extern void bs_use(BeanstalkConn *conn, const char *tube);
extern int64 bs_max_job_size(BeanstalkConn *conn);
extern uint64 bs_put(BeanstalkConn *conn, uint64 pri, uint64 delay, uint64 ttr,
					 const char *body, size_t len);

extern bool bs_tube_name_ok(const char *tube);

/* pipelining: begin, queue several requests, flush once, read each reply in order */
extern void bs_pipeline_begin(BeanstalkConn *conn);
extern bool bs_pipeline_pending(BeanstalkConn *conn);
extern void bs_queue_use(BeanstalkConn *conn, const char *tube);
extern void bs_queue_put(BeanstalkConn *conn, uint64 pri, uint64 delay,
						 uint64 ttr, const char *body, size_t len);
extern void bs_flush(BeanstalkConn *conn);
extern void bs_read_use_reply(BeanstalkConn *conn);
extern BsStatus bs_read_put_reply(BeanstalkConn *conn, uint64 *id);

/* consumers */
extern int	bs_watch(BeanstalkConn *conn, const char *tube);
extern int	bs_ignore(BeanstalkConn *conn, const char *tube);
extern BsStatus bs_reserve(BeanstalkConn *conn, int timeout_s, BsJob *job);
extern bool bs_delete(BeanstalkConn *conn, uint64 id);
/* a worker's batch: pipelined reserves, stats-job, delete/release/bury */
extern void bs_queue_reserve(BeanstalkConn *conn, int timeout_s);
extern BsStatus bs_read_reserve_reply(BeanstalkConn *conn, BsJob *job);
extern int	bs_wait_any(BeanstalkConn **conns, int n, uint32 mask, TimestampTz deadline);
extern void bs_queue_stats_job(BeanstalkConn *conn, uint64 id);
extern char *bs_read_stats_job_reply(BeanstalkConn *conn, size_t *len);
extern void bs_queue_delete(BeanstalkConn *conn, uint64 id);
extern void bs_queue_release(BeanstalkConn *conn, uint64 id, uint64 pri, uint64 delay);
extern void bs_queue_bury(BeanstalkConn *conn, uint64 id, uint64 pri);
extern BsStatus bs_read_settle_reply(BeanstalkConn *conn, BsSettle what);
extern void bs_touch_arm(BeanstalkConn *conn, const uint64 *ids, int n);
extern void bs_touch_disarm(BeanstalkConn *conn);
extern void bs_touch_rearm(BeanstalkConn *conn);
extern void bs_send_raw_touch(BeanstalkConn *conn);
extern void bs_drain_pending(BeanstalkConn *conn);

/* administration */
extern uint64 bs_kick(BeanstalkConn *conn, uint64 bound);
extern bool bs_kick_job(BeanstalkConn *conn, uint64 id);
extern bool bs_peek_job(BeanstalkConn *conn, uint64 id, BsJob *job);
extern bool bs_peek_state(BeanstalkConn *conn, BsPeekState state, BsJob *job);
extern char *bs_stats_server(BeanstalkConn *conn, size_t *len);
extern char *bs_stats_tube(BeanstalkConn *conn, const char *tube, size_t *len);
extern char *bs_stats_job(BeanstalkConn *conn, uint64 id, size_t *len);
extern char *bs_list_tubes(BeanstalkConn *conn, size_t *len);
extern bool bs_pause_tube(BeanstalkConn *conn, const char *tube, uint64 delay);

extern bool bs_server_trouble(int sqlerrcode);

/* YAML produced by stats commands: "key: value" lines */
extern char *bs_yaml_get(const char *yaml, const char *key);

#endif							/* JOBQ_BEANSTALK_H */

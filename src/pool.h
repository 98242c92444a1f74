/*
 * pool.h
 *		The servers of jobq.servers, as a producer or a worker uses them: a
 *		connection to each, which server a job goes to, and which servers
 *		are down for now.
 */
#ifndef JOBQ_POOL_H
#define JOBQ_POOL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/uuid.h"

#include "beanstalk.h"

typedef struct BsPool
{
	MemoryContext mcxt;
	const char *who;			/* "relay", "worker 3" in messages; NULL in a backend */
	char	   *setting;		/* the jobq.servers value the pool was made from */
	int			n;
	BeanstalkConn *conns[BS_MAX_SERVERS];
	uint64		seed[BS_MAX_SERVERS];	/* a hash of the server's name */
	TimestampTz retry_at[BS_MAX_SERVERS];	/* down until then; 0: up */
	int			down_ms[BS_MAX_SERVERS];	/* the last wait, doubled each time */
	TimestampTz up_at[BS_MAX_SERVERS];	/* marked up then */
	char		last_error[256];	/* of the last request that failed, for messages */
} BsPool;

/* a request to one server of a pool, see pool_call */
typedef BsStatus (*PoolFn) (BeanstalkConn *conn, void *arg);

extern void pool_init(BsPool *pool, const char *servers, const char *who, MemoryContext mcxt);
extern bool pool_set_servers(BsPool *pool, const char *servers);
extern bool pool_usable(BsPool *pool, int i);
extern int	pool_next_retry_ms(BsPool *pool);
extern uint32 pool_usable_mask(BsPool *pool);
extern int	pool_place(BsPool *pool, const pg_uuid_t *id, uint32 usable, uint32 failed);
extern BeanstalkConn *pool_conn_of(BsPool *pool, const char *server);
extern void pool_mark_down(BsPool *pool, int i, const char *why, bool share);
extern void pool_mark_up(BsPool *pool, int i);
extern bool pool_call(BsPool *pool, int i, PoolFn fn, void *arg);
extern void pool_failed(BsPool *pool, int i, BsStatus st);
extern int64 pool_min_job_size(BsPool *pool);
extern void pool_error_all_failed(BsPool *pool, const char *outcome) pg_attribute_noreturn();

/* jobq.servers, and the per-backend pool that SQL functions use */
extern void pool_init_gucs(void);
extern BsPool *pool_backend(void);

#endif							/* JOBQ_POOL_H */
